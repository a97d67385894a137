"""dtype="int8": per-channel int8 weights, per-token int8 activations, on the CPU."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from tiny_models import TEXTS, encode, long_text, make_gpt2, make_modernbert

from searchkit.encoder import Encoder, pick_dtype
from searchkit.errors import BadInput
from searchkit.models import int8 as q
from searchkit.models import load_model

LOUD = "ZZZZ!!!! " * 40 + long_text()  # a batch-mate with other magnitudes


def test_a_quantised_product_is_close_to_the_float_one():
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(96, 64, generator=g), torch.randn(96, generator=g)
    x = torch.randn(7, 64, generator=g)
    wq, ws = q.quantize_weight(w)
    assert wq.dtype == torch.int8 and wq.shape == (64, 96) and int(wq.abs().max()) == 127
    ref = F.linear(x, w, b)
    got = q.linear(x, q.Int8Weight(wq, ws), b)
    assert got.shape == ref.shape
    assert float(F.cosine_similarity(got, ref).min()) > 0.999
    assert not torch.equal(got, ref)  # it is int8, not fp32 in disguise


def test_a_row_is_quantised_on_its_own():
    """Per-token scales: one row's result does not move when a louder row joins it
    (per-tensor scales, as dynamic int8 uses, would coarsen it)."""
    g = torch.Generator().manual_seed(1)
    w = torch.randn(32, 48, generator=g)
    x = torch.randn(1, 48, generator=g)
    wq, ws = q.quantize_weight(w)
    alone = q.linear(x, q.Int8Weight(wq, ws), None)
    together = q.linear(torch.cat([x, 1000 * torch.randn(3, 48, generator=g)]), q.Int8Weight(wq, ws), None)
    assert torch.equal(alone[0], together[0])
    # The same row under one scale for the whole batch loses most of its precision.
    scale = 1000 * 4 / 127
    shared = torch._int_mm(torch.round(torch.cat([x, torch.full((1, 48), 4000.0)]) / scale).to(torch.int8), wq)
    err_shared = (shared[0].float() * scale * ws - x @ w.T).abs().max()
    err_ours = (alone[0] - (x @ w.T)[0]).abs().max()
    assert err_ours * 10 < err_shared


def test_loud_input_channels_are_multiplied_in_fp32():
    """A LayerNorm output's few loud channels would leave the rest a handful of int8 levels;
    split off by calibration, they are exact and the rest keep their precision."""
    g = torch.Generator().manual_seed(2)
    w, b = torch.randn(40, 64, generator=g), torch.randn(40, generator=g)
    x = torch.randn(50, 64, generator=g)
    x[:, [5, 17]] *= 300  # two channels loud in every token
    ref = F.linear(x, w, b)
    plain = q.linear(x, q.prepare(w, b), b)
    split = q.prepare(w, b, input_absmax=x.abs().amax(0), outliers=2)
    assert split.outliers.tolist() == [5, 17] and split.side.shape == (3, 40)  # 2 channels + the bias
    assert int(split.qweight_t[[5, 17]].abs().max()) == 0
    got = q.linear(x, split, b)
    err_plain, err_split = (plain - ref).abs().max(), (got - ref).abs().max()
    assert err_split * 20 < err_plain
    assert float(F.cosine_similarity(got, ref).min()) > 0.9999


def test_calibrated_int8_quantises_every_projection(minilm_int8):
    """The encoder calibrates: q/k/v go int8 too, each with its own fp32 channels."""
    dense = [m for m in minilm_int8.model.modules() if hasattr(m, "int8_ok")]
    assert dense and all(m.int8 is not None and m.int8.outliers is not None for m in dense)
    assert {len(m.int8.outliers) for m in dense} == {q.OUTLIERS}
    assert len(q.calibration_texts()) == 8 and len(set(q.calibration_texts())) == 8


@pytest.fixture(scope="module")
def minilm_int8():
    return Encoder("all-MiniLM-L6-v2", device="cpu", dtype="int8")


def test_minilm_int8_is_close_to_fp32(minilm, minilm_int8):
    texts = TEXTS + [long_text()]
    ref, got = minilm.encode(texts), minilm_int8.encode(texts)
    assert minilm_int8.dtype_name == "int8" and minilm_int8.settings()["dtype"] == "int8"
    cos = (ref * got).sum(1)
    assert cos.min() > 0.99 and cos[1:].min() > 0.998  # "Hello." is the farthest (0.994 when written)
    assert not np.array_equal(ref, got)


def batch_drift(encoder, texts) -> float:
    """The lowest cosine between a text's vector embedded alone and next to a loud text."""
    alone = np.stack([encoder.encode([t])[0] for t in texts])
    together = encoder.encode(texts + [LOUD])[: len(texts)]
    return float((alone * together).sum(1).min())


def test_minilm_int8_vectors_do_not_depend_on_batch_mates(minilm_int8, monkeypatch):
    """Per-token scales: a batch-mate moves a text only through fp32 rounding noise (a
    different batch shape), which int8 rounding can amplify to a cosine of 0.99996. With one
    scale per tensor, as dynamic int8 has, the loud batch-mate drags it to 0.992 (to 0.96
    before calibration split the loud channels off: models/int8.py)."""
    texts = TEXTS + [long_text()]
    assert batch_drift(minilm_int8, texts) > 0.9999

    def one_scale_per_tensor(x, skip=None):
        magnitude = x.abs() if skip is None else x.abs().index_fill_(1, skip, 0.0)
        scale = magnitude.max().clamp(min=1e-12) / q.QMAX
        return (x / scale).add_(q.ROUNDER).sub_(q.ROUNDER).to(torch.int8), scale.expand(x.shape[0], 1)

    monkeypatch.setattr(q, "quantize_rows", one_scale_per_tensor)
    assert batch_drift(minilm_int8, texts) < 0.995


@pytest.mark.parametrize("make", [make_modernbert, make_gpt2], ids=["modernbert", "gpt2"])
def test_int8_runs_every_architecture_close_to_fp32(tmp_path, make):
    folder = make(tmp_path / "model")
    pad = 3 if make is make_modernbert else 0
    ids, mask = encode(folder, tuple(TEXTS + [long_text()]), pad)
    fp32, int8 = load_model(folder), load_model(folder, int8=True)
    quantised = [m for m in int8.modules() if getattr(m, "int8", None) is not None]
    assert quantised and all(m.weight.dtype == torch.float32 for m in quantised)
    with torch.inference_mode():
        a, b = fp32(ids, mask)[-1], int8(ids, mask)[-1]
        alone = int8(ids[1:2, : int(mask[1].sum())], mask[1:2, : int(mask[1].sum())])[-1]
    real = mask.bool()
    assert float(F.cosine_similarity(a[real], b[real]).min()) > 0.99
    assert not torch.equal(a[real], b[real])
    n = int(mask[1].sum())
    assert (alone[0] - b[1, :n]).abs().max() < 1e-4  # its batch-mates do not change it


def test_int8_is_refused_on_cuda_and_named_among_the_choices():
    with pytest.raises(BadInput, match="int8 runs on the CPU"):
        pick_dtype("int8", torch.device("cuda"))
    with pytest.raises(BadInput, match="fp16 or int8"):
        pick_dtype("int4", torch.device("cpu"))


def test_parity_reports_int8_against_transformers_fp32(tmp_path):
    import json

    from click.testing import CliRunner

    from searchkit.cli import main

    pytest.importorskip("transformers")
    folder = make_gpt2(tmp_path / "gpt2")
    result = CliRunner().invoke(main, ["parity", "--model", str(folder), "--dtype", "int8", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["dtype"] == "int8" and report["projections"] == "int8 (_int_mm)" and report["passed"]
    assert report["tolerance"] == {"max_abs": 0.5, "pooled_cosine": 0.995}
    assert max(layer["max_abs"] for layer in report["layers"]) > 1e-4  # quantised: not fp32's 1e-6
