"""How far each CPU dtype's vectors are from fp32's on all of SciFact, and what that does to retrieval.

    python bench/dtype_quality.py [--dtypes bf16,int8] [--limit-docs N] [--record]

Every abstract (title + text, as one input truncated at the model's 256 tokens) and every
test claim is embedded in fp32 and in each dtype. Reported: the lowest and the mean cosine
of a dtype's document vectors to fp32's, and nDCG@10 of exact dot-product search over
whole abstracts with that dtype's vectors (queries and documents alike), next to fp32's.
"""

from __future__ import annotations

import argparse
import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
from _common import SCIFACT, record  # noqa: E402

import searchkit  # noqa: E402
from searchkit.evaluate import load_beir, score_run  # noqa: E402


def ndcg10(doc_vecs: np.ndarray, query_vecs: np.ndarray, ds) -> float:
    scores = query_vecs @ doc_vecs.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :10]
    run = {qid: [ds.doc_ids[j] for j in row] for qid, row in zip(ds.queries, top)}
    return score_run(run, ds.qrels, [("ndcg", 10)])["ndcg@10"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dtypes", default="bf16,int8")
    ap.add_argument("--limit-docs", type=int, default=None)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    ds = load_beir(SCIFACT, limit_docs=args.limit_docs)
    docs = [f"{r.get('title', '')} {r['text']}".strip() for r in map(json.loads, ds.records)]
    queries = list(ds.queries.values())
    dtypes = ["fp32"] + [d for d in args.dtypes.split(",") if d != "fp32"]
    vecs = {}
    for d in dtypes:
        enc = searchkit.load_encoder(device="cpu", dtype=d)
        vecs[d] = (enc.encode(docs), enc.encode(queries))
        print(d, "embedded", flush=True)
    lines = [f"SciFact: {len(docs):,} abstracts, {len(queries)} test claims, all-MiniLM-L6-v2 on the CPU", "",
             "| dtype | min cosine to fp32 (abstracts) | mean | min (claims) | nDCG@10 | Δ vs fp32 |",
             "|---|---:|---:|---:|---:|---:|"]
    base = ndcg10(*vecs["fp32"], ds)
    for d in dtypes:
        doc_cos = (vecs[d][0] * vecs["fp32"][0]).sum(1)
        query_cos = (vecs[d][1] * vecs["fp32"][1]).sum(1)
        score = ndcg10(*vecs[d], ds)
        lines.append(f"| {d} | {doc_cos.min():.5f} | {doc_cos.mean():.5f} | {query_cos.min():.5f} | {score:.4f} "
                     f"| {score - base:+.4f} |")
    print("\n".join(lines))
    if args.record:
        record("CPU dtypes against fp32 on SciFact (vectors and nDCG@10)", lines)


if __name__ == "__main__":
    main()
