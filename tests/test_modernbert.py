"""Our ModernBERT against transformers' ModernBertModel, layer by layer, on tiny random models."""

import json
import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip(
    "transformers", reason="parity tests need transformers (pip install 'searchkit[parity]')"
)

from tiny_models import (  # noqa: E402
    TEXTS,
    encode,
    long_text,
    make_modernbert,
    max_diff,
    put,
    reference_hidden_states,
    variant,
    without,
)

from searchkit.errors import ModelLoadError  # noqa: E402
from searchkit.models import load_model  # noqa: E402
from searchkit.models.modernbert import GLOBAL, LOCAL, ModernBertConfig  # noqa: E402

TOL = 1e-5  # fp32, every hidden state, real tokens only
PAD = 3  # [PAD] in the tiny tokenizer


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_modernbert(tmp_path_factory.mktemp("modernbert"))


@pytest.fixture(scope="module")
def ours(model_dir):
    return load_model(model_dir)


@pytest.fixture(scope="module")
def batch(model_dir):
    """Four texts of 7 to 300 tokens, right-padded; the longest runs well past the 128 window."""
    ids, mask = encode(model_dir, TEXTS + [long_text()], PAD)
    assert ids.shape[1] == 300 and mask.sum(1).min() < 10
    return ids, mask


def reference(model_dir, ids, mask, impl="sdpa"):
    return reference_hidden_states(transformers.ModernBertModel, model_dir, ids, mask, impl)


@pytest.mark.parametrize(
    "overrides",
    [
        dict(attention_bias=True, mlp_bias=True, norm_bias=True),
        dict(
            hidden_activation="silu",
            local_attention=64,
            layer_types=[GLOBAL, LOCAL, GLOBAL, LOCAL, LOCAL, GLOBAL],
        ),
        dict(global_attn_every_n_layers=2, global_rope_theta=1000.0, local_rope_theta=50.0),
    ],
    ids=["biases", "silu-window64-layer_types", "old-keys"],
)
def test_config_variants_match_transformers(tmp_path, overrides, batch):
    model_dir = make_modernbert(tmp_path / "m", **overrides)
    ids, mask = batch
    with torch.no_grad():
        hidden = load_model(model_dir)(ids, mask)
    diffs = max_diff(hidden, reference(model_dir, ids, mask), mask)
    assert max(diffs) <= TOL, diffs


def test_sliding_window_matters(model_dir, tmp_path, batch):
    """With the window switched off our answer must differ, or the parity test proves nothing."""
    ids, mask = batch
    wide = variant(model_dir, tmp_path / "wide", config=lambda c: {**c, "local_attention": 4096})
    with torch.no_grad():
        hidden = load_model(wide)(ids, mask)
    diffs = max_diff(hidden, reference(model_dir, ids, mask), mask)
    # Layer 0 is global (no change); layer 1, hidden state 2, is the first local one.
    assert diffs[1] == 0 and diffs[2] > 1e-3 and diffs[-1] > 1e-3, diffs


def test_mlp_runs_on_real_tokens_only(ours, batch):
    ids, mask = batch
    rows = []
    hook = ours.layers[2].mlp.register_forward_hook(lambda m, args, out: rows.append(len(args[0])))
    try:
        with torch.no_grad():
            ours(ids, mask)
    finally:
        hook.remove()
    assert rows == [int(mask.sum())] and rows[0] < ids.numel()


@pytest.mark.parametrize("upto", [0, 2, 6, -1])
def test_upto_stops_early(ours, batch, upto):
    ids, mask = batch
    with torch.no_grad():
        full, part = ours(ids, mask), ours(ids, mask, upto=upto)
    assert len(part) == upto % 7 + 1
    assert all(torch.equal(a, b) for a, b in zip(full, part))


def test_masked_lm_checkpoint_loads(ours, model_dir, tmp_path, batch):
    """ModernBertForMaskedLM-style files: `model.` prefix plus a head and decoder to drop."""

    def as_masked_lm(state):
        state = {f"model.{k}": v for k, v in state.items()}
        state["head.dense.weight"] = torch.zeros(64, 64)
        state["head.norm.weight"] = torch.ones(64)
        state["decoder.bias"] = torch.zeros(832)
        return state

    mlm = variant(model_dir, tmp_path / "mlm", state=as_masked_lm)
    ids, mask = batch
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(ours(ids, mask), load_model(mlm)(ids, mask)))


# The config.json of answerdotai/ModernBERT-base as released (transformers 4.47 era).
MODERNBERT_BASE = {
    "architectures": ["ModernBertForMaskedLM"],
    "attention_bias": False,
    "bos_token_id": 50281,
    "classifier_pooling": "mean",
    "cls_token_id": 50281,
    "eos_token_id": 50282,
    "global_attn_every_n_layers": 3,
    "global_rope_theta": 160000.0,
    "hidden_activation": "gelu",
    "hidden_size": 768,
    "intermediate_size": 1152,
    "layer_norm_eps": 1e-05,
    "local_attention": 128,
    "local_rope_theta": 10000.0,
    "max_position_embeddings": 8192,
    "mlp_bias": False,
    "model_type": "modernbert",
    "norm_bias": False,
    "norm_eps": 1e-05,
    "num_attention_heads": 12,
    "num_hidden_layers": 22,
    "pad_token_id": 50283,
    "position_embedding_type": "absolute",
    "sep_token_id": 50282,
    "vocab_size": 50368,
}


@pytest.mark.parametrize(
    "old",
    [
        MODERNBERT_BASE,
        {
            **MODERNBERT_BASE,
            "num_hidden_layers": 7,
            "global_attn_every_n_layers": 2,
            "local_attention": 64,
            "global_rope_theta": 1000.0,
            "local_rope_theta": 50.0,
        },
    ],
    ids=["ModernBERT-base", "every-2"],
)
def test_both_config_spellings_read_the_same(old, tmp_path):
    """Old keys, and what transformers 5 writes for the same model, give one config."""
    transformers.ModernBertConfig(**old).save_pretrained(tmp_path)
    new = json.loads((tmp_path / "config.json").read_text())
    assert "layer_types" in new and "rope_parameters" in new and "global_rope_theta" not in new
    assert ModernBertConfig.from_hf_config(old) == ModernBertConfig.from_hf_config(new)


def test_modernbert_base_config():
    c = ModernBertConfig.from_hf_config(MODERNBERT_BASE)
    assert [i for i, t in enumerate(c.layer_types) if t == GLOBAL] == [0, 3, 6, 9, 12, 15, 18, 21]
    assert (c.global_rope_theta, c.local_rope_theta) == (160_000.0, 10_000.0)
    assert (c.local_attention, c.max_positions) == (128, 8192)
    assert (c.num_layers, c.hidden_size, c.intermediate_size) == (22, 768, 1152)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"layer_types": [GLOBAL, LOCAL]}, "layer_types"),
        ({"rope_parameters": {GLOBAL: {"rope_type": "yarn", "rope_theta": 1.0}}}, "rope_type"),
        ({"global_attn_every_n_layers": 0}, "global_attn_every_n_layers"),
        ({"hidden_activation": "nope"}, "activation"),
        ({"num_attention_heads": 5}, "divisible"),
        ({"vocab_size": None}, "vocab_size"),
    ],
)
def test_bad_config_is_a_model_load_error(change, words):
    with pytest.raises(ModelLoadError, match=words):
        ModernBertConfig.from_hf_config({**MODERNBERT_BASE, **change})


@pytest.mark.parametrize(
    "state, config, words",
    [
        (without("layers.2.mlp.Wi.weight"), None, "missing weights layers.2.mlp.Wi.weight"),
        (put("final_norm.weight", torch.ones(63)), None, r"wrong shapes final_norm.weight \(63,\)"),
        (put("layers.0.attn_norm.weight", torch.ones(64)), None, "unexpected weights layers.0"),
        (None, lambda c: {**c, "model_type": "modernbert2"}, "model_type 'modernbert2'"),
    ],
    ids=["missing", "shape", "unexpected", "model_type"],
)
def test_loading_errors_name_the_key(model_dir, tmp_path, state, config, words):
    broken = variant(model_dir, tmp_path / "broken", state=state, config=config)
    with pytest.raises(ModelLoadError, match=words):
        load_model(broken)
