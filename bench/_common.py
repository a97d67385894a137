"""Shared bits of the benchmarks: data loading, timing, and appending to RESULTS.md."""

from __future__ import annotations

import json
import os
import shlex
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import torch

SCIFACT = Path(os.environ.get("SCIFACT_DIR", Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"))
RESULTS = Path(__file__).with_name("RESULTS.md")


def scifact_abstracts(limit: int | None = None) -> list[str]:
    """title + " " + text per record, as the sentence-transformers reference embeds them."""
    out = []
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            out.append(f"{rec.get('title', '')} {rec['text']}".strip())
            if limit and len(out) >= limit:
                break
    return out


def scifact_claims(limit: int | None = None) -> list[str]:
    out = []
    with open(SCIFACT / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            out.append(json.loads(line)["text"])
            if limit and len(out) >= limit:
                break
    return out


def best_of(fn, repeat: int) -> float:
    """The fastest of `repeat` runs, in seconds: the least disturbed by other load."""
    return best_of_each({"": fn}, repeat)[""]


def best_of_each(fns: dict, repeat: int) -> dict:
    """`best_of` for several contenders, run in turns (a, b, a, b, ...): on a shared
    machine a noisy spell then falls on every contender, not on whichever ran in it."""
    times = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    return {name: min(ts) for name, ts in times.items()}


def percentiles(samples: list[float]) -> tuple[float, float]:
    qs = statistics.quantiles(samples, n=100)
    return statistics.median(samples), qs[98]


LATENCY_PASSES = 3  # latency_ms's default; the scripts name it in what they record


def latency_ms(fn, items: list, warmup: int = 10, passes: int = LATENCY_PASSES) -> tuple[float, float]:
    """p50 and p99 in ms of `fn(item)`, one item at a time, after a few warm-up calls.

    `passes` runs over all items; the pass with the lowest p50 counts (like best_of: the
    one least disturbed by other load on a shared machine).
    """
    return latency_ms_each({"": fn}, items, warmup, passes)[""]


def latency_ms_each(fns: dict, items: list, warmup: int = 10, passes: int = LATENCY_PASSES) -> dict:
    """`latency_ms` for several contenders, whose passes take turns (each runs a whole
    pass, so one model's weights do not evict another's between two queries)."""
    for fn in fns.values():
        for item in items[:warmup]:
            fn(item)
    best = {}
    for _ in range(passes):
        for name, fn in fns.items():
            samples = []
            for item in items:
                t = time.perf_counter()
                fn(item)
                samples.append((time.perf_counter() - t) * 1e3)
            figures = percentiles(samples)
            if name not in best or figures[0] < best[name][0]:
                best[name] = figures
    return best


def machine() -> str:
    from searchkit.dtype_speed import cpu_model

    cpu = cpu_model()
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{os.cpu_count()} cores {cpu}{gpu}, torch {torch.__version__}"


def record(title: str, lines: list[str]) -> None:
    """Append a dated entry with the command that produced it to bench/RESULTS.md."""
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    entry = [f"\n### {title} — {date.today().isoformat()}", "", f"- machine: {machine()}", f"- command: `{command}`", ""]
    entry += lines
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nEach entry is appended by the script named in its command.\n")
    with open(RESULTS, "a", encoding="utf-8") as fh:
        fh.write("\n".join(entry) + "\n")
