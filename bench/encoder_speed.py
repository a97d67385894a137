"""Encoder throughput and single-query latency: searchkit vs sentence-transformers, same texts, same run.

    python bench/encoder_speed.py [--docs 1000] [--claims 1109] [--dtypes fp32,bf16] [--device cpu] [--record]

Prints tokens/s for each side and the ratio, the single-query p50/p99, and the cosine of
our vectors to sentence-transformers' (fp32) ones.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from _common import (  # noqa: E402
    LATENCY_PASSES,
    best_of_each,
    latency_ms_each,
    record,
    scifact_abstracts,
    scifact_claims,
)

import searchkit  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--claims", type=int, default=1109)
    ap.add_argument("--dtypes", default="fp32,bf16")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--record", action="store_true", help="append the results to bench/RESULTS.md")
    args = ap.parse_args()

    from sentence_transformers import SentenceTransformer

    sets = {"SciFact abstracts": scifact_abstracts(args.docs), "SciFact claims": scifact_claims(args.claims)}
    ours = {d: searchkit.load_encoder(device=args.device, dtype=d) for d in args.dtypes.split(",")}
    peer_dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    peer = SentenceTransformer(str(next(iter(ours.values())).path), device=args.device,
                               model_kwargs={"dtype": peer_dtype})
    peer_name = f"sentence-transformers {'fp16' if peer_dtype == torch.float16 else 'fp32'}"
    lines = [f"| texts | encoder | tokens/s | × {peer_name} | min cosine to peer |", "|---|---|---:|---:|---:|"]

    for name, texts in sets.items():
        enc0 = next(iter(ours.values()))
        tokens = sum(len(x) for x in enc0.tokenize(texts))
        peer.encode(texts[:64], batch_size=32)  # warm-up
        ref = peer.encode(texts, batch_size=32, normalize_embeddings=True)
        vecs = {}
        for dtype, enc in ours.items():
            enc.encode(texts[:64])
            vecs[dtype] = enc.encode(texts)
        runs = {peer_name: lambda t=texts: peer.encode(t, batch_size=32, normalize_embeddings=True)}
        runs.update({dtype: lambda e=enc, t=texts: e.encode(t) for dtype, enc in ours.items()})
        best = best_of_each(runs, args.repeat)  # peer and ours take turns
        t_peer = best[peer_name]
        lines.append(f"| {name} ({len(texts)}, {tokens / len(texts):.0f} tok avg) | {peer_name} "
                     f"| {tokens / t_peer:,.0f} | 1.00 | — |")
        for dtype in ours:
            cos = float((vecs[dtype] * ref).sum(1).min())
            lines.append(f"| {name} | searchkit {dtype} | {tokens / best[dtype]:,.0f} | {t_peer / best[dtype]:.2f} "
                         f"| {cos:.6f} |")

    queries = scifact_claims(args.queries)
    lines += ["", "| single query | p50 ms | p99 ms |", "|---|---:|---:|"]
    calls = {peer_name: lambda q: peer.encode([q])}
    calls.update({f"searchkit {dtype}": lambda q, e=enc: e.encode([q]) for dtype, enc in ours.items()})
    for label, (p50, p99) in latency_ms_each(calls, queries).items():
        lines.append(f"| {label} | {p50:.2f} | {p99:.2f} |")

    lines += ["", f"torch threads {torch.get_num_threads()}; tokens/s: best of {args.repeat} runs; "
              f"latency: the best of {LATENCY_PASSES} passes over the queries (p50 and p99 of that pass); "
              "the contenders take turns, run by run and pass by pass"]
    print("\n".join(lines))
    if args.record:
        record("Encoder throughput and latency, all-MiniLM-L6-v2", lines)


if __name__ == "__main__":
    main()
