"""An `Encoder` from what a user asks for: `dtype="fastest"` measured first (dtype_speed.py),
so that the Encoder itself only ever receives a concrete dtype.

`load_encoder` is `searchkit.load_encoder`; `Index.encoder`, the CLI and the TUI build
their encoders through it.

    >>> enc = load_encoder("all-MiniLM-L6-v2", device="cpu", dtype="fastest", fastest_for="queries")
    >>> enc.dtype_name  # whichever of fp32, bf16 and int8 embeds one query fastest here
"""

from __future__ import annotations

from pathlib import Path

from . import dtype_speed  # looked up at call time: tests stand in for its figures
from .encoder import FASTEST, Encoder, pick_device
from .errors import bad_value
from .resolve import model_name, resolve_model

__all__ = ["load_encoder", "resolve_dtype"]


def resolve_dtype(model: str | Path | None, dtype: str | None, device: str | None = "auto",
                  fastest_for: str = "batches") -> str | None:
    """`dtype` as a name an `Encoder` takes: "fastest" becomes the CPU dtype measured
    fastest here for `model` and the job (`fastest_for`: "batches", many texts at once, or
    "queries", one at a time; figures cached per host and model, dtype_speed.py), and fp16
    on CUDA. Any other value is returned as it is (the Encoder checks it)."""
    if not (isinstance(dtype, str) and dtype.lower() == FASTEST):
        return dtype
    name = model_name(model, resolve_model(model))  # what the figures are cached under: the Encoder's name
    if pick_device(device).type != "cpu":
        return "fp16"
    if fastest_for not in dtype_speed.JOBS:
        raise bad_value("fastest_for", fastest_for, f"expected {' or '.join(dtype_speed.JOBS)}")
    return dtype_speed.fastest(dtype_speed.measured(name), fastest_for)


def load_encoder(model: str | Path | None = None, *, device: str | None = "auto", dtype: str | None = "auto",
                 fastest_for: str = "batches", **kwargs) -> Encoder:
    """Load an encoder by name or folder; `kwargs`: the Encoder's other options (pooling,
    layer, normalize, max_length, batch_tokens, prompts, dim).

    >>> enc = searchkit.load_encoder("all-MiniLM-L6-v2", device="cpu", dtype="fp32", pooling="mean")
    >>> enc.encode(["a sentence"]).shape
    (1, 384)
    """
    return Encoder(model, device=device, dtype=resolve_dtype(model, dtype, device, fastest_for), **kwargs)
