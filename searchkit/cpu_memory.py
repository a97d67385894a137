"""Keep freed memory in the process instead of handing it back to the kernel after every op.

PyTorch's CPU allocator asks malloc for every tensor and frees it when the tensor dies. With
glibc's defaults a freed block at the top of the heap is returned to the kernel as soon as
128 kB of it are free, so the next layer's tensor of the same size comes back as fresh
pages, each one faulted in and zeroed by the kernel. A batch of 2048 tokens makes tensors of
several MB per op, dozens of times per layer, and the int8 path (models/int8.py) makes more
of them than fp32. Raising glibc's trim threshold and top pad lets those pages be reused.

`python bench/malloc_reuse.py --docs 64 --dtypes int8,fp32,bf16 --record` (each setting in a
fresh process holding only the encoder, as `searchkit ingest` does; 2-core AMD EPYC, torch
2.13.0, 2026-12-06): int8 1.287 -> 1.141 s (1.13x), fp32 2.035 -> 1.964 s (1.04x), bf16 1.249
-> 1.203 s (1.04x). A process that holds several encoders at once (bench/encoder_speed.py with
its peers) showed no difference: int8 12,321 tok/s with it, 12,639 without. The mmap threshold
alone (no trim setting) changed nothing in an earlier trial.

This is what jemalloc or tcmalloc under LD_PRELOAD give PyTorch CPU inference, without a
preload. The cost is resident memory: up to `TRIM_THRESHOLD` of freed memory stays mapped.
`SEARCHKIT_MALLOPT=0` leaves malloc as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

ENV = "SEARCHKIT_MALLOPT"
# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3

TRIM_THRESHOLD = 256 << 20  # free memory kept at the top of the heap before trimming
TOP_PAD = 64 << 20  # grow the heap in steps this large, not a page at a time
MMAP_THRESHOLD = 32 << 20  # glibc's ceiling: blocks below it come from the heap, reused

_applied: bool | None = None


def keep_freed_memory() -> bool:
    """Tune glibc malloc for PyTorch CPU inference, once per process. Returns whether the
    settings are in force (False off glibc, or with SEARCHKIT_MALLOPT=0)."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if os.environ.get(ENV, "1") == "0" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = all(libc.mallopt(param, value) == 1 for param, value in (
            (M_MMAP_THRESHOLD, MMAP_THRESHOLD), (M_TRIM_THRESHOLD, TRIM_THRESHOLD), (M_TOP_PAD, TOP_PAD)))
    except (OSError, AttributeError):
        return False
    _applied = ok
    return ok
