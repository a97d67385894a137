"""The pooling table (searchkit/pooling.py) against sentence-transformers' own Pooling module:
every mode, alone and concatenated, read from 1_Pooling/config.json, under right and left
padding, and a text's vector the same alone and in a batch."""

import json
import re

import numpy as np
import pytest
import torch
from st_folders import TEXTS, minilm_copy, sentence_transformer

import searchkit
from searchkit.errors import BadInput, ModelLoadError
from searchkit.pooling import CONFIG_KEYS, POOLINGS, pool, pool_modes, read_pooling_config

st = pytest.importorskip("sentence_transformers")
from sentence_transformers.sentence_transformer.modules import Pooling as STPooling  # noqa: E402

KEY_OF = {mode: key for key, mode in CONFIG_KEYS.items()}
# every mode alone, and two concatenations (written in sentence-transformers' key order)
MODES = [*POOLINGS, "cls+mean", "max+mean+lasttoken"]


def _padded(lengths, channels=8, left=False, seed=0):
    """Random token states for rows of `lengths` real tokens, padded right or left with
    garbage (large values, so a padding leak shows)."""
    g = torch.Generator().manual_seed(seed)
    T = max(lengths)
    hidden = torch.full((len(lengths), T, channels), 1e3)
    mask = torch.zeros(len(lengths), T, dtype=torch.long)
    real = [torch.randn(n, channels, generator=g) for n in lengths]
    for b, (n, row) in enumerate(zip(lengths, real)):
        span = slice(T - n, T) if left else slice(0, n)
        hidden[b, span], mask[b, span] = row, 1
    return hidden, mask


def _st_pool(modes, hidden, mask, prompt_length=None):
    pooler = STPooling(hidden.shape[-1], pooling_mode=modes if len(modes) > 1 else modes[0],
                       include_prompt=prompt_length is None)
    features = {"token_embeddings": hidden, "attention_mask": mask}
    if prompt_length is not None:
        features["prompt_length"] = prompt_length
    return pooler(features)["sentence_embedding"]


@pytest.mark.parametrize("name", MODES)
@pytest.mark.parametrize("left", [False, True])
def test_each_mode_equals_sentence_transformers_under_either_padding(name, left):
    modes = pool_modes(name)
    hidden, mask = _padded([5, 1, 3, 7], left=left)
    ours = pool(hidden, mask, modes)
    assert ours.shape == (4, 8 * len(modes))
    torch.testing.assert_close(ours, _st_pool(modes, hidden, mask), rtol=0, atol=1e-5)
    # ... and a row's result is its own: the same rows padded the other way, or alone
    other_hidden, other_mask = _padded([5, 1, 3, 7], left=not left)
    torch.testing.assert_close(pool(other_hidden, other_mask, modes), ours, rtol=0, atol=1e-5)
    for b, n in enumerate([5, 1, 3, 7]):
        row = hidden[b][mask[b].bool()].unsqueeze(0)
        torch.testing.assert_close(pool(row, torch.ones(1, n, dtype=torch.long), modes)[0], ours[b], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["mean", "cls", "lasttoken", "weightedmean", "max", "mean_sqrt_len_tokens"])
@pytest.mark.parametrize("left", [False, True])
def test_prompt_tokens_left_out_as_sentence_transformers_does(name, left):
    """include_prompt=false: the first k real tokens (after any left padding) are not pooled."""
    hidden, mask = _padded([6, 4, 9], left=left)
    ours = pool(hidden, mask, (name,), prompt_tokens=3)
    torch.testing.assert_close(ours, _st_pool((name,), hidden, mask, prompt_length=3), rtol=0, atol=1e-5)
    # the last token is never the prompt's; every other mode changes
    assert torch.allclose(ours, pool(hidden, mask, (name,))) == (name == "lasttoken")


def test_last_token_is_the_last_real_one():
    hidden, mask = _padded([2, 5], left=False)
    assert torch.equal(pool(hidden, mask, ("lasttoken",))[0], hidden[0, 1])
    hidden, mask = _padded([2, 5], left=True)
    assert torch.equal(pool(hidden, mask, ("lasttoken",))[0], hidden[0, -1])


@pytest.mark.parametrize("name", MODES)
def test_config_keys_read_as_sentence_transformers_reads_them(tmp_path, name):
    modes = name.split("+")
    (tmp_path / "1_Pooling").mkdir()
    cfg = {"word_embedding_dimension": 384, **{key: CONFIG_KEYS[key] in modes for key in CONFIG_KEYS}}
    (tmp_path / "1_Pooling" / "config.json").write_text(json.dumps(cfg))
    theirs = STPooling.load(str(tmp_path / "1_Pooling")).pooling_mode
    assert read_pooling_config(tmp_path).name == name
    assert pool_modes(name) == ((theirs,) if isinstance(theirs, str) else tuple(theirs))


def test_pooling_config_spellings(tmp_path):
    pooling_dir = tmp_path / "1_Pooling"
    pooling_dir.mkdir()
    write = (pooling_dir / "config.json").write_text
    assert read_pooling_config(tmp_path).name is None  # only "pooling_mode_*: false"? see below
    write(json.dumps({"pooling_mode": "lasttoken", "include_prompt": False}))  # the newer spelling
    assert read_pooling_config(tmp_path) == read_pooling_config(tmp_path).__class__(
        "lasttoken", False, pooling_dir / "config.json")
    write(json.dumps({"pooling_mode": ["cls", "max"]}))
    assert read_pooling_config(tmp_path).name == "cls+max"
    write(json.dumps({"pooling_mode_cls_token": False, "pooling_mode_mean_tokens": False}))
    assert read_pooling_config(tmp_path).name is None  # nothing on: the fallback (mean) applies
    write(json.dumps({"pooling_mode_median_tokens": True}))
    with pytest.raises(ModelLoadError, match="unknown pooling pooling_mode_median_tokens"):
        read_pooling_config(tmp_path)
    write(json.dumps({"pooling_mode": "median"}))
    with pytest.raises(ModelLoadError, match="unknown pooling mode 'median'"):
        read_pooling_config(tmp_path)
    # modules.json names where the Pooling module lives
    (tmp_path / "2_Pool").mkdir()
    (tmp_path / "2_Pool" / "config.json").write_text(json.dumps({"pooling_mode_max_tokens": True}))
    (tmp_path / "modules.json").write_text(json.dumps(
        [{"idx": 0, "path": "", "type": "sentence_transformers.models.Transformer"},
         {"idx": 1, "path": "2_Pool", "type": "sentence_transformers.models.Pooling"}]))
    assert read_pooling_config(tmp_path).name == "max"


@pytest.mark.parametrize("name", ["median", "mean+mean", "mean+", "Mean+CLS+x"])
def test_unknown_pooling_refused_by_name(small_bert, name):
    with pytest.raises(BadInput, match=f"^pooling={re.escape(repr(name))}: "):
        searchkit.load_encoder(small_bert, pooling=name)


def test_asked_pooling_gets_past_a_config_it_cannot_read(tmp_path, minilm):
    """A folder whose pooling config names a mode searchkit lacks loads with --pooling given
    (the config then decides nothing: prompts are pooled); without it the config is refused."""
    folder = minilm_copy(tmp_path / "m", pooling={"pooling_mode": "median", "include_prompt": False})
    with pytest.raises(ModelLoadError, match="unknown pooling mode 'median'"):
        searchkit.load_encoder(folder, device="cpu")
    enc = searchkit.load_encoder(folder, device="cpu", dtype="fp32", pooling="cls")
    assert enc.pooling == "cls" and enc.include_prompt is True
    np.testing.assert_allclose(enc.encode(TEXTS[:2]), searchkit.load_encoder(
        "all-MiniLM-L6-v2", device="cpu", dtype="fp32", pooling="cls").encode(TEXTS[:2]), rtol=0, atol=1e-6)
    (folder / "1_Pooling" / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="1_Pooling/config.json: cannot read"):
        searchkit.load_encoder(folder, device="cpu")
    assert searchkit.load_encoder(folder, device="cpu", pooling="mean").pooling == "mean"


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A MiniLM folder per pooling mode, its 1_Pooling/config.json saying that mode."""
    root = tmp_path_factory.mktemp("pooling")
    return {name: minilm_copy(root / name.replace("+", "-"), pooling={KEY_OF[m]: True for m in name.split("+")})
            for name in MODES}


@pytest.mark.parametrize("name", MODES)
def test_encoder_equals_sentence_transformers_and_is_batch_invariant(folders, name):
    enc = searchkit.load_encoder(folders[name], device="cpu", dtype="fp32")
    assert enc.pooling == name and enc.dim == 384 * len(name.split("+"))
    texts = TEXTS[:3]  # 3 to 27 tokens: padding in play (truncation is test_prompts.py's)
    batch = enc.encode(texts)
    alone = np.stack([enc.encode([t])[0] for t in texts])
    np.testing.assert_allclose(batch, alone, rtol=0, atol=1e-6)
    reference = sentence_transformer(folders[name]).encode(texts, normalize_embeddings=True)
    np.testing.assert_allclose(batch, reference, rtol=0, atol=1e-6)
