"""A Ray Data ingest (`searchkit ingest --ray local`) against a local ingest of the same files,
measured in the same run, and Ray with 1 and 2 embedding actors.

    python bench/ray_ingest.py [--docs 0] [--workers 1,2] [--record]

Each ingest is a `searchkit ingest --json` child process into a new index, on SciFact (the
first `--docs` records, 0 = all 5,183, each its own one-record JSONL file: Ray spreads work
file by file, so one big file would go to one task and one actor). Reported: the ingest's own
seconds (its summary: scan, read, chunk, embed, store, commit; model and Ray start-up
excluded), the child's wall time (Python, model and the Ray cluster's start included), and
the ratios to the local ingest. Local and Ray runs take turns, so a noisy spell on a
shared machine falls on both.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import record  # noqa: E402
from ingest_overhead import scifact_subset  # noqa: E402


def ingest(corpus: Path, index: Path, *extra: str) -> tuple[dict, float]:
    cmd = [sys.executable, "-m", "searchkit", "ingest", str(corpus), "--index", str(index), "--device", "cpu",
           "--dtype", "fp32", "--json", *extra]
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode:
        sys.exit(f"ingest failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return json.loads(done.stdout), wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=0)
    ap.add_argument("--workers", default="1,2", help="embedding actors per Ray run, comma-separated")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        corpus = scifact_subset(Path(tmp), args.docs, one_file=False)
        runs = {}
        for name, extra in [("local", ())] + [(f"ray, {w} worker{'s' * (w > 1)}", ("--ray", "local", "--workers", str(w)))
                                               for w in workers]:
            summary, wall = ingest(corpus, Path(tmp) / name.replace(" ", "").replace(",", "-"), *extra)
            runs[name] = (summary["seconds"], wall, summary["chunks_added"])
            print(name, runs[name], flush=True)
    local_s, local_wall, chunks = runs["local"]
    lines = [f"SciFact, {chunks:,} chunks ({args.docs or 5183:,} abstracts), all-MiniLM-L6-v2 fp32 on the CPU, "
             "one file per abstract, one `searchkit ingest --json` child each, in this order", "",
             "| ingest | its seconds | ÷ local | wall (start-up included) | ÷ local |", "|---|---:|---:|---:|---:|"]
    for name, (seconds, wall, n) in runs.items():
        assert n == chunks, (name, n, chunks)
        lines.append(f"| {name} | {seconds:.1f} s | {seconds / local_s:.2f} | {wall:.1f} s | {wall / local_wall:.2f} |")
    print("\n".join(lines))
    if args.record:
        record("Ray Data ingest against a local one (SciFact)", lines)


if __name__ == "__main__":
    main()
