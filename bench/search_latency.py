"""End-to-end query latency with the model loaded (as in the TUI or the Python API):
searchkit `Index.search` vs the usual glue, sentence-transformers + a FAISS flat index
over the same vectors, measured in the same run.

    python bench/search_latency.py --index /tmp/sk_eval/scifact-whole [--queries 300] [--dtypes fp32,bf16] [--record]

--dtypes: the query encoder's dtypes (the index's vectors stay as built; a bf16 query
vector is within cosine 0.9999 of the fp32 one).

Build the index first, e.g. `searchkit eval ../shared/data/scifact --index /tmp/sk_eval/scifact-whole`.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import faiss  # noqa: E402
from _common import LATENCY_PASSES, latency_ms_each, record, scifact_claims  # noqa: E402

import searchkit  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", required=True)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--dtypes", default="fp32", help="query encoder dtypes, comma-separated")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()

    from sentence_transformers import SentenceTransformer

    queries = scifact_claims(args.queries)
    dtypes = args.dtypes.split(",")
    index = searchkit.open_index(args.index, device="cpu", dtype=dtypes[0])
    n = index.vectors.count
    ids = index.vectors.ids()
    peer_index = faiss.IndexIDMap2(faiss.IndexFlatIP(index.vectors.dim))
    peer_index.add_with_ids(index.vectors.reconstruct(ids), ids)
    peer = SentenceTransformer(str(index.encoder.path), device="cpu")

    def glue(q):
        v = peer.encode([q], normalize_embeddings=True)
        _, found = peer_index.search(v, args.k)
        return index.catalog.chunks(found[0].tolist())  # the same metadata lookup

    calls = {"sentence-transformers + FAISS flat (glue)": glue}
    for dtype in dtypes:
        ours = index if dtype == dtypes[0] else searchkit.open_index(args.index, device="cpu", dtype=dtype)
        # lexical embeds nothing: timed once
        modes = ("dense", "lexical", "hybrid") if dtype == dtypes[0] else ("dense", "hybrid")
        for mode in modes:
            calls[f"searchkit Index.search, {mode}, {dtype} query"] = (
                lambda q, m=mode, i=ours: i.search(q, k=args.k, mode=m))
    rows = list(latency_ms_each(calls, queries).items())  # the paths take turns, pass by pass
    lines = [f"{n:,} vectors ({index.settings.dtype}), {len(queries)} SciFact claims, k={args.k}, on the CPU", "",
             "| path | p50 ms | p99 ms |", "|---|---:|---:|"]
    footer = ["", f"p50/p99 from the best of {LATENCY_PASSES} passes over the queries "
              "(the least disturbed by other load); the paths take turns, pass by pass."]
    lines += [f"| {name} | {p50:.2f} | {p99:.2f} |" for name, (p50, p99) in rows] + footer
    print("\n".join(lines))
    if args.record:
        record("Query latency, model loaded", lines)


if __name__ == "__main__":
    main()
