"""Batches on the CPU run on two streams: two threads, each a batch at a time, with torch's
threads shared out between them, instead of every op of one batch split over all threads.

Why. Splitting one op over threads costs a wake-up and a join per op, and most ops of a
forward pass (quantising activations, GELU, LayerNorm, the residual adds) are too short for
that to pay; the matmuls gain little from it either. Two batches side by side keep both
cores busy without the joins. Measured in one process, the two ways taking turns (2-core AMD
EPYC, torch 2.13.0, 400 SciFact abstracts and 300 claims, all-MiniLM-L6-v2, tokens/s, four
runs each, /tmp script, not a test):

    int8  abstracts 10,987-11,378 -> 11,505-14,661   claims 11,412-12,351 -> 12,236-15,015
    fp32  abstracts  6,591- 7,536 ->  7,385- 7,929   claims  6,154- 6,520 ->  6,781- 7,217
    bf16  abstracts 11,469-12,573 -> 12,573-13,022   claims 11,321-12,381 -> 11,985-12,782

Two processes of one thread each gained about as much (int8 13,799 -> 2 x 7,340 tok/s).
The vectors came out bit for bit the same either way on that host, in all three dtypes;
tests/test_cpu_streams.py checks them against each other within 1e-6 (another BLAS build
may split a product differently with fewer threads).

Chosen: two streams wherever torch has at least two threads; untested past 2 cores,
so `SEARCHKIT_CPU_STREAMS` sets the count (1: one batch at a time, as before). A single
text, and work of one batch, take the old path, and so does the short tail of a job
(`stream_part`). At most one batch waits beyond those running, so an interrupted ingest
stops within a batch or two.

torch's thread count is per thread, but `torch.set_num_threads` also sets the default that
threads started later take; `ordered_map` puts it back before it returns.
"""

from __future__ import annotations

import itertools
import os
import statistics
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

import torch

ENV = "SEARCHKIT_CPU_STREAMS"
DEFAULT_STREAMS = 2

T = TypeVar("T")
R = TypeVar("R")


def stream_count(device: torch.device, threads: int | None = None) -> int:
    """How many batches run side by side on `device`: 1 off the CPU or with one thread,
    else SEARCHKIT_CPU_STREAMS (default 2), never more than torch's threads."""
    if device.type != "cpu":
        return 1
    threads = torch.get_num_threads() if threads is None else threads
    raw = os.environ.get(ENV, "").strip()
    try:
        wanted = int(raw) if raw else DEFAULT_STREAMS
    except ValueError:
        wanted = DEFAULT_STREAMS  # a bad value must not stop an ingest; `searchkit info` shows it
    return max(1, min(wanted, threads))


def threads_per_stream(streams: int, threads: int) -> list[int]:
    """torch's `threads` shared out over `streams`, the first ones taking the remainder."""
    base, extra = divmod(threads, streams)
    return [base + (i < extra) for i in range(streams)]


_pools: dict[tuple[int, ...], ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(shares: list[int]) -> ThreadPoolExecutor:
    """One pool per way of sharing threads, kept for the process: each of its threads sets
    its own torch thread count once, when it starts."""
    key = tuple(shares)
    with _pools_lock:
        pool = _pools.get(key)
        if pool is None:
            counts = itertools.cycle(shares)
            lock = threading.Lock()

            def start() -> None:
                with lock:
                    n = next(counts)
                torch.set_num_threads(n)

            pool = _pools[key] = ThreadPoolExecutor(len(shares), thread_name_prefix="searchkit-stream",
                                                    initializer=start)
        return pool


def stream_part(costs: Sequence[float], streams: int) -> int:
    """How many leading items go to the streams: a multiple of `streams`, and none past the
    first that costs under half the median. The rest run after them, one at a time on every
    thread: a stream left without work idles its threads until the others finish, and a
    length-sorted job ends on short batches. (Measured on 3 equal batches, the third on a
    stream alone: fp32 6,536 -> 5,325 tok/s, int8 11,193 -> 10,023.)"""
    if streams <= 1 or not costs:
        return 0
    floor = statistics.median(costs) / 2
    full = next((i for i, c in enumerate(costs) if c < floor), len(costs))
    return full - full % streams


def ordered_map(fn: Callable[[T], R], items: Sequence[T], streams: int,
                costs: Sequence[float] | None = None) -> Iterator[R]:
    """fn over items, results in the order of `items`: the leading ones `streams` at a
    time (`stream_part` of their `costs`, equal if not given), the rest here, in the
    calling thread, as do all of them with one stream."""
    split = stream_part(costs if costs is not None else [1.0] * len(items), streams)
    if split:
        yield from _on_streams(fn, items[:split], streams)
    yield from map(fn, items[split:])


def _on_streams(fn: Callable[[T], R], items: Sequence[T], streams: int) -> Iterator[R]:
    threads = torch.get_num_threads()
    pool = _pool(threads_per_stream(streams, threads))
    pending: deque[Future] = deque()
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > streams:  # one waits beyond those running
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for future in pending:  # an error or an interrupt: run no more batches
            future.cancel()
        torch.set_num_threads(threads)  # the default for threads started from now on
