"""Our GPT-2 against transformers' GPT2Model, layer by layer, on tiny random models."""

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
    make_gpt2,
    max_diff,
    put,
    reference_hidden_states,
    variant,
    without,
)

from searchkit.errors import BadInput, ModelLoadError  # noqa: E402
from searchkit.models import load_model  # noqa: E402

TOL = 1e-5  # fp32, every hidden state, real tokens only
PAD = 0  # GPT-2 has no pad token; any id works under the mask


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_gpt2(tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="module")
def ours(model_dir):
    return load_model(model_dir)


def batch(model_dir, side="right"):
    """Four texts of 2 to 300 tokens, padded on `side`."""
    return encode(model_dir, TEXTS + [long_text()], PAD, side=side)


def reference(model_dir, ids, mask, impl="sdpa"):
    """transformers' hidden states, given our position ids (its own default is arange(T),
    which shifts a left-padded text's positions)."""
    return reference_hidden_states(transformers.GPT2Model, model_dir, ids, mask, impl, positions=True)


def test_unpadded_input_matches_transformers_defaults(model_dir, ours):
    """No padding: transformers with its own position ids and causal mask."""
    ids, mask = encode(model_dir, [long_text()], PAD)
    model = transformers.GPT2Model.from_pretrained(model_dir).eval()
    with torch.no_grad():
        ref = model(input_ids=ids, output_hidden_states=True).hidden_states
        diffs = max_diff(ours(ids, mask), ref, mask)
    assert max(diffs) <= TOL, diffs


@pytest.mark.parametrize(
    "overrides",
    [
        dict(scale_attn_by_inverse_layer_idx=True, n_inner=96, activation_function="relu"),
        dict(scale_attn_weights=False, n_layer=3, layer_norm_epsilon=1e-3),
    ],
    ids=["inverse-layer-scale-relu", "unscaled"],
)
def test_config_variants_match_transformers(tmp_path, overrides):
    model_dir = make_gpt2(tmp_path / "m", **overrides)
    ids, mask = batch(model_dir)
    with torch.no_grad():
        hidden = load_model(model_dir)(ids, mask)
    diffs = max_diff(hidden, reference(model_dir, ids, mask), mask)
    assert max(diffs) <= TOL, diffs


def test_default_layer_is_the_middle_and_costs_half(model_dir, ours):
    ids, mask = encode(model_dir, TEXTS, PAD)
    assert ours.default_layer == 2 and ours.max_positions == 512
    calls = []
    hooks = [block.register_forward_hook(lambda *_: calls.append(1)) for block in ours.h]
    try:
        with torch.no_grad():
            part = ours(ids, mask, upto=ours.default_layer)
    finally:
        for hook in hooks:
            hook.remove()
    assert len(calls) == 2 and len(part) == 3
    with torch.no_grad():
        full = ours(ids, mask)
    assert all(torch.equal(a, b) for a, b in zip(full, part))
    assert torch.equal(ours(ids, mask, upto=-1)[-1], full[-1])


def test_lm_head_checkpoint_with_old_buffers_loads(model_dir, ours, tmp_path):
    """GPT2LMHeadModel files from the hub: `transformer.` prefix, causal-mask buffers, lm_head."""

    def as_lm_head(state):
        state = {f"transformer.{k}": v for k, v in state.items()}
        for i in range(4):
            state[f"transformer.h.{i}.attn.bias"] = torch.ones(1, 1, 512, 512).tril()
            state[f"transformer.h.{i}.attn.masked_bias"] = torch.tensor(-1e4)
        state["lm_head.weight"] = state["transformer.wte.weight"].clone()
        return state

    lm = variant(model_dir, tmp_path / "lm", state=as_lm_head)
    ids, mask = encode(model_dir, TEXTS, PAD)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(ours(ids, mask), load_model(lm)(ids, mask)))


def test_conv1d_weights_are_transposed(model_dir, ours):
    from safetensors.torch import load_file

    state = load_file(str(model_dir / "model.safetensors"))
    assert state["h.0.mlp.c_fc.weight"].shape == (64, 256)  # Conv1D: [in, out]
    # nn.Linear: [out, in]
    assert torch.equal(ours.h[0].mlp.c_fc.weight, state["h.0.mlp.c_fc.weight"].t())


def test_too_long_input_is_bad_input(ours):
    ids = torch.zeros(1, 513, dtype=torch.long)
    with pytest.raises(BadInput, match="512"):
        ours(ids, torch.ones_like(ids))


@pytest.mark.parametrize(
    "state, config, words",
    [
        (without("h.1.attn.c_proj.weight"), None, "missing weights h.1.attn.c_proj.weight"),
        (put("wpe.weight", torch.zeros(256, 64)), None, r"wrong shapes wpe.weight \(256, 64\)"),
        (put("h.0.extra.weight", torch.zeros(3)), None, "unexpected weights h.0.extra.weight"),
        (None, lambda c: {**c, "model_type": "gpt3"}, "model_type 'gpt3'"),
        (None, lambda c: {**c, "activation_function": "swiglu"}, "activation 'swiglu'"),
        (None, lambda c: {k: v for k, v in c.items() if k != "n_embd"}, "n_embd / hidden_size"),
    ],
    ids=["missing", "shape", "unexpected", "model_type", "activation", "no-width"],
)
def test_loading_errors_name_the_key(model_dir, tmp_path, state, config, words):
    broken = variant(model_dir, tmp_path / "broken", state=state, config=config)
    with pytest.raises(ModelLoadError, match=words):
        load_model(broken)
