"""Batches side by side on the CPU (searchkit/cpu_streams.py)."""

import threading
import time

import numpy as np
import pytest
import torch

from searchkit import cpu_streams


@pytest.fixture
def two_threads():
    """torch at two threads, and stream pools started afresh (their threads set their
    thread counts when they start)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    for pool in cpu_streams._pools.values():
        pool.shutdown()
    cpu_streams._pools.clear()
    yield
    torch.set_num_threads(before)


def test_results_come_in_order_from_the_stream_threads(two_threads):
    def slow_first(i):
        time.sleep(0.05 if i == 0 else 0.0)  # the first finishes last
        return i, threading.current_thread().name, torch.get_num_threads()

    out = list(cpu_streams.ordered_map(slow_first, range(7), streams=2))
    assert [i for i, _, _ in out] == list(range(7))
    assert all(name.startswith("searchkit-stream") for _, name, _ in out[:6])
    assert len({name for _, name, _ in out[:6]}) == 2
    assert {threads for _, _, threads in out[:6]} == {1}  # two threads shared out: one each
    # the odd one out runs on every thread, in the calling thread
    assert out[6][1:] == (threading.current_thread().name, 2)


def test_a_short_tail_runs_on_every_thread():
    assert cpu_streams.stream_part([2048, 2048, 2048, 2048], 2) == 4
    assert cpu_streams.stream_part([2048, 2048, 2048], 2) == 2  # an odd one out
    assert cpu_streams.stream_part([2048, 2000, 1900, 300], 2) == 2  # the short last batch
    assert cpu_streams.stream_part([1864, 192], 2) == 0
    assert cpu_streams.stream_part([8192, 2048, 2048, 2048, 2048, 100], 2) == 4  # a long text first
    assert cpu_streams.stream_part([2048] * 4, 1) == 0


def test_threads_are_shared_out_with_the_remainder_first():
    assert cpu_streams.threads_per_stream(2, 2) == [1, 1]
    assert cpu_streams.threads_per_stream(2, 3) == [2, 1]
    assert cpu_streams.threads_per_stream(3, 8) == [3, 3, 2]


def test_threads_started_afterwards_get_the_callers_thread_count(two_threads):
    """torch.set_num_threads in a stream thread also sets the count later threads start
    with (a TUI's query thread, say); ordered_map puts it back."""
    list(cpu_streams.ordered_map(lambda i: torch.get_num_threads(), range(4), streams=2))
    seen = []
    t = threading.Thread(target=lambda: (torch.ones(2).add_(1), seen.append(torch.get_num_threads())))
    t.start()
    t.join()
    assert seen == [2] and torch.get_num_threads() == 2


def test_an_error_stops_the_batches_not_yet_started(two_threads):
    started = []

    def fail_first(i):
        started.append(i)
        if i == 0:
            time.sleep(0.05)
            raise ValueError("batch 0")
        return i

    with pytest.raises(ValueError, match="batch 0"):
        list(cpu_streams.ordered_map(fail_first, range(50), streams=2))
    time.sleep(0.1)
    assert len(started) <= 4  # those running, and the one waiting, when batch 0 failed


def test_one_stream_runs_in_the_calling_thread():
    names = list(cpu_streams.ordered_map(lambda i: threading.current_thread().name, range(3), streams=1))
    assert names == [threading.current_thread().name] * 3


def test_stream_count(monkeypatch):
    cpu = torch.device("cpu")
    monkeypatch.delenv(cpu_streams.ENV, raising=False)
    assert cpu_streams.stream_count(cpu, threads=2) == 2
    assert cpu_streams.stream_count(cpu, threads=1) == 1
    assert cpu_streams.stream_count(torch.device("cuda"), threads=8) == 1
    monkeypatch.setenv(cpu_streams.ENV, "1")
    assert cpu_streams.stream_count(cpu, threads=2) == 1
    monkeypatch.setenv(cpu_streams.ENV, "4")
    assert cpu_streams.stream_count(cpu, threads=2) == 2  # never more streams than threads
    assert cpu_streams.stream_count(cpu, threads=8) == 4
    monkeypatch.setenv(cpu_streams.ENV, "many")
    assert cpu_streams.stream_count(cpu, threads=2) == 2


@pytest.mark.parametrize("dtype", ["fp32", "int8"])
def test_encode_on_two_streams_gives_the_vectors_of_one(dtype, minilm, two_threads, monkeypatch):
    import searchkit

    enc = minilm if dtype == "fp32" else searchkit.load_encoder("all-MiniLM-L6-v2", device="cpu", dtype=dtype)
    before, enc.batch_tokens = enc.batch_tokens, 64  # many small batches
    texts = [f"note {i}: " + "the quick brown fox jumps over the lazy dog " * (1 + i % 5) for i in range(40)]
    on_streams = []  # batches run side by side, per encode
    real = cpu_streams._on_streams
    monkeypatch.setattr(cpu_streams, "_on_streams",
                        lambda fn, items, streams: on_streams.append(len(items)) or real(fn, items, streams))
    done = []
    try:
        two = enc.encode(texts, progress=done.append)
        monkeypatch.setenv(cpu_streams.ENV, "1")
        one = enc.encode(texts)
    finally:
        enc.batch_tokens = before
    assert len(on_streams) == 1 and on_streams[0] >= 4  # the first encode only
    assert sum(done) == len(texts) and len(done) > 2
    np.testing.assert_allclose(two, one, atol=1e-6)  # bit for bit here; other BLAS builds may differ
