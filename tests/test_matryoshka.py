"""Matryoshka truncation (`dim=`): the first N values, renormalised, as sentence-transformers'
`truncate_dim` gives them; refused past the model's dimension; recorded in an index."""

import json

import numpy as np
import pytest
from index_helpers import fails_with, invoke
from st_folders import TEXTS, minilm_copy, sentence_transformer

import searchkit
from searchkit.errors import BadInput, ModelLoadError, ModelMismatch
from searchkit.matryoshka import matryoshka_dims

pytest.importorskip("sentence_transformers")

DIMS = [768, 512, 384, 256, 128, 64]


def exact(a, b, atol=1e-6):
    np.testing.assert_allclose(a, b, rtol=0, atol=atol)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return minilm_copy(tmp_path_factory.mktemp("mrl") / "m", st_extra={"matryoshka_dims": [384, 256, 128, 64]})


@pytest.mark.parametrize("pooling,dim", [("mean", 128), ("cls+mean", 500), ("lasttoken", 1)])
def test_truncated_vectors_equal_sentence_transformers_and_are_batch_invariant(tmp_path, pooling, dim):
    keys = {"mean": "pooling_mode_mean_tokens", "cls": "pooling_mode_cls_token", "lasttoken": "pooling_mode_lasttoken"}
    folder = minilm_copy(tmp_path / "m", pooling={keys[m]: True for m in pooling.split("+")})
    enc = searchkit.load_encoder(folder, device="cpu", dtype="fp32", dim=dim)
    assert enc.dim == dim and enc.truncate_dim == dim and enc.settings()["dim"] == dim
    texts = TEXTS[:3]
    ours = enc.encode(texts)
    assert ours.shape == (3, dim)
    exact(np.linalg.norm(ours, axis=1), np.ones(3))
    exact(ours, np.stack([enc.encode([t])[0] for t in texts]))
    exact(ours, sentence_transformer(folder).encode(texts, truncate_dim=dim, normalize_embeddings=True))


def test_dims_are_checked_and_the_listed_ones_offered(folder, minilm):
    enc = searchkit.load_encoder(folder, device="cpu", dim=384)  # all of them: no truncation
    assert enc.truncate_dim is None and enc.settings() == {**minilm.settings(), "model": str(folder)}
    assert enc.matryoshka_dims == [64, 128, 256, 384]
    for bad in (385, 0, -1, "64", True, 2.5):
        with pytest.raises(BadInput, match=f"^dim={bad!r}: must be a whole number from 1 to 384, this model's "
                                           r"dimension \(trained for 64, 128, 256, 384\)$"):
            searchkit.load_encoder(folder, device="cpu", dim=bad)
    fails_with(invoke("embed", "x", "--model", folder, "--dim", "1000"), "--dim 1000: must be a whole number from 1 to 384")


def test_matryoshka_dims_are_read_from_every_place_they_are_written(tmp_path):
    assert matryoshka_dims(tmp_path) == []
    (tmp_path / "README.md").write_text("---\nlicense: mit\nmatryoshka_dims: [256, 64, 128]\n---\n# A model\n")
    assert matryoshka_dims(tmp_path) == [64, 128, 256]
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "matryoshka_dimensions": DIMS}))
    assert matryoshka_dims(tmp_path) == sorted(DIMS)
    (tmp_path / "config_sentence_transformers.json").write_text(json.dumps({"matryoshka_dims": [32, 16]}))
    assert matryoshka_dims(tmp_path) == [16, 32]
    (tmp_path / "config_sentence_transformers.json").write_text(json.dumps({"matryoshka_dims": "all"}))
    assert matryoshka_dims(tmp_path) == sorted(DIMS)  # not a list of dims: the next place
    (tmp_path / "config_sentence_transformers.json").write_text("{broken")
    with pytest.raises(ModelLoadError, match="config_sentence_transformers.json: cannot read"):
        matryoshka_dims(tmp_path)  # named, not taken for a file without dims


def test_an_index_records_its_dim_and_refuses_another(folder, tmp_path, monkeypatch):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("Lambda expressions create small anonymous functions.")
    (docs / "b.txt").write_text("The while loop repeats a block while its condition holds.")
    truncated = tmp_path / "truncated"
    assert invoke("ingest", docs, "--index", truncated, "--model", folder, "--dim", "128", "--json").exit_code == 0
    index = searchkit.open_index(truncated, device="cpu")  # no dim given: the recorded one
    assert (index.settings.dim, index.settings.truncate_dim, index.encoder.dim) == (128, 128, 128)
    hits = index.search("anonymous function", k=2)
    enc = index.encoder
    exact([h.score for h in hits], enc.encode([h.text for h in hits]) @ enc.encode(["anonymous function"])[0], 1e-5)
    with pytest.raises(ModelMismatch, match="dim 128 vs 64, truncate_dim 128 vs 64"):
        searchkit.open_index(truncated, dim=64, device="cpu").search("x")
    # an index of full vectors refuses a truncating encoder, and the other way round
    full = tmp_path / "full"
    assert invoke("ingest", docs, "--index", full, "--model", folder, "--json").exit_code == 0
    err = fails_with(invoke("ingest", docs, "--index", full, "--model", folder, "--dim", "128"),
                     f"built with model {folder} but other settings (dim 384 vs 128, truncate_dim None vs 128)")
    assert f"not {folder}" not in err  # the model is the same one: only the dim differs
    with pytest.raises(ModelMismatch, match="truncate_dim 128 vs None"):
        searchkit.open_index(truncated, encoder=searchkit.load_encoder(folder, device="cpu")).search("x")
    # `searchkit info` offers the dims the model lists
    monkeypatch.setattr("searchkit.cli.info._cpu_dtypes",
                        lambda model, retime=False: {"measured": [], "fastest": "fp32",
                                                     "fastest_for_queries": "fp32", "steady": True})
    result = invoke("info", "--index", truncated, "--json")
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["matryoshka_dims"] == [64, 128, 256, 384] and info["settings"]["truncate_dim"] == 128
    text = invoke("info", "--index", truncated).stdout
    assert "Matryoshka-truncated" in text and "dims 64, 128, 256, 384" in text
