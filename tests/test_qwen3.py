"""Our Qwen3 against transformers' Qwen3Model, layer by layer, on tiny random models laid
out like Qwen3-Embedding (left padding, EOS appended, last-token pooling)."""

import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip(
    "transformers", reason="parity tests need transformers (pip install 'searchkit[parity]')"
)

from tiny_models import (  # noqa: E402
    QWEN3_SPECIALS,
    TEXTS,
    encode,
    long_text,
    make_qwen3,
    max_diff,
    put,
    reference_hidden_states,
    variant,
    without,
)

from searchkit.encoder import Encoder  # noqa: E402
from searchkit.errors import ModelLoadError  # noqa: E402
from searchkit.models import load_model  # noqa: E402
from searchkit.models.linear import Dense, limit_packing  # noqa: E402
from searchkit.models.qwen3 import Qwen3Config  # noqa: E402

TOL = 1e-5  # fp32, every hidden state, real tokens only
PAD = 0  # <|endoftext|>, Qwen3-Embedding's pad token; any id works under the mask
EOS = 0
LONG = 500  # tokens kept of the long text: past a few hundred, within 512


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_qwen3(tmp_path_factory.mktemp("qwen3"))


@pytest.fixture(scope="module")
def ours(model_dir):
    return load_model(model_dir)


@pytest.fixture(scope="module")
def enc(model_dir):
    return Encoder(model_dir, device="cpu")


def batch(model_dir, side="left"):
    """Four texts of 3 to 500 tokens (each ending in EOS), padded on `side`."""
    ids, mask = encode(model_dir, TEXTS + [long_text()], PAD, side=side, max_length=LONG)
    assert ids.shape[1] == LONG and mask.sum(1).min() < 10
    return ids, mask


def reference(model_dir, ids, mask, impl="sdpa", positions=True):
    """transformers' hidden states; `positions`: given ours (its default, 0..T-1 along the
    row, shifts a left-padded text, which RoPE turns into rounding noise only)."""
    return reference_hidden_states(transformers.Qwen3Model, model_dir, ids, mask, impl, positions)


def test_transformers_default_positions_differ_by_rounding_only(model_dir, ours):
    """As sentence-transformers runs it (left padding, no position ids): RoPE is relative,
    so the shifted positions change only the rounding."""
    ids, mask = batch(model_dir, "left")
    with torch.no_grad():
        diffs = max_diff(ours(ids, mask), reference(model_dir, ids, mask, positions=False), mask)
    assert max(diffs) <= 1e-4, diffs


@pytest.mark.parametrize(
    "overrides",
    [
        dict(attention_bias=True, num_key_value_heads=4, rms_norm_eps=1e-3),
        dict(num_key_value_heads=1, head_dim=16, hidden_act="gelu", num_hidden_layers=2),
    ],
    ids=["bias-mha-eps", "mqa-head16-gelu"],
)
def test_config_variants_match_transformers(tmp_path, overrides):
    model_dir = make_qwen3(tmp_path / "m", **overrides)
    ids, mask = batch(model_dir)
    with torch.no_grad():
        hidden = load_model(model_dir)(ids, mask)
    diffs = max_diff(hidden, reference(model_dir, ids, mask), mask)
    assert max(diffs) <= TOL, diffs


def test_rope_theta_is_read(model_dir, tmp_path):
    """transformers' default base instead of the config's must break parity."""
    other = variant(model_dir, tmp_path / "theta", config=lambda c: {
        **c, "rope_parameters": {"rope_type": "default", "rope_theta": 10_000.0}})
    ids, mask = batch(model_dir)
    with torch.no_grad():
        diffs = max_diff(load_model(other)(ids, mask), reference(model_dir, ids, mask), mask)
    assert diffs[0] == 0 and diffs[-1] > 1e-3, diffs


def test_encoder_follows_the_tokenizer_files(enc):
    """Qwen3-Embedding's folder: pad on the left, EOS after every text (kept under
    truncation), pool the last token."""
    assert (enc.padding_side, enc.pooling, enc.special_tokens, enc.max_length) == ("left", "lasttoken", 1, 512)
    ids = enc.tokenize(["Hello.", long_text(20_000)])
    assert ids[0][-1] == EOS and len(ids[1]) == 512 and ids[1][-1] == EOS
    b = enc.pad(ids, np.arange(2))
    assert b.attention_mask[0, -1] == 1 and b.attention_mask[0, 0] == 0  # left padding
    assert b.input_ids[0, -1] == EOS


def test_out_of_memory_split_keeps_left_padding(enc, monkeypatch):
    """Halving a batch trims its padding from the left, where the padding is."""
    texts = TEXTS + [long_text()]
    whole = enc.encode(texts)
    real = enc._embed
    calls = []

    def fail_on_big_batches(batch, *args):
        calls.append(len(batch.order))
        if len(batch.order) > 1:
            raise RuntimeError("out of memory (simulated)")
        return real(batch, *args)

    monkeypatch.setattr(enc, "_embed", fail_on_big_batches)
    assert np.abs(enc.encode(texts) - whole).max() <= 1e-6
    assert max(calls) > 1 and calls.count(1) == len(texts)


def _tokenizer_without_eos(folder):
    """Make tokenizer.json append nothing (a plain ByteLevel post-processor)."""
    from tokenizers import Tokenizer, processors

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    tok.save(str(folder / "tokenizer.json"))


@pytest.mark.parametrize("in_tokenizer_json", [False, True])
def test_add_eos_token_in_tokenizer_config(model_dir, tmp_path, in_tokenizer_json):
    """`add_eos_token: true` appends EOS when tokenizer.json does not, and never twice."""
    folder = variant(model_dir, tmp_path / "eos")
    if not in_tokenizer_json:
        _tokenizer_without_eos(folder)
        assert Encoder(folder, device="cpu").tokenize(["Hello."])[0][-1] != EOS
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    cfg["add_eos_token"] = True
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    e = Encoder(folder, device="cpu", max_length=8)
    ids = e.tokenize(["Hello.", long_text()])
    assert ids[0][-1] == EOS and ids[0][-2] != EOS and e.special_tokens == 1
    assert len(ids[1]) == 8 and ids[1][-1] == EOS  # truncation leaves room for it


def test_bad_tokenizer_config_is_a_model_load_error(model_dir, tmp_path):
    folder = variant(model_dir, tmp_path / "bad")
    cfg = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**cfg, "padding_side": "middle"}))
    with pytest.raises(ModelLoadError, match="tokenizer_config.json: padding side 'middle'"):
        Encoder(folder, device="cpu")
    (folder / "tokenizer_config.json").write_text(json.dumps({**cfg, "add_eos_token": True, "eos_token": "<eos>"}))
    with pytest.raises(ModelLoadError, match="eos_token '<eos>' is not a token"):
        Encoder(folder, device="cpu")


def test_int8_is_close_to_fp32(model_dir, ours):
    ids, mask = batch(model_dir)
    int8 = load_model(model_dir, int8=True)
    quantised = [n for n, m in int8.named_modules() if getattr(m, "int8", None) is not None]
    assert quantised and not any(n.endswith(("q_proj", "k_proj", "v_proj")) for n in quantised)
    with torch.inference_mode():
        a, b = ours(ids, mask)[-1], int8(ids, mask)[-1]
    real = mask.bool()
    assert float(F.cosine_similarity(a[real], b[real]).min()) > 0.99 and not torch.equal(a[real], b[real])


def test_calibrated_int8_encoder_is_close_to_fp32_and_batch_invariant(model_dir, enc):
    """dtype int8 through the Encoder, as users get it: calibrated, so every projection (q/k/v
    too) runs in int8 with its loud input channels kept in fp32 (models/int8.py)."""
    int8 = Encoder(model_dir, device="cpu", dtype="int8")
    dense = [m for m in int8.model.modules() if isinstance(m, Dense)]
    assert dense and all(m.int8 is not None and m.int8.outliers is not None for m in dense)
    texts = TEXTS + [long_text()]
    full, quantised = enc.encode(texts), int8.encode(texts)
    assert np.sum(full * quantised, axis=1).min() > 0.99 and not np.array_equal(full, quantised)
    alone = np.stack([int8.encode([t])[0] for t in texts])
    assert np.sum(alone * quantised, axis=1).min() > 0.9999


def test_without_a_pooling_config_the_last_token_is_pooled(model_dir, enc, tmp_path):
    """Qwen3's own default (Qwen3Model.default_pooling), not mean, for a folder without
    1_Pooling/ and modules.json; read from config.json before any weight is loaded."""
    import shutil

    folder = variant(model_dir, tmp_path / "bare")
    shutil.rmtree(folder / "1_Pooling")
    (folder / "modules.json").unlink()
    bare = Encoder(folder, device="cpu")
    assert enc.pooling == bare.pooling == "lasttoken"
    np.testing.assert_array_equal(bare.encode(TEXTS), enc.encode(TEXTS))
    assert Encoder(folder, device="cpu", pooling="mean").pooling == "mean"


def test_unpacked_weights_give_the_same_numbers(model_dir, ours):
    """Past PACK_LIMIT_BYTES a model keeps one copy of each weight; the numbers stay."""
    plain = load_model(model_dir)
    assert limit_packing(ours) and not limit_packing(plain, limit=0)
    ids, mask = batch(model_dir)
    with torch.inference_mode():
        a, b = ours(ids, mask), plain(ids, mask)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not any(hasattr(m, "packed_weight") for m in plain.modules() if isinstance(m, Dense))


def test_causal_lm_checkpoint_loads(model_dir, ours, tmp_path):
    """Qwen3ForCausalLM files: `model.` prefix and an lm_head to drop."""

    def as_causal_lm(state):
        state = {f"model.{k}": v for k, v in state.items()}
        state["lm_head.weight"] = state["model.embed_tokens.weight"].clone()
        return state

    lm = variant(model_dir, tmp_path / "lm", state=as_causal_lm)
    ids, mask = batch(model_dir)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(ours(ids, mask), load_model(lm)(ids, mask)))


# Qwen3-Embedding-0.6B's config.json as released (transformers 4.51 spelling).
QWEN3_EMBEDDING_06B = {
    "architectures": ["Qwen3ForCausalLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 1024,
    "initializer_range": 0.02,
    "intermediate_size": 3072,
    "max_position_embeddings": 32768,
    "max_window_layers": 28,
    "model_type": "qwen3",
    "num_attention_heads": 16,
    "num_hidden_layers": 28,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000,
    "sliding_window": None,
    "tie_word_embeddings": True,
    "torch_dtype": "bfloat16",
    "use_cache": True,
    "use_sliding_window": False,
    "vocab_size": 151669,
}


def test_qwen3_embedding_config_in_both_spellings(tmp_path):
    """The released file, and what transformers 5 writes for it (rope_parameters), agree."""
    transformers.Qwen3Config(**QWEN3_EMBEDDING_06B).save_pretrained(tmp_path)
    new = json.loads((tmp_path / "config.json").read_text())
    assert "rope_parameters" in new and "rope_theta" not in new
    c = Qwen3Config.from_hf_config(QWEN3_EMBEDDING_06B)
    assert c == Qwen3Config.from_hf_config(new)
    assert (c.num_heads, c.num_kv_heads, c.head_dim, c.hidden_size) == (16, 8, 128, 1024)
    assert (c.rope_theta, c.num_layers, c.max_positions) == (1_000_000.0, 28, 32768)


@pytest.mark.parametrize(
    "change, words",
    [
        ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "rope_type 'yarn'"),
        ({"rope_parameters": {"rope_type": "linear", "rope_theta": 5.0}}, "rope_type 'linear'"),
        ({"rope_theta": -1}, "rope_theta -1"),
        ({"use_sliding_window": True, "sliding_window": 4096}, "sliding-window"),
        ({"layer_types": ["sliding_attention"] * 28}, "layer_types 'sliding_attention' on layer 0"),
        ({"num_key_value_heads": 3}, "num_attention_heads 16 is not divisible by num_key_value_heads 3"),
        ({"head_dim": 127}, "head_dim 127 is odd"),
        ({"hidden_act": "swiglu"}, "activation 'swiglu'"),
        ({"intermediate_size": None}, "intermediate_size"),
    ],
)
def test_bad_config_is_a_model_load_error(change, words):
    with pytest.raises(ModelLoadError, match=words):
        Qwen3Config.from_hf_config({**QWEN3_EMBEDDING_06B, **change})


@pytest.mark.parametrize(
    "state, words",
    [
        (without("layers.1.self_attn.k_norm.weight"), "missing weights layers.1.self_attn.k_norm.weight"),
        (put("layers.0.self_attn.q_norm.weight", torch.ones(64)),
         r"wrong shapes layers.0.self_attn.q_norm.weight \(64,\) != \(32,\)"),
        (put("layers.0.mlp.extra.weight", torch.zeros(3)), "unexpected weights layers.0.mlp.extra.weight"),
    ],
    ids=["missing", "shape", "unexpected"],
)
def test_loading_errors_name_the_key(model_dir, tmp_path, state, words):
    broken = variant(model_dir, tmp_path / "broken", state=state)
    with pytest.raises(ModelLoadError, match=words):
        load_model(broken)


def test_special_tokens_are_qwen3s(model_dir):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    assert [tok.token_to_id(t) for t in QWEN3_SPECIALS] == [0, 1, 2]
