"""Our XLM-RoBERTa (BERT's layers, RoBERTa's positions) against transformers, on tiny random models."""

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
    make_xlm_roberta,
    max_diff,
    put,
    reference_hidden_states,
    variant,
    without,
)

from searchkit.encoder import Encoder  # noqa: E402
from searchkit.errors import BadInput, ModelLoadError  # noqa: E402
from searchkit.models import load_model  # noqa: E402
from searchkit.models.xlm_roberta import XLMRobertaConfig  # noqa: E402

TOL = 1e-5  # fp32, every hidden state, real tokens only
PAD = 1  # <pad> = padding_idx, as in every XLM-R
LONG = 500  # tokens kept of the long text: past a few hundred, within 512


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_xlm_roberta(tmp_path_factory.mktemp("xlmr"))


@pytest.fixture(scope="module")
def ours(model_dir):
    return load_model(model_dir)


def batch(model_dir, side="right"):
    """Four texts of 4 to 500 tokens, padded on `side`."""
    ids, mask = encode(model_dir, TEXTS + [long_text()], PAD, side=side, max_length=LONG)
    assert ids.shape[1] == LONG and mask.sum(1).min() < 10
    return ids, mask


def reference(model_dir, ids, mask, impl="sdpa", cls=None):
    """transformers' hidden states; it derives positions from the pad ids, either side."""
    return reference_hidden_states(cls or transformers.XLMRobertaModel, model_dir, ids, mask, impl)


def test_positions_start_past_padding_idx(model_dir, ours, monkeypatch):
    """Counting positions from 0, as BERT does, must break parity, or the test proves nothing."""
    ids, mask = batch(model_dir)
    assert ours.config.position_offset == PAD + 1
    monkeypatch.setattr(ours.embeddings, "position_offset", 0)
    with torch.no_grad():
        diffs = max_diff(ours(ids, mask), reference(model_dir, ids, mask), mask)
    assert min(diffs) > 1e-3, diffs


def test_max_length_is_the_position_table_less_the_offset(model_dir, ours):
    enc = Encoder(model_dir, device="cpu")
    assert ours.max_positions == 512 and enc.max_length == 512
    assert len(enc.tokenize([long_text(20_000)])[0]) == 512
    ids = torch.full((1, 513), 5)
    with pytest.raises(BadInput, match="513 tokens exceed this model's 512 positions"):
        ours(ids, torch.ones_like(ids))


def test_masked_lm_checkpoint_loads(model_dir, ours, tmp_path):
    """XLMRobertaForMaskedLM-style files: `roberta.` prefix, a pooler and an lm_head to drop."""

    def as_masked_lm(state):
        state = {f"roberta.{k}": v for k, v in state.items()}
        state["roberta.embeddings.position_ids"] = torch.arange(514)[None]
        state["lm_head.dense.weight"] = torch.zeros(64, 64)
        state["lm_head.bias"] = torch.zeros(800)
        return state

    mlm = variant(model_dir, tmp_path / "mlm", state=as_masked_lm)
    ids, mask = batch(model_dir)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(ours(ids, mask), load_model(mlm)(ids, mask)))


def test_roberta_model_type_is_the_same_layout(model_dir, tmp_path):
    roberta = variant(model_dir, tmp_path / "roberta", config=lambda c: {**c, "model_type": "roberta",
                                                                         "architectures": ["RobertaModel"]})
    ids, mask = batch(model_dir)
    with torch.no_grad():
        hidden = load_model(roberta)(ids, mask)
    diffs = max_diff(hidden, reference(roberta, ids, mask, cls=transformers.RobertaModel), mask)
    assert max(diffs) <= TOL, diffs


# multilingual-e5-base's config.json as released.
E5_BASE = {
    "architectures": ["XLMRobertaModel"],
    "attention_probs_dropout_prob": 0.1,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "hidden_size": 768,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "layer_norm_eps": 1e-05,
    "max_position_embeddings": 514,
    "model_type": "xlm-roberta",
    "num_attention_heads": 12,
    "num_hidden_layers": 12,
    "output_past": True,
    "pad_token_id": 1,
    "position_embedding_type": "absolute",
    "type_vocab_size": 1,
    "use_cache": True,
    "vocab_size": 250002,
}


def test_multilingual_e5_base_config():
    c = XLMRobertaConfig.from_hf_config(E5_BASE)
    assert (c.position_offset, c.max_positions, c.type_vocab_size) == (2, 514, 1)
    assert (c.num_layers, c.hidden_size, c.vocab_size, c.layer_norm_eps) == (12, 768, 250002, 1e-5)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"pad_token_id": None}, "pad_token_id None"),
        ({"max_position_embeddings": 2}, "no position past padding_idx"),
        ({"position_embedding_type": "relative_key"}, "position_embedding_type"),
        ({"num_attention_heads": 5}, "divisible"),
    ],
)
def test_bad_config_is_a_model_load_error(change, words):
    with pytest.raises(ModelLoadError, match=words):
        XLMRobertaConfig.from_hf_config({**E5_BASE, **change})


@pytest.mark.parametrize(
    "state, config, words",
    [
        (without("encoder.layer.1.attention.self.key.weight"), None, "missing weights layers.1.attention.qkv.weight"),
        (put("embeddings.position_embeddings.weight", torch.zeros(512, 64)), None,
         r"wrong shapes embeddings.position_embeddings.weight \(512, 64\)"),
        (put("encoder.layer.0.extra.weight", torch.zeros(3)), None, "unexpected weights layers.0.extra.weight"),
        (None, lambda c: {**c, "model_type": "xlm-roberta-xl"}, "model_type 'xlm-roberta-xl'"),
    ],
    ids=["missing", "shape", "unexpected", "model_type"],
)
def test_loading_errors_name_the_key(model_dir, tmp_path, state, config, words):
    broken = variant(model_dir, tmp_path / "broken", state=state, config=config)
    with pytest.raises(ModelLoadError, match=words):
        load_model(broken)
