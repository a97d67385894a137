"""Ingest end to end vs pure encoding of the same chunks, and the ingest's peak memory.

    python bench/ingest_overhead.py [--docs 1000] [--dtype fp32] [--corpus PATH] [--record]

Runs `searchkit ingest --json` as a child process on a SciFact subset (the first `--docs`
records as one JSONL file; `--docs 0` = all 5,183) or on `--corpus`, then reads the chunks
it stored back from the catalog and times our encoder on exactly those texts in this
process (model loaded and warmed up: the encoder's own cost and nothing else).

Reported: the ingest's own seconds (its `--json` summary: scan, read, chunk, embed,
store, commit; model loading excluded), the child's wall time (Python start and model
load included), pure encoding seconds, their ratio, and the child's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import SCIFACT, best_of, record  # noqa: E402

import searchkit  # noqa: E402


def scifact_subset(folder: Path, docs: int, one_file: bool = True) -> Path:
    """The first `docs` SciFact records (all when 0) as one JSONL file in `folder`, or, with
    `one_file=False`, as a folder of one-record JSONL files (the same chunks, file by file)."""
    out = folder / ("scifact.jsonl" if one_file else "scifact")
    if not one_file:
        out.mkdir()
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as src:
        dst = open(out, "w", encoding="utf-8") if one_file else None
        for i, line in enumerate(src):
            if docs and i >= docs:
                break
            if dst:
                dst.write(line)
            else:
                (out / f"{i:05d}.jsonl").write_text(line, encoding="utf-8")
        if dst:
            dst.close()
    return out


def run_ingest(corpus: Path, index: Path, dtype: str) -> tuple[dict, float, float]:
    """(summary, wall seconds, peak RSS MB) of one `searchkit ingest` child process."""
    cmd = [sys.executable, "-m", "searchkit", "ingest", str(corpus), "--index", str(index),
           "--device", "cpu", "--dtype", dtype, "--json"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if done.returncode:
        sys.exit(f"ingest failed ({done.returncode}): {done.stderr.strip()}")
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak_kb <= before:
        sys.exit("cannot attribute peak RSS: run one ingest per bench process")
    return json.loads(done.stdout), wall, peak_kb / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=1000, help="SciFact records to ingest (0: all)")
    ap.add_argument("--corpus", type=Path, default=None, help="ingest this file or folder instead")
    ap.add_argument("--dtype", default="fp32")
    ap.add_argument("--repeat", type=int, default=1, help="pure-encoding runs (the fastest counts)")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="sk-ingest-bench-") as tmp:
        tmp = Path(tmp)
        corpus = args.corpus or scifact_subset(tmp, args.docs)
        summary, wall, peak_mb = run_ingest(corpus, tmp / "index", args.dtype)

        index = searchkit.open_index(tmp / "index", device="cpu", dtype=args.dtype)
        ids = index.vectors.ids()
        texts = [row.text for row in index.catalog.chunks(ids.tolist()).values()]
        encoder = index.encoder
        encoder.encode(texts[:64])  # warm-up
        encode_s = best_of(lambda: encoder.encode(texts), args.repeat)
        tokens = sum(len(x) for x in encoder.tokenize(texts))

    subset = f"first {args.docs:,} records" if args.docs else "all records"
    what = str(args.corpus) if args.corpus else f"SciFact, {subset} (one JSONL file)"
    ingest_s = summary["seconds"]
    lines = [
        f"{what}: {summary['files_added']} file(s), {summary['chunks_added']:,} chunks, "
        f"{tokens:,} tokens; all-MiniLM-L6-v2 {args.dtype} on the CPU",
        "",
        "| pure encoding s | ingest s (own) | ingest ÷ encoding | CLI wall s | peak RSS MB |",
        "|---:|---:|---:|---:|---:|",
        f"| {encode_s:.1f} | {ingest_s:.1f} | {ingest_s / encode_s:.3f} | {wall:.1f} | {peak_mb:,.0f} |",
        "",
        "ingest s (own): the `seconds` of `searchkit ingest --json` (scan, read, chunk, embed, "
        "store, commit); CLI wall adds Python start-up and model loading. Pure encoding: "
        "`Encoder.encode` on the stored chunk texts, model loaded.",
    ]
    print("\n".join(lines))
    if args.record:
        record("Ingest vs pure encoding, peak memory", lines)


if __name__ == "__main__":
    main()
