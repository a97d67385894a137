"""Search copies of FAISS indexes on a GPU, with faiss-gpu (the `gpu` extra) and a GPU.

The CPU index stays the one that is saved, added to and removed from; a GPU copy serves
unfiltered searches and is dropped whenever the CPU index changes (rebuilt at the next
search). Flat and IVF-PQ go to the GPU; HNSW has no faiss-gpu form and stays on the CPU,
and so do searches with a where-filter (faiss-gpu takes no IDSelector) or a k above
`MAX_K`. A copy that faiss-gpu refuses (an IVF-PQ layout it lacks, memory) leaves that
index on the CPU, with one warning.
"""

from __future__ import annotations

import functools
import os
import threading
import warnings

import faiss

GPU_ENV = "SEARCHKIT_FAISS_GPU"  # "0": keep every index on the CPU even with a GPU
GPU_KINDS = ("flat", "ivfpq")
MAX_K = 2048  # faiss-gpu's largest k and nprobe
DEVICE = 0  # one GPU: the first

_lock = threading.Lock()  # one StandardGpuResources, whose scratch memory is not shared safely


@functools.cache
def gpu_count() -> int:
    """GPUs faiss can use: 0 with faiss-cpu, without a GPU, or with SEARCHKIT_FAISS_GPU=0.
    Asked once per process: every search checks it."""
    if os.environ.get(GPU_ENV, "1") == "0" or not hasattr(faiss, "StandardGpuResources"):
        return 0
    try:
        return int(faiss.get_num_gpus())
    except (AttributeError, RuntimeError):
        return 0


@functools.cache
def _resources():
    return faiss.StandardGpuResources()


def to_gpu(index: faiss.Index, kind: str) -> faiss.Index | None:
    """A GPU copy of `index` (a `kind` from GPU_KINDS), or None when faiss-gpu refuses it."""
    options = faiss.GpuClonerOptions()
    # IVF-PQ: fp16 lookup tables let 48+ sub-quantisers fit the GPU's shared memory; the
    # flat copy keeps fp32 (useFloat16 would store its vectors in fp16 and change scores).
    options.useFloat16 = kind == "ivfpq"
    try:
        with _lock:
            return faiss.index_cpu_to_gpu(_resources(), DEVICE, index, options)
    except (RuntimeError, MemoryError) as exc:
        first = (str(exc).strip().splitlines() or ["refused"])[-1][:160]
        warnings.warn(f"faiss-gpu: this {kind} index stays on the CPU ({first})", stacklevel=2)
        return None


def search(copy: faiss.Index, queries, k: int, nprobe: int | None = None):
    """`copy.search(queries, k)`, with IVF's nprobe set first (capped at MAX_K)."""
    with _lock:
        if nprobe is not None:
            space = getattr(faiss, "GpuParameterSpace", faiss.ParameterSpace)()
            space.set_index_parameter(copy, "nprobe", min(int(nprobe), MAX_K))
        return copy.search(queries, k)
