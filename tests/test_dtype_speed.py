"""--dtype fastest: CPU dtypes timed on this machine, the figures cached per host and model."""

import json

import numpy as np
import pytest

from searchkit import dtype_speed
from searchkit.dtype_speed import DtypeSpeed, fastest
from searchkit.encoder_loading import load_encoder
from searchkit.errors import BadInput


def test_the_fastest_good_enough_dtype_wins():
    speeds = [DtypeSpeed("fp32", 1000, 1.0), DtypeSpeed("bf16", 1500, 0.9999), DtypeSpeed("int8", 3000, 0.97)]
    assert fastest(speeds) == "bf16"  # int8 is faster but too far from fp32
    speeds[1] = DtypeSpeed("bf16", 800, 0.9999)
    assert fastest(speeds) == "fp32"  # slower than fp32 here: never picked
    assert fastest([DtypeSpeed("fp32", 1000, 1.0), DtypeSpeed("bf16", 1000, 1.0)]) == "fp32"  # a tie stays fp32


def test_a_lead_within_the_noise_keeps_fp32():
    gain = dtype_speed.MIN_GAIN
    assert fastest([DtypeSpeed("fp32", 1000, 1.0), DtypeSpeed("bf16", 1000 * gain - 1, 0.9999)]) == "fp32"
    assert fastest([DtypeSpeed("fp32", 1000, 1.0), DtypeSpeed("bf16", 1000 * gain, 0.9999)]) == "bf16"


def test_for_queries_the_fastest_single_query_wins():
    """On the AMD host of bench/RESULTS.md int8 embedded batches fastest and single queries
    slower than bf16: each job gets its own pick, with the same floors."""
    speeds = [DtypeSpeed("fp32", 7_500, 1.0, True, 4.70), DtypeSpeed("bf16", 12_500, 0.9999, True, 2.99),
              DtypeSpeed("int8", 14_000, 0.999, True, 3.98)]
    assert fastest(speeds) == fastest(speeds, "batches") == "int8"
    assert fastest(speeds, "queries") == "bf16"
    gain = dtype_speed.MIN_GAIN
    close = [DtypeSpeed("fp32", 1000, 1.0, True, 4.0), DtypeSpeed("bf16", 1000, 0.9999, True, 4.0 / gain + 0.01)]
    assert fastest(close, "queries") == "fp32"  # a lead within the noise
    far = [DtypeSpeed("fp32", 1000, 1.0, True, 4.0), DtypeSpeed("int8", 1000, 0.97, True, 1.0)]
    assert fastest(far, "queries") == "fp32"  # fast but too far from fp32's vectors
    with pytest.raises(ValueError, match="job"):
        fastest(speeds, "documents")


def test_figures_that_never_settled_keep_fp32():
    speeds = [DtypeSpeed("fp32", 1000, 1.0), DtypeSpeed("int8", 3000, 0.999, steady=False)]
    assert fastest(speeds) == "fp32"
    speeds = [DtypeSpeed("fp32", 1000, 1.0, steady=False), DtypeSpeed("int8", 3000, 0.999)]
    assert fastest(speeds) == "fp32"


class _ScriptedEncoders:
    """Stand-ins for Encoder whose passes take scripted times on fake clocks: what a busy
    CPU looks like to the probe, without timing anything real. A pass is a wall time, or
    (wall time, share of the CPU its threads got)."""

    def __init__(self, durations: dict[str, list]):
        self.durations = {d: iter(times) for d, times in durations.items()}
        self.now = self.cpu_now = 0.0
        self.passes = dict.fromkeys(durations, 0)
        probe = self

        class Fake:
            def __init__(self, model, device, dtype):
                self.dtype = dtype

            def tokenize(self, texts):
                return [[1, 2, 3, 4]] * len(texts)

            def trace_single_texts(self):
                return "traced"

            def encode_one(self, text):  # single queries: timed at no fake cost here
                return np.array([1.0, 0.0], dtype=np.float32)

            def encode(self, texts):
                if probe.passes[self.dtype] > 0:  # the first call is the warm-up, not timed
                    step = next(probe.durations[self.dtype])
                    wall, share = step if isinstance(step, tuple) else (step, 1.0)
                    probe.now += wall
                    probe.cpu_now += wall * share * dtype_speed.probe_threads()
                probe.passes[self.dtype] += 1
                vectors = np.zeros((len(texts), 2), dtype=np.float32)
                vectors[:, 0] = 1.0
                return vectors

        self.Encoder = Fake

    def measure(self, model, **kwargs):
        return real_measure(model, clock=lambda: self.now, cpu_clock=lambda: self.cpu_now, **kwargs)


real_measure = dtype_speed.measure


def test_the_probe_takes_more_passes_until_its_figures_settle(monkeypatch):
    # int8's passes run 3.0, 1.0, 2.0, then 1.05 s: not steady until its two fastest agree.
    script = _ScriptedEncoders({"fp32": [2.0] * 9, "bf16": [1.5] * 9, "int8": [3.0, 1.0, 2.0, 1.05, 9, 9, 9, 9, 9]})
    monkeypatch.setattr(dtype_speed, "Encoder", script.Encoder)
    speeds = {s.dtype: s for s in script.measure("m", texts=["a", "b"])}
    assert script.passes["fp32"] == 1 + 4  # warm-up + 4 timed rounds, not the default 3
    assert all(s.steady for s in speeds.values())
    assert speeds["int8"].tokens_per_s == pytest.approx(8 / 1.0)  # 2 texts x 4 tokens in its best pass
    assert speeds["fp32"].tokens_per_s == pytest.approx(8 / 2.0)


def test_passes_that_shared_the_cpu_do_not_count(monkeypatch):
    # fp32's first two passes ran beside another job (its threads got half the CPU): slow
    # and steady, they would make int8 look 3x fp32. The probe waits for passes that count.
    busy = (3.0, 0.5)
    script = _ScriptedEncoders({"fp32": [busy, busy, 1.0, 1.0] + [1.0] * 5, "bf16": [0.9] * 9, "int8": [0.95] * 9})
    monkeypatch.setattr(dtype_speed, "Encoder", script.Encoder)
    speeds = {s.dtype: s for s in script.measure("m", texts=["a", "b"])}
    assert script.passes["fp32"] == 1 + 4 and speeds["fp32"].steady
    assert speeds["fp32"].tokens_per_s == pytest.approx(8 / 1.0)
    assert fastest(list(speeds.values())) == "bf16"  # 1.11x fp32; int8's 1.05x is within the noise


def test_a_cpu_quota_is_what_the_share_is_taken_of(tmp_path, monkeypatch):
    """In a container allowed 1 CPU, 2 torch threads never get more than 1 CPU's time: quiet
    passes there must count."""
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    real_path = dtype_speed.Path
    monkeypatch.setattr(dtype_speed, "Path", lambda p: tmp_path / "cpu.max" if p.endswith("cpu.max") else real_path(p))
    monkeypatch.setattr(dtype_speed.os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)
    assert dtype_speed.usable_cpus() == 1.0
    monkeypatch.setattr("torch.get_num_threads", lambda: 2)
    assert dtype_speed.probe_threads() == 1.0

    def one_cpu_busy_for_a_second() -> dtype_speed.Pass:
        return dtype_speed.Pass(1.0, cpu_share=1.0 / (1.0 * dtype_speed.probe_threads()))

    assert one_cpu_busy_for_a_second().counts  # all that the quota allows
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert dtype_speed.usable_cpus() == 2.0
    assert not one_cpu_busy_for_a_second().counts  # half of two CPUs: something else had the rest


def test_figures_that_never_settle_are_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCHKIT_CACHE_DIR", str(tmp_path))
    # bf16's passes keep slowing down (a job starting beside the probe): no two agree.
    script = _ScriptedEncoders({"fp32": [2.0] * 9, "bf16": [2.0 ** -i for i in range(9)][::-1], "int8": [1.0] * 9})
    monkeypatch.setattr(dtype_speed, "Encoder", script.Encoder)
    monkeypatch.setattr(dtype_speed, "measure", script.measure)
    speeds = {s.dtype: s for s in dtype_speed.measured("m")}
    assert script.passes["fp32"] == 1 + dtype_speed.MAX_PASSES  # it waited as long as it may
    assert not speeds["bf16"].steady and speeds["fp32"].steady and speeds["int8"].steady
    assert fastest(list(speeds.values())) == "fp32"  # bf16 looked 2x fp32 once: not trusted
    assert not dtype_speed.cache_file().exists()  # and measured again next time


def test_a_cpu_busy_throughout_is_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("SEARCHKIT_CACHE_DIR", str(tmp_path))
    script = _ScriptedEncoders({d: [(1.0, 0.55)] * 9 for d in ("fp32", "bf16", "int8")})
    monkeypatch.setattr(dtype_speed, "Encoder", script.Encoder)
    monkeypatch.setattr(dtype_speed, "measure", script.measure)
    speeds = dtype_speed.measured("m")
    assert not any(s.steady for s in speeds) and fastest(speeds) == "fp32"
    assert not dtype_speed.cache_file().exists()


def test_fastest_measures_once_per_host_and_model(tmp_path, monkeypatch, small_bert):
    monkeypatch.setenv("SEARCHKIT_CACHE_DIR", str(tmp_path / "cache"))
    # Real passes of a tiny model, on a CI machine: every one counts as steady here, so that
    # what this test checks (the cache) does not hang on the machine's noise.
    monkeypatch.setattr(dtype_speed, "STEADY", float("inf"))
    monkeypatch.setattr(dtype_speed, "MIN_CPU_SHARE", 0.0)
    enc = load_encoder(small_bert, device="cpu", dtype="fastest")
    cached = json.loads((tmp_path / "cache" / "cpu-dtype-speed.json").read_text())
    (key, rows), = cached.items()
    assert dtype_speed.cpu_model() in key and str(small_bert) in key
    assert [r["dtype"] for r in rows] == ["fp32", "bf16", "int8"] and rows[0]["min_cosine"] == pytest.approx(1.0)
    assert enc.dtype_name == fastest([DtypeSpeed(**r) for r in rows])

    assert all(r["query_ms"] > 0 for r in rows)  # single queries timed too

    def no_measuring(*args, **kwargs):
        raise AssertionError("measured again despite the cache")

    monkeypatch.setattr(dtype_speed, "measure", no_measuring)
    assert load_encoder(small_bert, device="cpu", dtype="fastest").dtype_name == enc.dtype_name
    for_queries = load_encoder(small_bert, device="cpu", dtype="fastest", fastest_for="queries")
    assert for_queries.dtype_name == fastest([DtypeSpeed(**r) for r in rows], "queries")
    with pytest.raises(BadInput, match="fastest_for"):
        load_encoder(small_bert, device="cpu", dtype="fastest", fastest_for="documents")
    old = {key: [{k: v for k, v in r.items() if k != "query_ms"} for r in rows]}  # a cache from before queries were timed
    (tmp_path / "cache" / "cpu-dtype-speed.json").write_text(json.dumps(old))
    assert not dtype_speed.is_cached(str(small_bert))
    with pytest.raises(AssertionError, match="measured again"):
        load_encoder(small_bert, device="cpu", dtype="fastest")
    (tmp_path / "cache" / "cpu-dtype-speed.json").write_text("not json")  # a broken cache is measured anew
    with pytest.raises(AssertionError, match="measured again"):
        load_encoder(small_bert, device="cpu", dtype="fastest")
