"""Single-query latency of this checkout against an earlier commit's, in one process, paired.

    python bench/single_text_ab.py --ref HEAD~2 [--dtypes bf16,int8,fp32] [--queries 300] [--rounds 3] [--record]

A change to the single-text path is worth a few percent at most, and this machine's speed
drifts by more than that within minutes, so two runs in turn cannot tell. Here the commit's
`searchkit` package is copied out of git (as `searchkit_ref`) and imported next to the
working tree's; each SciFact claim is embedded by both encoders, one straight after the
other, the one that goes first alternating; and a round reports each one's p50 and the
median of the per-query ratios (checkout / ref), which a slow spell moves little. Each
round loads both encoders afresh, the one loaded first alternating too. The vectors of
both are compared: a speed change that moves them says so.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from _common import record, scifact_claims  # noqa: E402

import searchkit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REF_PACKAGE = "searchkit_ref"
# The package's own absolute imports ("from searchkit.errors import ..."), which must point
# at the copy, not at the checkout.
ABSOLUTE = re.compile(r"^(\s*(?:from|import)\s+)searchkit(?=[.\s])", re.M)


def import_ref(ref: str, into: Path):
    """The `searchkit` package as it was at git commit `ref`, imported as `searchkit_ref`."""
    sha = subprocess.run(["git", "rev-parse", "--verify", f"{ref}^{{commit}}"], cwd=REPO,
                         capture_output=True, text=True)
    if sha.returncode:
        sys.exit(f"single_text_ab: error: no commit {ref!r} in {REPO}")
    tar = subprocess.run(["git", "archive", sha.stdout.strip(), "searchkit"], cwd=REPO,
                         capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(tar)) as archive:
        archive.extractall(into, filter="data")
    (into / "searchkit").rename(into / REF_PACKAGE)
    for source in (into / REF_PACKAGE).rglob("*.py"):
        text = source.read_text(encoding="utf-8")
        source.write_text(ABSOLUTE.sub(rf"\g<1>{REF_PACKAGE}", text), encoding="utf-8")
    sys.path.insert(0, str(into))
    return importlib.import_module(REF_PACKAGE), sha.stdout.strip()[:7]


def paired(a, b, queries: list[str]) -> tuple[float, float, float]:
    """One round: p50 of a, p50 of b (ms), and the median of b/a over the queries."""
    ta, tb = [], []
    for i, q in enumerate(queries):
        order = ((a, ta), (b, tb)) if i % 2 == 0 else ((b, tb), (a, ta))
        for fn, times in order:
            t = time.perf_counter()
            fn(q)
            times.append(time.perf_counter() - t)
    ratio = statistics.median(y / x for x, y in zip(ta, tb))
    return statistics.median(ta) * 1e3, statistics.median(tb) * 1e3, ratio


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ref", required=True, help="the git commit to compare with (HEAD, HEAD~1, a hash)")
    ap.add_argument("--dtypes", default="bf16,int8,fp32")
    ap.add_argument("--model", default=None, help="model name or folder (default: the packaged MiniLM)")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--record", action="store_true", help="append the results to bench/RESULTS.md")
    args = ap.parse_args()

    queries = scifact_claims(args.queries)
    tmp = tempfile.TemporaryDirectory()
    ref_package, sha = import_ref(args.ref, Path(tmp.name))
    lines = [f"single texts on the CPU, {len(queries)} SciFact claims, each embedded by both encoders in "
             f"turn (who goes first alternating); B/A is the median of the per-query ratios",
             "", f"| dtype | round | loaded first | A: {sha} p50 ms | B: checkout p50 ms | B/A |",
             "|---|---:|---|---:|---:|---:|"]
    same = []
    for dtype in args.dtypes.split(","):
        diff = 0.0
        for r in range(args.rounds):
            # Fresh encoders each round, loaded in turns: the one loaded second ran 1.5% faster
            # in an A/B of a commit against itself (int8; bf16 0.2%).
            first, second = (ref_package, searchkit) if r % 2 == 0 else (searchkit, ref_package)
            loaded = {pkg: pkg.load_encoder(args.model, device="cpu", dtype=dtype) for pkg in (first, second)}
            a, b = loaded[ref_package], loaded[searchkit]
            for enc in (a, b):
                if hasattr(enc, "trace_single_texts"):  # a commit from before the graph has none
                    enc.trace_single_texts()
            va = np.stack([a.encode([q])[0] for q in queries[:64]])
            vb = np.stack([b.encode([q])[0] for q in queries[:64]])
            diff = max(diff, float(np.abs(va - vb).max()))
            pa, pb, ratio = paired(lambda q, e=a: e.encode([q]), lambda q, e=b: e.encode([q]), queries)
            who = "A" if first is ref_package else "B"
            lines.append(f"| {dtype} | {r + 1} | {who} | {pa:.2f} | {pb:.2f} | {ratio:.3f} |")
            print(lines[-1], file=sys.stderr)
            del loaded, a, b
        same.append(f"{dtype}: vectors {'bit for bit the same' if diff == 0 else f'differ, max |Δ| {diff:.2e}'}")
    lines += ["", "; ".join(same)]
    print("\n".join(lines))
    if args.record:
        record(f"Single-query latency, checkout against {sha} (paired)", lines)


if __name__ == "__main__":
    main()
