"""searchkit's glibc malloc setting (searchkit/cpu_memory.py) on and off, each in a fresh
process that holds only the encoder, as `searchkit ingest` does.

    python bench/malloc_reuse.py [--docs 64] [--dtypes int8,fp32] [--rounds 2] [--record]

The setting is process-wide, so in bench/encoder_speed.py, where every contender shares one
process, it cannot be compared; here each run is its own process, and the two settings take
turns round by round. Printed: the best encode time of each, and off ÷ on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from _common import record

CHILD = """
import json, sys, time
sys.path.insert(0, {bench!r})
from _common import scifact_abstracts
import searchkit
texts = scifact_abstracts({docs})
enc = searchkit.load_encoder(device="cpu", dtype={dtype!r})
enc.encode(texts)
best = min(_timed(enc, texts) for _ in range(4))
print(json.dumps(best))
"""
TIMED = "def _timed(enc, texts):\n    t = time.perf_counter(); enc.encode(texts); return time.perf_counter() - t\n"


def run(dtype: str, docs: int, on: bool) -> float:
    code = CHILD.replace("best = ", TIMED + "best = ").format(bench=os.path.dirname(os.path.abspath(__file__)),
                                                               docs=docs, dtype=dtype)
    env = dict(os.environ, SEARCHKIT_MALLOPT="1" if on else "0", HF_HUB_OFFLINE="1")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=64)
    ap.add_argument("--dtypes", default="int8,fp32")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    lines = [f"{args.docs} SciFact abstracts, all-MiniLM-L6-v2, each run a fresh process (best of 4 encodes); "
             f"best of {args.rounds} rounds, the settings taking turns", "",
             "| dtype | malloc reuse on | off | off ÷ on |", "|---|---:|---:|---:|"]
    for dtype in args.dtypes.split(","):
        best = {True: float("inf"), False: float("inf")}
        for _ in range(args.rounds):
            for on in (True, False):
                best[on] = min(best[on], run(dtype, args.docs, on))
        lines.append(f"| {dtype} | {best[True]:.3f} s | {best[False]:.3f} s | {best[False] / best[True]:.2f} |")
    print("\n".join(lines))
    if args.record:
        record("glibc malloc reuse on and off, one encoder per process", lines)


if __name__ == "__main__":
    main()
