"""int8 projections on the CPU: weights per output channel, activations per token.

A `Dense` layer after `quantize_int8()` keeps its fp32 weight (for state_dict and
parity) and adds an int8 copy with one scale per output channel, made once at load.
Its input is quantised row by row, each token with its own scale, so a token's precision
depends on that token alone, not on its batch. (Dynamic quantisation with one scale per
tensor, as ONNX Runtime's and torch's dynamic int8 do, lets the loudest token of a batch
set every other token's: next to a loud text, MiniLM's vectors fell to cosine 0.96 of
their own alone. With per-token scales the lowest was 0.99996, the fp32 rounding noise of
another batch shape, amplified where it tips an int8 rounding; tests/test_int8.py.)

The int8 x int8 -> int32 product is `torch._int_mm`, which torch runs through oneDNN
(VNNI or AMX where the CPU has them); everything around it stays in fp32.

The query/key/value projections stay fp32 (`Dense(int8_ok=False)`): their input, a
LayerNorm output, has a few channels far louder than the rest, so one scale per token
leaves the others a handful of levels, and the error is then squared into the attention
scores. On 300 SciFact abstracts with all-MiniLM-L6-v2, the lowest cosine to fp32 was
0.9953 (mean 0.9976) with them in int8 and 0.9985 (mean 0.9991) without.
"""

from __future__ import annotations

import torch

QMAX = 127.0  # symmetric: -127..127, so a value and its negation round alike
# Adding and taking away 1.5 * 2**23 rounds an fp32 |v| < 2**22 to the nearest integer (ties
# to even, as torch.round). torch.round itself ran 11.6 ms on a (2048, 1536) tensor with 2
# threads (2.1 ms with 1); these two in-place adds, 0.66 ms.
ROUNDER = 12582912.0


def quantize_weight(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, in) float weight -> its (in, out) int8 transpose, as `_int_mm` takes it, and the
    (out,) fp32 scales that bring each output channel back."""
    w = weight.detach().float()
    scale = w.abs().amax(dim=1).clamp(min=1e-12) / QMAX
    q = torch.round(w / scale[:, None]).clamp_(-QMAX, QMAX).to(torch.int8)
    return q.t().contiguous(), scale


def quantize_rows(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(N, in) float -> (N, in) int8 and the (N, 1) fp32 scale of each row."""
    scale = x.abs().amax(dim=1, keepdim=True).clamp_(min=1e-12).div_(QMAX)
    return (x / scale).add_(ROUNDER).sub_(ROUNDER).to(torch.int8), scale


def linear(x: torch.Tensor, qweight_t: torch.Tensor, wscale: torch.Tensor,
           bias: torch.Tensor | None) -> torch.Tensor:
    """x @ W.T + b with int8 operands and int32 sums; x is (..., in) fp32."""
    shape = x.shape
    rows = x.reshape(-1, shape[-1]).float()
    q, xscale = quantize_rows(rows)
    y = torch._int_mm(q, qweight_t).float()  # exact int32 sums
    y.mul_(xscale).mul_(wscale)
    if bias is not None:
        y.add_(bias)
    return y.view(*shape[:-1], y.shape[-1])
