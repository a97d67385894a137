"""int8 projections on the CPU: weights per output channel, activations per token, and a
few loud input channels kept in fp32.

A `Dense` layer after `quantize_int8()` keeps its fp32 weight (for state_dict and parity)
and adds an `Int8Weight`: an int8 copy with one scale per output channel, made once at load.
Its input is quantised row by row, each token with its own scale, so a token's precision
depends on that token alone, not on its batch. (Dynamic quantisation with one scale per
tensor, as ONNX Runtime's and torch's dynamic int8 do, lets the loudest token of a batch
set every other token's: next to a loud text, MiniLM's vectors fell to cosine 0.96 of
their own alone. With per-token scales the lowest was 0.99996, the fp32 rounding noise of
another batch shape, amplified where it tips an int8 rounding; tests/test_int8.py.)

Outlier channels. A LayerNorm output, the input of the query/key/value and MLP projections,
has a handful of channels far louder than the rest, in every token; one scale per token then
leaves the other channels a few levels each. So a calibration pass at load (the encoder runs
a few fixed English texts through the fp32 model, `calibrate`) finds each layer's
`OUTLIERS` loudest input channels; those are multiplied in fp32 (a (N, 8) x (8, out) product,
which also adds the bias) and the rest in int8, scaled without them. The design was chosen
on 200 SciFact abstracts with all-MiniLM-L6-v2 (a /tmp experiment calibrating on 16 texts of
200 words), cosine to fp32, min / mean:

    q/k/v kept fp32, no outlier channels (the previous design)   0.99864 / 0.99912
    every projection int8, no outlier channels                    0.99617 / 0.99763
    every projection int8, 8 outlier channels each                0.99925 / 0.99951
    (SmoothQuant-style channel scaling, alpha 0.5-0.8, instead    0.99811 / 0.99887)

As shipped (8 texts of 128 tokens), on all 5,183 SciFact abstracts: min 0.99891, mean
0.99952, nDCG@10 0.6481 against fp32's 0.6451 (bench/dtype_quality.py, RESULTS.md 2026-12-06;
before this change 0.99813 / 0.99913 and 0.6507).

Without a calibration (`load_model(..., int8=True)` alone) the layers built with
`int8_ok=False` (q/k/v) stay fp32 and no channel is split off.

The int8 x int8 -> int32 product is `torch._int_mm`, which torch runs through oneDNN
(VNNI or AMX where the CPU has them); everything around it stays in fp32.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

QMAX = 127.0  # symmetric: -127..127, so a value and its negation round alike
# Adding and taking away 1.5 * 2**23 rounds an fp32 |v| < 2**22 to the nearest integer (ties
# to even, as torch.round). torch.round itself ran 11.6 ms on a (2048, 1536) tensor with 2
# threads (2.1 ms with 1); these two in-place adds, 0.66 ms.
ROUNDER = 12582912.0
# Input channels per projection multiplied in fp32 (see above); 4 and 16 gave about the same.
OUTLIERS = 8
# The same two numbers as 0-dim fp32 tensors, for the per-token path. An op given a Python
# float wraps it in a new float64 tensor and converts that, each call: 2.8 against 1.3 us
# for an add_ on one query's (22, 384). On MiniLM's 24 projections (3 such ops each) this
# took 2-3.5% off a single int8 query, vectors bit for bit the same (paired A/B over 300
# SciFact claims, 2-core AMD EPYC, 2026-12-06: p50 3.63 -> 3.51, 3.96 -> 3.83, 3.74 -> 3.59 ms;
# bench/single_text_ab.py measures such changes).
_QMAX = torch.tensor(QMAX)
_ROUNDER = torch.tensor(ROUNDER)


@dataclass(frozen=True)
class Int8Weight:
    """What a projection needs to run in int8."""

    qweight_t: torch.Tensor  # (in, out) int8, zero in the outlier channels' rows
    scale: torch.Tensor  # (out,) fp32: brings each output channel back
    outliers: torch.Tensor | None = None  # (k,) input channels kept in fp32
    side: torch.Tensor | None = None  # (k [+1], out) fp32: the outliers' weights [and the bias]


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, in) float weight -> its (in, out) int8 transpose, as `_int_mm` takes it, and the
    (out,) fp32 scales that bring each output channel back."""
    w = weight.detach().float()
    scale = w.abs().amax(dim=1).clamp(min=1e-12) / QMAX
    q = torch.round(w / scale[:, None]).clamp_(-QMAX, QMAX).to(torch.int8)
    return q.t().contiguous(), scale


def prepare(weight: torch.Tensor, bias: torch.Tensor | None,
            input_absmax: torch.Tensor | None = None, outliers: int = OUTLIERS) -> Int8Weight:
    """The int8 form of a projection. `input_absmax` (in,): the largest |value| each input
    channel took in calibration; its `outliers` loudest channels are kept in fp32."""
    w = weight.detach().float()
    if input_absmax is None or outliers <= 0:
        return Int8Weight(*quantize_weight(w))
    idx = input_absmax.float().topk(min(outliers, w.shape[1])).indices.sort().values
    keep = torch.ones(w.shape[1], dtype=torch.float32, device=w.device)
    keep[idx] = 0.0
    # The outliers take no part in the weight scales, and their int8 weights are zero, so
    # whatever their int8 inputs hold (quantize_rows leaves them unscaled) adds nothing.
    qweight_t, scale = quantize_weight(w * keep)
    side = w[:, idx].t()  # (k, out)
    if bias is not None:
        side = torch.cat([side, bias.detach().float()[None, :]])  # a column of ones adds it
    return Int8Weight(qweight_t, scale, idx, side.contiguous())


def quantize_rows(x: torch.Tensor, skip: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, in) float -> (N, in) int8 and the (N, 1) fp32 scale of each row. The channels
    `skip` take no part in the scales; out of range, their int8 values are meaningless and
    meet zero weights (`prepare`). This saves zeroing them in x first, a multiply over the
    whole input: in a microbenchmark 2.1 -> 0.25 ms at 2048 x 384, though over 200 SciFact
    abstracts the whole model ran the same (12,400 against 12,388 tok/s)."""
    magnitude = x.abs()
    if skip is not None:
        magnitude.index_fill_(1, skip, 0.0)
    scale = magnitude.amax(dim=1, keepdim=True).clamp_(min=1e-12).div_(_QMAX)
    return (x / scale).add_(_ROUNDER).sub_(_ROUNDER).to(torch.int8), scale


def linear(x: torch.Tensor, w: Int8Weight, bias: torch.Tensor | None) -> torch.Tensor:
    """x @ W.T + b with int8 operands and int32 sums, less the outlier channels, which are
    multiplied in fp32; x is (..., in) fp32."""
    shape = x.shape
    rows = x.reshape(-1, shape[-1]).float()
    side = None
    if w.outliers is not None:
        side = rows.index_select(1, w.outliers)  # (N, k)
        if w.side.shape[0] > side.shape[1]:  # the bias row
            side = torch.cat([side, side.new_ones(side.shape[0], 1)], dim=1)
    q, xscale = quantize_rows(rows, w.outliers)
    y = torch._int_mm(q, w.qweight_t).float()  # exact int32 sums
    y.mul_(xscale).mul_(w.scale)
    if side is not None:
        y.addmm_(side, w.side)  # the outliers, and the bias if any, in one pass
    elif bias is not None:
        y.add_(bias)
    return y.view(*shape[:-1], y.shape[-1])


def calibrate(model: torch.nn.Module, run: Callable[[], None], layer_type: type) -> dict:
    """The largest |input| per channel that each `layer_type` module of `model` sees while
    `run()` runs the model on calibration inputs: {module: (in,) tensor}."""
    seen: dict = {}

    def record(module, args):
        x = args[0].detach()
        amax = x.reshape(-1, x.shape[-1]).abs().amax(0).float()
        seen[module] = amax if module not in seen else torch.maximum(seen[module], amax)

    hooks = [m.register_forward_pre_hook(record) for m in model.modules() if isinstance(m, layer_type)]
    try:
        run()
    finally:
        for h in hooks:
            h.remove()
    return seen


def calibration_texts(count: int = 8, words: int = 160) -> list[str]:
    """Fixed English prose for `calibrate`: slices of the Python documentation that ships
    with Python itself (`pydoc_data.topics`), the same on every machine."""
    from pydoc_data.topics import topics

    prose = " ".join(topics[key] for key in sorted(topics)).split()
    step = max(words, len(prose) // count)
    return [" ".join(prose[i * step : i * step + words]) for i in range(count)]
