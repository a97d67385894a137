"""Index types on synthetic clustered vectors: build time, memory, file size, single-query
latency and recall@10 against exact search, with efSearch / nprobe tuned to the goal
(p50 ≤ 5 ms at recall@10 ≥ 0.95).

    python bench/index_types.py [--n 1000000] [--queries 300] [--types flat,hnsw,ivfpq] [--record]

The vectors are 384-d unit vectors around 1,000 centres on the sphere, each on a 16-d
manifold through its centre plus a little isotropic noise, so that near neighbours mean
something (in uniform 384-d noise every point is about as far as any other). Queries are
held-out points, perturbed. Each type is built through searchkit's `FaissVectors`.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
from _common import latency_ms, record

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from searchkit.store.vectors import FaissVectors  # noqa: E402

DIM = 384
SWEEP = {"hnsw": ("efSearch", [16, 32, 48, 64, 96, 128, 192, 256, 384, 512]), "ivfpq": ("nprobe", [4, 8, 16, 32, 64, 128])}


def clustered(n: int, centres: int = 1000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    c = rng.standard_normal((centres, DIM), dtype=np.float32)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    basis = rng.standard_normal((16, DIM), dtype=np.float32) / np.sqrt(DIM)
    out = np.empty((n, DIM), dtype=np.float32)
    for lo in range(0, n, 100_000):  # in blocks: the temporaries stay small
        m = min(n, lo + 100_000) - lo
        x = c[rng.integers(0, centres, m)]
        x += 0.5 * rng.standard_normal((m, 16), dtype=np.float32) @ basis
        x += 0.02 * rng.standard_normal((m, DIM), dtype=np.float32)
        out[lo : lo + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def recall_at(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--types", default="flat,hnsw,ivfpq")
    ap.add_argument("--threads", type=int, default=None, help="faiss.omp_set_num_threads for the queries (default: FAISS's own)")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()

    t = time.perf_counter()
    x = clustered(args.n + args.queries)
    base, held = x[: args.n], x[args.n :]
    rng = np.random.default_rng(1)
    queries = held + 0.02 * rng.standard_normal(held.shape, dtype=np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ids = np.arange(1, args.n + 1, dtype=np.int64)
    exact = FaissVectors.create(DIM)
    exact.add(ids, base)
    truth = exact.search(queries, 10)[1]
    print(f"data and ground truth: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    query_threads = args.threads or faiss.omp_get_max_threads()

    rows, chosen = [], []
    vectors = None
    for kind in args.types.split(","):
        build, mem = None, base.nbytes / 2**20  # flat: the exact index above, its raw vectors
        if kind == "flat":
            vectors = exact
        else:
            vectors = None  # the previous type's, freed before measuring this one's growth
            gc.collect()
            mem_before = rss_mb()
            t = time.perf_counter()
            vectors = FaissVectors.from_vectors(kind, ids, base)
            build = time.perf_counter() - t
            mem = rss_mb() - mem_before
        with tempfile.TemporaryDirectory() as tmp:
            size = vectors.save(Path(tmp) / "v.faiss") and (Path(tmp) / "v.faiss").stat().st_size / 2**20
        faiss.omp_set_num_threads(query_threads)
        setting = ""
        if kind in SWEEP:
            name, values = SWEEP[kind]
            for value in values:  # the smallest setting that meets recall ≥ 0.95, else the best
                vectors.params[name] = value
                rec = recall_at(vectors.search(queries, 10)[1], truth)
                print(f"  {kind} {name}={value}: recall@10 {rec:.4f}", file=sys.stderr)
                if rec >= 0.95:
                    break
            setting = f"{name}={value}"
            chosen.append(f"{kind}: {setting}")
        got = vectors.search(queries, 10)[1]
        rec = recall_at(got, truth)
        p50, p99 = latency_ms(lambda q, v=vectors: v.search(q[None], 10), list(queries))
        faiss.omp_set_num_threads(os.cpu_count() or 1)
        params = ", ".join(f"{k}={v}" for k, v in vectors.params.items())
        rows.append((f"{kind} ({params})" if params else kind, "—" if build is None else f"{build:.1f}",
                     f"{mem:,.0f}", f"{size:,.0f}", f"{p50:.2f}", f"{p99:.2f}", f"{rec:.4f}"))
        print(rows[-1], file=sys.stderr)
    lines = [f"{args.n:,} vectors × {DIM} (1,000 clusters), {args.queries} perturbed held-out queries, "
             f"k=10, {query_threads} FAISS threads for queries; tuned: {'; '.join(chosen) or '—'}", "",
             "| index | build s | memory MB | file MB | p50 ms | p99 ms | recall@10 |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    lines += ["", "memory: RSS growth while building (flat: the raw vectors it holds)."]
    print("\n".join(lines))
    if args.record:
        record(f"Index types, {args.n:,} vectors", lines)


if __name__ == "__main__":
    main()
