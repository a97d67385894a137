"""Which CPU dtype is fastest on this machine, measured rather than read off CPU flags.

The same flag (AVX-512 BF16) came with bf16 at 2.2x fp32 on one host and slower than fp32
on another, so `--dtype fastest` times a few batches in each CPU dtype, checks that each
one's vectors stay within `MIN_COSINE` of fp32's, and picks the fastest that does. The
figures are kept per CPU model, torch version, thread count, count of batches run side by
side (cpu_streams.py) and model in a small JSON file
(`cache_file()`), so a machine pays the few seconds once. fp32 stays the default (`auto`):
it is the parity reference; `fastest` is the opt-in.

Two guards keep a pick from being slower than fp32 in fact. A dtype other than fp32 must
beat it by `MIN_GAIN`, more than the few per cent by which back-to-back passes differ. And
the probe trusts only passes that had the CPU to themselves: on a CPU busy with other work,
int8 once measured 240 tok/s against fp32's 1,906 (8,636 against 5,136 on the same machine
when quiet), as its many short ops wait for their threads. A pass counts when its threads
got at least `MIN_CPU_SHARE` of the CPU time the wall clock allows them (measured on a
2-core AMD EPYC host, 2026-12-06: 0.99-1.00 when quiet, 0.78-0.93 with OMP_WAIT_POLICY=
PASSIVE, 0.50-0.63 beside a test run), and a dtype's figure when two such passes agree
within `STEADY`. The probe takes more passes until every figure does; figures that never
do serve this process only (which then keeps fp32) and are not cached.

Fastest depends on the job. Batches (an ingest) gain from int8's products; a single query
of 20 tokens gains less, and int8's per-token quantising adds small ops to every
projection: on the AMD host above int8 embedded batches fastest (14,177 tok/s of claims
against bf16's 12,706) and single queries slower than bf16 (3.98 against 2.99 ms,
bench/RESULTS.md 2026-12-06). So the probe also times `QUERY_TEXTS` one at a time, the
dtypes taking turns query by query, and `fastest(speeds, "queries")` picks by the median
latency, with the same quality floor and `MIN_GAIN` over fp32. `searchkit search` and
`searchkit tui` ask for that pick; everything else for the batch one.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .cpu_info import cpu_model
from .cpu_streams import stream_count
from .encoder import Encoder
from .sample_texts import DEFAULT_TEXTS

CANDIDATES = ("fp32", "bf16", "int8")
MIN_COSINE = 0.995  # lowest cosine to fp32's vector, over the probe texts
PROBE_PASSES = 3  # timed passes per dtype; the fastest counts
MAX_PASSES = 9  # passes per dtype before the probe gives up waiting for steady figures
STEADY = 1.15  # a dtype's figure is steady when its two fastest counted passes are this close
MIN_CPU_SHARE = 0.75  # a pass counts when its threads got this share of their wall time
MIN_GAIN = 1.10  # how much faster than fp32 another dtype must be to be picked
CACHE_ENV = "SEARCHKIT_CACHE_DIR"
JOBS = ("batches", "queries")  # what `fastest` picks for
QUERY_ROUNDS = 3  # passes over QUERY_TEXTS, each query run by every dtype in turn
# Search queries of everyday lengths (5 to 20 tokens with MiniLM), embedded one at a time.
QUERY_TEXTS = (
    "how do I open a file and read it line by line",
    "what causes high blood pressure",
    "python list comprehension with a condition",
    "does vitamin D lower the risk of fractures in older adults",
    "merge two sorted arrays",
    "symptoms of iron deficiency",
    "why is the sky blue",
    "best way to cache results of an expensive function call in a web service",
    "error: permission denied when writing to a mounted volume",
    "effect of exercise on sleep quality",
    "binary search tree deletion",
    "when was the printing press invented and how did it change Europe",
)


@dataclass(frozen=True)
class DtypeSpeed:
    dtype: str
    tokens_per_s: float
    min_cosine: float  # to fp32's vectors of the same texts
    steady: bool = True  # two passes that had the CPU agreed within STEADY
    query_ms: float | None = None  # median latency of one query on its own (QUERY_TEXTS)

    @property
    def good_enough(self) -> bool:
        return self.min_cosine >= MIN_COSINE


def cache_file() -> Path:
    base = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "searchkit"
    return Path(base) / "cpu-dtype-speed.json"


def host_key(model: str) -> str:
    # The streams too: batches side by side speed int8 up more than fp32 (cpu_streams.py).
    streams = stream_count(torch.device("cpu"))
    return f"{cpu_model()} | torch {torch.__version__} | {torch.get_num_threads()} threads | {streams} streams | {model}"


def probe_texts() -> list[str]:
    """Texts of everyday lengths (parity's, a few to a few hundred tokens), 64 of them:
    with MiniLM two full batches and a short one, so the probe times batches as an ingest
    runs them, two side by side (cpu_streams.py), which favours int8 more than fp32."""
    return [DEFAULT_TEXTS[i % len(DEFAULT_TEXTS)] for i in range(64)]


def usable_cpus() -> float:
    """How many CPUs this process can run on: its affinity, capped by the container's CPU
    quota (cgroup v2 `cpu.max`, v1 `cpu.cfs_quota_us`) when it has one."""
    count = float(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    quota = None
    try:
        limit, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        quota = None if limit == "max" else int(limit) / int(period)
    except (OSError, ValueError):
        try:
            limit = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
            quota = limit / int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text()) if limit > 0 else None
        except (OSError, ValueError):
            pass
    return min(count, quota) if quota else count


def probe_threads() -> float:
    """The CPUs a probe pass can keep busy: torch's threads, at most the usable CPUs (in a
    container with a quota of 2 CPUs on a 16-core host torch still starts 16 threads)."""
    return min(float(torch.get_num_threads()), usable_cpus())


@dataclass(frozen=True)
class Pass:
    seconds: float  # wall time of one `encode` of the probe texts
    cpu_share: float  # CPU time its threads got / (wall time x probe_threads()): under 1 when others ran

    @property
    def counts(self) -> bool:
        return self.cpu_share >= MIN_CPU_SHARE


def is_steady(passes: list[Pass]) -> bool:
    """Whether the two fastest passes that count agree within STEADY."""
    times = sorted(p.seconds for p in passes if p.counts)
    return len(times) >= 2 and times[1] <= times[0] * STEADY


def measure(model: str, texts: list[str] | None = None, passes: int = PROBE_PASSES, max_passes: int = MAX_PASSES,
            clock=time.perf_counter, cpu_clock=time.process_time) -> list[DtypeSpeed]:
    """Tokens/s and cosine to fp32 of each CPU dtype on `texts`, the dtypes taking turns:
    `passes` rounds, and more up to `max_passes` while some dtype's figure is not steady."""
    texts = texts or probe_texts()
    threads = probe_threads()
    encoders = {d: Encoder(model, device="cpu", dtype=d) for d in CANDIDATES}
    tokens = sum(len(ids) for ids in encoders["fp32"].tokenize(texts))
    vectors = {d: enc.encode(texts) for d, enc in encoders.items()}  # also the warm-up
    runs: dict[str, list[Pass]] = {d: [] for d in CANDIDATES}
    for rounds in range(1, max_passes + 1):
        for d, enc in encoders.items():
            wall, cpu = clock(), cpu_clock()
            enc.encode(texts)
            wall, cpu = clock() - wall, cpu_clock() - cpu
            runs[d].append(Pass(wall, cpu / (max(wall, 1e-9) * threads)))
        if rounds >= passes and all(is_steady(r) for r in runs.values()):
            break

    def best(r: list[Pass]) -> float:
        return min((p.seconds for p in r if p.counts), default=min(p.seconds for p in r))

    query_ms = query_latency(encoders, clock=clock)
    return [DtypeSpeed(d, tokens / best(runs[d]), float((vectors[d] * vectors["fp32"]).sum(1).min()),
                       is_steady(runs[d]), query_ms[d]) for d in CANDIDATES]


def query_latency(encoders: dict, texts=QUERY_TEXTS, rounds: int = QUERY_ROUNDS, clock=time.perf_counter) -> dict:
    """Median ms of one query on its own per dtype, the dtypes taking turns query by query
    (which goes first rotating), so that a slow spell falls on all of them alike."""
    names = list(encoders)
    for enc in encoders.values():
        enc.trace_single_texts()  # the graph single texts run (single_text_graph.py), not its tracing
        enc.encode_one(texts[0])
    times: dict[str, list[float]] = {d: [] for d in names}
    for i in range(rounds * len(texts)):
        text = texts[i % len(texts)]
        for d in names[i % len(names):] + names[: i % len(names)]:
            start = clock()
            encoders[d].encode_one(text)
            times[d].append((clock() - start) * 1e3)
    return {d: statistics.median(ts) for d, ts in times.items()}


def _read_cache() -> dict:
    try:
        return json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: measure again


def _from_cache(rows) -> list[DtypeSpeed] | None:
    """Cached figures, or None where there are none or another version wrote them (one that
    timed no queries among them): those are measured again."""
    try:
        speeds = [DtypeSpeed(**row) for row in rows or []]
    except TypeError:
        return None
    return speeds if speeds and all(s.query_ms is not None for s in speeds) else None


def is_cached(model: str) -> bool:
    return cached(model) is not None


def cached(model: str) -> list[DtypeSpeed] | None:
    """This host's cached figures for `model`, or None: nothing is measured (`searchkit info`
    must answer at once, even on a busy CPU)."""
    return _from_cache(_read_cache().get(host_key(model)))


def measured(model: str, refresh: bool = False) -> list[DtypeSpeed]:
    """This host's figures for `model`, from the cache or measured now (and then cached)."""
    speeds = None if refresh else cached(model)
    return speeds if speeds is not None else remeasure(model)[0]


def remeasure(model: str) -> tuple[list[DtypeSpeed], bool]:
    """Measure `model`'s figures now; cache them when they settled. Returns the figures and
    whether they were written to `cache_file()`."""
    speeds = measure(model)
    if not settled(speeds):
        return speeds, False  # a busy CPU: these serve this process only (see the module docstring)
    cache = _read_cache()
    cache[host_key(model)] = [asdict(s) for s in speeds]
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        return speeds, False  # a read-only home: the figures serve this process only
    return speeds, True


def settled(speeds: list[DtypeSpeed]) -> bool:
    """Whether every figure is steady: then they are cached, and may pick another dtype."""
    return all(s.steady for s in speeds)


def fastest(speeds: list[DtypeSpeed], job: str = "batches") -> str:
    """The fastest dtype for `job` whose vectors stay within MIN_COSINE of fp32's and which
    beats fp32 by MIN_GAIN: in tokens/s for "batches", in the latency of one query for
    "queries". fp32 when none does, or when the figures are not steady."""
    if job not in JOBS:
        raise ValueError(f"job must be one of {JOBS}, not {job!r}")
    by_name = {s.dtype: s for s in speeds}
    if "fp32" not in by_name or not settled(speeds):
        return "fp32"

    def speed(s: DtypeSpeed) -> float | None:  # higher is faster
        if job == "batches":
            return s.tokens_per_s
        return 1.0 / s.query_ms if s.query_ms else None

    base = speed(by_name["fp32"])
    if base is None:
        return "fp32"
    ok = [s for s in speeds if s.dtype != "fp32" and s.good_enough and (speed(s) or 0.0) >= base * MIN_GAIN]
    return max(ok, key=speed).dtype if ok else "fp32"
