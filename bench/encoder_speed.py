"""Encoder throughput and single-query latency: searchkit vs sentence-transformers, same texts, same run.

    python bench/encoder_speed.py [--docs 1000] [--claims 1109] [--dtypes fp32,bf16] [--device cpu] [--record]
    python bench/encoder_speed.py --latency-only [--passes 3] ...   # single queries only (about 40 s)

Prints tokens/s for each contender and its ratio to sentence-transformers' torch fp32, the
single-query p50/p99, and the lowest cosine of each one's vectors to that peer's.

On the CPU, sentence-transformers' ONNX (fp32, dynamic int8) and OpenVINO backends join in
when their packages are installed (bench/peers.py: `make bench-venv`, then run this with
.venv-bench/bin/python); the goal ratios of issue 15 are then printed too.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import peers  # noqa: E402
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
    ap.add_argument("--latency-only", action="store_true",
                    help="time single queries only, no throughput (to see how a near tie swings from run to run)")
    ap.add_argument("--passes", type=int, default=LATENCY_PASSES, help="passes over the queries; the best counts")
    ap.add_argument("--record", action="store_true", help="append the results to bench/RESULTS.md")
    args = ap.parse_args()

    from sentence_transformers import SentenceTransformer

    sets = {} if args.latency_only else {"abstracts": scifact_abstracts(args.docs), "claims": scifact_claims(args.claims)}
    ours = {f"searchkit {d}": searchkit.load_encoder(device=args.device, dtype=d) for d in args.dtypes.split(",")}
    enc0 = next(iter(ours.values()))
    peer_dtype = torch.float16 if args.device.startswith("cuda") else torch.float32
    peer_name = f"ST torch {'fp16' if peer_dtype == torch.float16 else 'fp32'}"
    st = {peer_name: SentenceTransformer(str(enc0.path), device=args.device, model_kwargs={"dtype": peer_dtype})}
    why_not = peers.missing() if args.device == "cpu" else "the backends are CPU ones"
    tmp = tempfile.TemporaryDirectory()
    if why_not is None:
        st.update(peers.load(enc0.path, Path(tmp.name)))
    encode = {name: (lambda t, m=m: m.encode(t, batch_size=32, normalize_embeddings=True)) for name, m in st.items()}
    encode.update({name: (lambda t, e=e: e.encode(t)) for name, e in ours.items()})

    speed, cosine, avg = {}, {}, {}
    for set_name, texts in sets.items():
        tokens = sum(len(x) for x in enc0.tokenize(texts))
        avg[set_name] = tokens / len(texts)
        ref = encode[peer_name](texts)
        for name, fn in encode.items():
            fn(texts[:64])  # warm-up
            cosine[name, set_name] = float((fn(texts) * ref).sum(1).min())
        best = best_of_each({name: (lambda fn=fn, t=texts: fn(t)) for name, fn in encode.items()}, args.repeat)
        speed.update({(name, set_name): tokens / t for name, t in best.items()})

    queries = scifact_claims(args.queries)
    latency = latency_ms_each({name: (lambda q, fn=fn: fn([q])) for name, fn in encode.items()}, queries,
                              passes=args.passes)

    head = "".join(f"{s} tok/s | × | " for s in sets)
    lines = [f"texts: {', '.join(f'{len(t)} SciFact {s} ({avg[s]:.0f} tokens on average)' for s, t in sets.items())}; "
             f"× is the ratio to {peer_name}" if sets else f"single queries only: {len(queries)} SciFact claims", "",
             f"| encoder | {head}one query p50 ms | p99 ms |" + (f" min cosine to {peer_name} |" if sets else ""),
             "|---|" + "---:|---:|" * len(sets) + "---:|---:|" + ("---:|" if sets else "")]
    for name in encode:
        cells = "".join(f"{speed[name, s]:,.0f} | {speed[name, s] / speed[peer_name, s]:.2f} | " for s in sets)
        cos = min((cosine[name, s] for s in sets), default=None)
        shown = "" if cos is None else " —" if name == peer_name else f" {cos:.5f}"
        lines.append(f"| {name} | {cells}{latency[name][0]:.2f} | {latency[name][1]:.2f} |" + (f"{shown} |" if shown else ""))
    if why_not:
        lines += ["", f"sentence-transformers' ONNX/OpenVINO backends not run: {why_not}"]
    else:
        lines += ["", *goals(speed, latency, list(sets), peer_name)]
    from searchkit.cpu_memory import keep_freed_memory

    malloc = ("on, for every contender in this process (it is process-wide)" if keep_freed_memory()
              else "off (SEARCHKIT_MALLOPT=0 or not glibc)")
    lines += ["", f"glibc malloc reuse (searchkit/cpu_memory.py): {malloc}", "", f"versions: {versions()}"]
    paths = ", ".join(f"{name.removeprefix('searchkit ')} {e.single_text_path}" for name, e in ours.items())
    lines += ["", f"searchkit single texts (searchkit/single_text_graph.py): {paths}"]
    from searchkit.cpu_streams import ENV, stream_count

    streams = stream_count(next(iter(ours.values())).device)
    lines += ["", f"searchkit batches (searchkit/cpu_streams.py): {streams} side by side"
              + (f" ({ENV}={os.environ[ENV]})" if os.environ.get(ENV) else "")]
    throughput = "" if args.latency_only else f"tokens/s: best of {args.repeat} runs; "
    lines += ["", f"torch threads {torch.get_num_threads()}; {throughput}"
              f"latency: the best of {args.passes} passes over the queries (p50 and p99 of that pass); "
              "the contenders take turns, run by run and pass by pass"]
    print("\n".join(lines))
    if args.record:
        title = "Single-query latency" if args.latency_only else "Encoder throughput and latency"
        record(f"{title}, all-MiniLM-L6-v2", lines)
    tmp.cleanup()


def versions() -> str:
    """The peers' package versions, so that a later run can tell what changed."""
    from importlib.metadata import PackageNotFoundError, version

    names = ("torch", "sentence-transformers", "transformers", "onnxruntime", "optimum", "openvino")
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            pass
    return ", ".join(found)


def goals(speed: dict, latency: dict, sets: list[str], peer_name: str) -> list[str]:
    """Issue 15's goal ratios, from the figures of this run (those it can compute)."""
    onnx = "ST onnx fp32"
    int8 = next(n for n in latency if n.startswith("ST onnx int8"))
    ours = [n for n in latency if n.startswith("searchkit")]
    fastest = min(ours, key=lambda n: latency[n][0])
    out = ["| goal | figure | met |", "|---|---:|---|"]

    def row(goal: str, value: float, ok: bool, unit: str = "×") -> None:
        out.append(f"| {goal} | {value:.2f}{unit} | {'yes' if ok else 'no'} |")

    if "searchkit fp32" in ours:
        for s in sets:
            r = speed["searchkit fp32", s] / speed[peer_name, s]
            row(f"searchkit fp32 ≥ 1.3× {peer_name}, {s}", r, r >= 1.3)
            r = speed["searchkit fp32", s] / speed[onnx, s]
            row(f"searchkit fp32 ≥ 1.2× {onnx}, {s}", r, r >= 1.2)
        p = latency["searchkit fp32"][0]
        row(f"one query: searchkit fp32 p50 ≤ {onnx} p50 ({latency[onnx][0]:.2f} ms)", p, p <= latency[onnx][0], " ms")
    p = latency[fastest][0]
    row(f"one query: fastest ({fastest}) p50 ≤ {int8} p50 ({latency[int8][0]:.2f} ms)", p, p <= latency[int8][0], " ms")
    if "searchkit int8" in ours:
        for s in sets:
            r = speed["searchkit int8", s] / speed[int8, s]
            row(f"searchkit int8 ≥ 1.15× {int8}, {s}", r, r >= 1.15)
    return out


if __name__ == "__main__":
    main()
