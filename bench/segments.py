"""The segmented write path on synthetic clustered vectors, fed through the real commit and
merge code (`IndexWriter.commit`, `IndexWriter.merge`): what a small change costs to commit, what a
fresh process pays to open the index and answer one search, search latency over the
segments against one combined FAISS index of the same type, the bytes a long ingest
writes against the final index size, and deletes of 10%.

    python bench/segments.py [--n 1000000] [--commit 20000] [--type flat|hnsw] [--record]

The index folder holds vectors only (no chunk rows): this measures the vector store. The
"one file" comparison is format 1's commit: the whole index rewritten with
`FaissVectors.save` (write, fsync, hash), measured in the same run on the same vectors.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import latency_ms_each, record
from index_types import DIM, clustered

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from searchkit.index import Index  # noqa: E402
from searchkit.store.catalog import Catalog  # noqa: E402
from searchkit.store.vectors import FaissVectors  # noqa: E402


def vector_index(folder: Path, choice: str) -> Index:
    """An index folder whose settings are those of a `choice` index of DIM dims, no model."""
    folder.mkdir(parents=True)
    catalog = Catalog(folder / "catalog.db", create=True)
    with catalog.write():
        catalog.put_settings({"dim": DIM, "index_choice": choice, "index_type": "flat", "index_params": {},
                              "normalize": True, "format": 2, "generation": 0, "next_chunk_id": 1})
    catalog.close()
    return Index(folder)


def segment_bytes(folder: Path) -> int:
    return sum(e.stat().st_size for e in os.scandir(folder) if e.name.startswith("segment."))


def drop_page_cache() -> bool:
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


OPEN_AND_SEARCH = """
import sys, time
t0 = time.perf_counter()
sys.path.insert(0, {repo!r})
from searchkit.index import Index
import numpy as np
t1 = time.perf_counter()
q = np.load({queries!r})[:1]
index = Index({folder!r})
scores, ids = index.vectors.search(q, 10)
t2 = time.perf_counter()
print(f"{{t1 - t0:.3f}} {{t2 - t1:.3f}} {{len(index.vectors.loaded)}} {{sum(v.mapped for v in index.vectors.loaded.values())}}")
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--commit", type=int, default=20_000, help="vectors per commit, as an ingest's commit_chunks")
    ap.add_argument("--type", default="flat", choices=["flat", "hnsw"])
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--no-optimize", action="store_true", help="skip the final optimize (HNSW: a 1M rebuild)")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()

    data = clustered(args.n + args.queries, seed=1)
    x, q = data[: args.n], data[args.n :]
    ids = np.arange(1, args.n + 1, dtype=np.int64)
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_TMP", "/tmp")) as tmp:
        folder = Path(tmp) / "index"
        index = vector_index(folder, args.type)
        started = time.perf_counter()
        commits = merges = 0
        with index.writer() as writer:
            for lo in range(0, args.n, args.commit):
                writer.add_vectors(ids[lo : lo + args.commit], x[lo : lo + args.commit])
                merges += writer.commit().merges
                commits += 1
            written = writer.bytes_written
        ingest_s = time.perf_counter() - started
        final = segment_bytes(folder)
        segments = len(index.vectors.loaded)
        print(f"ingest: {commits} commits, {merges} merges, {segments} segments, {ingest_s:.1f} s; "
              f"written {written / 2**20:,.0f} MB for {final / 2**20:,.0f} MB", flush=True)

        # A 100-vector change: 100 removed, 100 added (an edited file), committed.
        rng = np.random.default_rng(2)
        with index.writer() as writer:
            writer.remove_vectors(rng.choice(ids, 100, replace=False))
            writer.add_vectors(np.arange(args.n + 1, args.n + 101), x[:100])
            t = time.perf_counter()
            writer.commit(merge=False)
            commit_s = time.perf_counter() - t
            t = time.perf_counter()
            merges_after = writer.merge()
            merge_s = time.perf_counter() - t
        # format 1, the same change: the whole index rewritten as one file
        combined = FaissVectors.from_vectors(args.type, index.vectors.ids(), index.vectors.reconstruct(index.vectors.ids()))
        t = time.perf_counter()
        combined.save(Path(tmp) / "one-file.faiss")
        one_file_s = time.perf_counter() - t
        one_file_mb = (Path(tmp) / "one-file.faiss").stat().st_size / 2**20
        print(f"100-vector commit: {commit_s:.3f} s (+ {merge_s:.3f} s for {merges_after} merges); "
              f"one file: {one_file_s:.2f} s", flush=True)

        # A fresh process opens the index and answers one search.
        np.save(Path(tmp) / "q.npy", q)
        script = OPEN_AND_SEARCH.format(repo=str(Path(__file__).resolve().parents[1]), queries=str(Path(tmp) / "q.npy"),
                                        folder=str(folder))
        runs = []
        # Untimed first: this VM reclaims page-cache pages left idle for minutes (DAMON), so
        # files written during the ingest may no longer be cached; "warm" means cached.
        subprocess.run([sys.executable, "-c", script], capture_output=True, check=True)
        for cold in (False, True):
            dropped = drop_page_cache() if cold else False
            t = time.perf_counter()
            out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout.split()
            runs.append((cold and dropped, float(out[0]), float(out[1]), time.perf_counter() - t, int(out[2]), int(out[3])))
        print("fresh process (cold?, imports s, open+search s, wall s, segments, mapped):", runs, flush=True)

        # Search latency over the segments against the one combined index.
        vectors = index.vectors
        one = FaissVectors.load(Path(tmp) / "one-file.faiss")
        lat = latency_ms_each({"segments": lambda qq: vectors.search(qq[None], 10),
                               "combined": lambda qq: one.search(qq[None], 10)}, list(q))
        _, seg_ids = vectors.search(q, 10)
        _, one_ids = one.search(q, 10)
        agree = float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(seg_ids, one_ids)]))
        live = np.sort(vectors.ids())  # what the index holds now: 100 removed, 100 added as copies of x[:100]
        held = x[np.where(live <= args.n, live - 1, live - args.n - 1)]
        exact = np.concatenate([live[np.argpartition(-(part @ held.T), 10, axis=1)[:, :10]]
                                for part in np.array_split(q, 6)])
        del held
        recall = {name: float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, exact)]))
                  for name, got in (("segments", seg_ids), ("combined", one_ids))}
        print("latency:", lat, "agreement@10:", agree, "recall@10:", recall, flush=True)

        # Deletes of 10%: excluded at once; after optimize the files hold none of them.
        gone = rng.choice(vectors.ids(), args.n // 10, replace=False)
        with index.writer() as writer:
            t = time.perf_counter()
            writer.remove_vectors(gone)
            writer.commit(merge=False)
            delete_s = time.perf_counter() - t
        _, after = index.vectors.search(q, 10)
        leaked = int(np.isin(after, gone).sum())
        optimized = None
        if not args.no_optimize:
            t = time.perf_counter()
            report = index.optimize()
            optimize_s = time.perf_counter() - t
            held = set()
            for v in index.vectors.loaded.values():
                held |= set(v.ids().tolist())  # ids in the files (nothing is dead after optimize)
            in_files = int(np.isin(gone, np.fromiter(held, np.int64)).sum())
            optimized = f"{optimize_s:.1f} s -> {report['segments']} segment; deleted ids left in files: {in_files}"
        print(f"delete 10%: commit {delete_s:.2f} s, {leaked} deleted ids in 300x10 hits; optimize: {optimized}",
              flush=True)

    if args.record:
        cold = [r for r in runs if r[0]]
        warm = [r for r in runs if not r[0]][0]
        lines = [
            f"{args.n:,} synthetic clustered {DIM}-d vectors, index type {args.type}, commits of {args.commit:,} "
            f"vectors with the merge policy after each (MERGE_FACTOR 8), through `IndexWriter`",
            "",
            "| measure | value |",
            "|---|---:|",
            f"| ingest: commits / merges / segments at the end | {commits} / {merges} / {segments} |",
            f"| ingest time | {ingest_s:.1f} s |",
            f"| bytes written ÷ final size | {written / final:.2f} ({written / 2**20:,.0f} MB / {final / 2**20:,.0f} MB) |",
            f"| commit of a 100-vector change (100 removed, 100 added) | {commit_s:.3f} s (+ {merge_s:.3f} s merging, {merges_after} merges) |",
            f"| the same commit as one rewritten file (format 1, {one_file_mb:,.0f} MB) | {one_file_s:.2f} s |",
            f"| fresh process: open + one search, warm page cache | {warm[2]:.3f} s ({warm[5]} of {warm[4]} segments mapped; imports {warm[1]:.2f} s more) |",
        ]
        if cold:
            lines.append(f"| fresh process: open + one search, page cache dropped | {cold[0][2]:.3f} s |")
        lines += [
            f"| search p50 / p99, segments | {lat['segments'][0]:.2f} / {lat['segments'][1]:.2f} ms |",
            f"| search p50 / p99, one combined {args.type} index | {lat['combined'][0]:.2f} / {lat['combined'][1]:.2f} ms |",
            f"| p50 ratio segments / combined | {lat['segments'][0] / lat['combined'][0]:.2f} |",
            f"| top-10 agreement, segments vs combined | {agree:.4f} |",
            f"| recall@10 against exact search, segments / combined | {recall['segments']:.4f} / {recall['combined']:.4f} |",
            f"| delete 10% ({args.n // 10:,}): commit | {delete_s:.2f} s; deleted ids in hits: {leaked} |",
            f"| then `optimize` | {optimized or 'not run (--no-optimize)'} |",
            "",
            f"{args.queries} held-out queries, k = 10, one at a time; latency: best of 3 passes, the two in turns.",
        ]
        record(f"Segments: commit, open, search, write amplification ({args.type}, {args.n:,})", lines)


if __name__ == "__main__":
    main()
