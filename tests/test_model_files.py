"""One reader for a model folder's JSON files (searchkit/model_files.py): a missing optional
file is {}, a broken one is a ModelLoadError naming it, in every reader that uses it."""

import json

import pytest

from searchkit.errors import ModelLoadError
from searchkit.matryoshka import matryoshka_dims
from searchkit.model_files import read_json, read_json_object
from searchkit.models import read_config
from searchkit.pooling import read_pooling_config
from searchkit.prompts import Prompts
from searchkit.tokenizer_files import padding_side


def test_read_json(tmp_path):
    path = tmp_path / "x.json"
    assert read_json(path) == {}
    with pytest.raises(ModelLoadError, match=r"x\.json: not found"):
        read_json(path, required=True)
    path.write_text(json.dumps([1, 2]))
    assert read_json(path) == [1, 2]
    with pytest.raises(ModelLoadError, match=r"x\.json: expected a JSON object"):
        read_json_object(path)
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(ModelLoadError, match=r"x\.json: cannot read"):
        read_json(path)


@pytest.mark.parametrize("name, read", [
    ("config.json", read_config),
    ("config_sentence_transformers.json", Prompts.read),
    ("config_sentence_transformers.json", matryoshka_dims),
    ("tokenizer_config.json", padding_side),
    ("modules.json", read_pooling_config),
    ("1_Pooling/config.json", read_pooling_config),
])
def test_every_reader_names_a_broken_file(tmp_path, name, read):
    (tmp_path / name).parent.mkdir(exist_ok=True)
    (tmp_path / name).write_text('{"cut off": ')
    with pytest.raises(ModelLoadError, match=f"{name}: cannot read"):
        read(tmp_path)
