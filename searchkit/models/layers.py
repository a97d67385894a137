"""Layers and helpers every architecture shares: activations, attention masks, rotary
positions, position ids of a padded batch, (un)packing the real tokens, and how many layers
to run for a requested hidden state.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelLoadError


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


# The activation names that appear in config.json files, mapped to functions.
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "gelu": F.gelu,  # exact (erf) form, as BERT uses
    "gelu_new": gelu_tanh,  # GPT-2's tanh approximation
    "gelu_pytorch_tanh": gelu_tanh,
    "gelu_fast": gelu_tanh,
    "relu": F.relu,
    "silu": F.silu,
    "swish": F.silu,
}


def activation(name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """The activation function called `name` in a config.json, or a ModelLoadError."""
    try:
        return ACTIVATIONS[name]
    except KeyError:
        known = ", ".join(sorted(ACTIVATIONS))
        raise ModelLoadError(f"unsupported activation {name!r} (known: {known})") from None


def key_padding_mask(attention_mask: torch.Tensor) -> torch.Tensor | None:
    """(B, T) 1/0 mask -> (B, 1, 1, T) boolean SDPA mask, or None when nothing is padded.

    None lets SDPA pick its fastest kernel; a row of queries never sees only padding
    because every sequence holds at least one real token.
    """
    if bool(attention_mask.all()):
        return None
    return attention_mask.bool()[:, None, None, :]


def causal_padding_mask(attention_mask: torch.Tensor) -> torch.Tensor | None:
    """(B, T) 1/0 mask -> (B, 1, T, T) boolean SDPA mask: causal, and padded keys hidden.

    None when nothing is padded (then SDPA's is_causal does the job). Every query may also
    see itself, so a left-padding query (which precedes every real key) gets a finite
    output; a real query always sees itself anyway, so its result is unchanged.
    """
    if bool(attention_mask.all()):
        return None
    T = attention_mask.shape[1]
    causal = torch.ones(T, T, dtype=torch.bool, device=attention_mask.device).tril()  # (T, T)
    eye = torch.eye(T, dtype=torch.bool, device=attention_mask.device)
    return causal & (attention_mask.bool()[:, None, None, :] | eye)  # (B, 1, T, T)


Rope = tuple[torch.Tensor, torch.Tensor]  # cos, sin, broadcastable against queries and keys


def rotary(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype,
           head_axis: int) -> Rope:
    """cos, sin for rotary position embeddings at `positions` (any shape), each of shape
    positions.shape + (D,) with a size-1 axis inserted at `head_axis` for the heads:
    (N,) positions and head_axis=-2 give (N, 1, D) for packed (N, H, D) queries; (B, T)
    positions and head_axis=1 give (B, 1, T, D) for (B, H, T, D).

    Angles are computed in fp32 and, as transformers does, cos/sin are then rounded to the
    model's dtype (a no-op in fp32; in bf16 this keeps us bit-equal to the reference).
    Computed per call on the positions' device: a buffer made in __init__ would sit on the
    meta device that load_model builds the model on.
    """
    exponents = torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float) / head_dim
    inv_freq = 1.0 / (theta**exponents)  # (D/2,)
    freqs = positions.float()[..., None] * inv_freq  # (..., D/2)
    angles = torch.cat((freqs, freqs), dim=-1).unsqueeze(head_axis)  # the two halves share angles
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, in_fp32: bool = True) -> torch.Tensor:
    """Rotate x (..., D) by the pairs (i, i + D/2): x*cos + [-x2, x1]*sin.

    `in_fp32`: compute in fp32 and round once (ModernBERT's reference does); False computes in
    x's dtype, as the Llama-family references (Qwen3) do. The same in fp32; in bf16 each
    choice is the one that matches its reference bit for bit.
    """
    xf, cos, sin = (x.float(), cos.float(), sin.float()) if in_fp32 else (x, cos, sin)
    x1, x2 = xf.chunk(2, dim=-1)
    return (xf * cos + torch.cat((-x2, x1), dim=-1) * sin).to(x.dtype)


def embedding(rows: int, dim: int) -> nn.Embedding:
    """An uninitialised embedding table, to be filled from the checkpoint.

    nn.Embedding's own random init (normal_) on the meta device goes through torch's
    reference ops and imports torch._dynamo: a second of start-up for every CLI call.
    """
    return nn.Embedding.from_pretrained(torch.empty(rows, dim), freeze=True)


def repad(packed: torch.Tensor, indices: torch.Tensor, batch: int, seqlen: int) -> torch.Tensor:
    """Scatter (N, ...) back into zeros of shape (B, T, ...)."""
    out = packed.new_zeros(batch * seqlen, *packed.shape[1:])
    out.index_copy_(0, indices, packed)
    return out.view(batch, seqlen, *packed.shape[1:])


def positions_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T) 1/0 mask -> (B, T) position ids that count real tokens only.

    A text's first real token is position 0 whichever side is padded (cumsum of the mask
    minus one, clamped at 0), so padding never shifts a text's positions.
    """
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


class Packing:
    """Where the real tokens of a padded (B, T) batch sit once packed into (N, ...).

    Models that skip work on padding run their per-token layers on the packed (N, C)
    tokens and `unpack` only around the parts that need the (B, T) layout (attention).

    >>> packing = Packing(attention_mask)
    >>> x = packing.pack(embeddings)        # (B, T, C) -> (N, C)
    >>> padded = packing.unpack(x)          # (N, C) -> (B, T, C), zeros at padding
    """

    def __init__(self, attention_mask: torch.Tensor):
        self.batch, self.seqlen = attention_mask.shape
        self.indices = attention_mask.reshape(-1).nonzero(as_tuple=True)[0]  # (N,) into B*T

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, ...) -> (N, ...)"""
        return x.reshape(-1, *x.shape[2:]).index_select(0, self.indices)

    def unpack(self, packed: torch.Tensor) -> torch.Tensor:
        """(N, ...) -> (B, T, ...) with zeros at the padding positions."""
        return repad(packed, self.indices, self.batch, self.seqlen)


def resolve_upto(upto: int | None, num_layers: int) -> int:
    """How many layers to run so that hidden state `upto` is the last one computed.

    None means all; a negative `upto` counts from the end as list indices do
    (-1 is the last hidden state, number `num_layers`).
    """
    if upto is None:
        return num_layers
    last = upto + num_layers + 1 if upto < 0 else upto
    if not 0 <= last <= num_layers:
        raise ValueError(f"upto={upto}: hidden states are numbered 0..{num_layers}")
    return last
