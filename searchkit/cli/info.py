"""`searchkit info`: what an index holds and how it was built, and what this machine supports."""

from __future__ import annotations

from dataclasses import asdict

import click
from rich.table import Table
from rich.text import Text

from ..errors import SearchkitError
from .common import emit_json, handle_errors, index_option, json_option, stderr, stdout
from .group import main


@main.command()
@index_option
@click.option("--retime", is_flag=True,
              help="Time the CPU dtypes now (about a minute), caching the figures if the CPU was quiet; "
                   "without it only cached figures are shown.")
@json_option
@handle_errors
def info(index_dir, retime, as_json):
    """What an index holds and how it was built, and what this machine supports."""
    from ..encoder import machine_facts
    from ..index import Index

    data = {**Index(index_dir).info(), "machine": machine_facts()}
    data["cpu_dtypes"] = _cpu_dtypes(str(data["settings"].get("model")), retime)
    data["matryoshka_dims"] = _matryoshka_dims(data["settings"].get("model"))
    if as_json:
        emit_json(data)
        return
    s = data["settings"]
    table = Table(show_header=False, box=None)
    rows = [
        ("index", data["index"]),
        ("model", f"{s.get('model')} ({s.get('model_type')}, sha256 {str(s.get('weights_sha256'))[:12]}…)"),
        ("vectors", f"{data['vectors']} × {s.get('dim')} ({s.get('dtype')}, "
                    f"{s.get('pooling')} pooling{', normalised' if s.get('normalize') else ''}"
                    f"{', Matryoshka-truncated' if s.get('truncate_dim') else ''})"
                    + (f"; the model lists dims {', '.join(map(str, data['matryoshka_dims']))} (--dim)"
                       if data["matryoshka_dims"] else "")),
        ("prompts", (f"query {s.get('query_prompt') or ''!r}, document {s.get('document_prompt') or ''!r}"
                     + ("" if s.get("include_prompt", True) else " (left out of the pooling)"))
                    if s.get("query_prompt") or s.get("document_prompt") else "none"),
        ("index type", _index_type_line(s)),
        ("segments", f"{data['segments']} ({data['segments_mapped']} memory-mapped, the rest read into memory)"),
        ("searches on", data["searches_on"] + (" (faiss-gpu)" if data["searches_on"] != "CPU" else "")),
        ("files", str(data["files"])),
        ("documents", str(data["documents"])),
        ("chunks", f"{data['chunks']} (whole documents, truncated at {s.get('max_length')} tokens)"
                   if s.get("chunking") == "whole" else
                   f"{data['chunks']} ({s.get('chunk_tokens')} tokens, overlap {s.get('chunk_overlap')})"),
    ]
    m = data["machine"]
    rows.append(("machine", f"torch {m['torch']}, CPU {m['cpu_model']} ({m['cpu_capability']}, "
                            f"{m['cpu_threads']} threads; {', '.join(m['cpu_instructions']) or 'no bf16/VNNI'}), "
                            f"CUDA: {', '.join(m['cuda_devices']) or 'none'}; auto = {m['auto_device']} {m['auto_dtype']}; "
                            "CPU projections: " + ", ".join(f"{k} {v}" for k, v in m["cpu_projections"].items())
                            + f"; CPU batches: {_streams_text(m['cpu_batch_streams'], m['cpu_threads'])}"))
    rows.append(("CPU dtypes", _cpu_dtypes_text(data["cpu_dtypes"])))
    run = data.get("last_run")
    if run:
        sm = run["summary"]
        rows.append(("last ingest", f"{sm.get('files_added')} added, {sm.get('files_updated')} updated, "
                                    f"{sm.get('files_removed')} removed in {sm.get('seconds')} s"))
    for key, value in rows:
        table.add_row(f"[bold]{key}[/bold]", Text(value))
    stdout.print(table)


def _matryoshka_dims(model) -> list[int]:
    """The Matryoshka dims the index model's folder lists ([] if none, or the model is gone)."""
    from ..matryoshka import matryoshka_dims
    from ..resolve import resolve_model

    try:
        return matryoshka_dims(resolve_model(model)) if model else []
    except SearchkitError:
        return []


def _cpu_dtypes(model: str, retime: bool = False) -> dict:
    """The index model's tokens/s and query latency in each CPU dtype on this machine: the
    cached figures, none when nothing is cached (timing takes about a minute, longer on a
    busy CPU: only `retime` measures). `cached`: whether the figures shown are in the cache."""
    from ..dtype_speed import cache_file, cached, fastest, remeasure, settled

    if retime:
        stderr.print(f"timing {model} in fp32, bf16 and int8 on this CPU (about a minute)…", highlight=False)
        speeds, in_cache = remeasure(model)
    else:
        speeds = cached(model)
        in_cache = speeds is not None
    if speeds is None:
        return {"measured": [], "fastest": None, "fastest_for_queries": None, "steady": None, "cached": False,
                "cache_file": str(cache_file())}
    return {"measured": [asdict(s) for s in speeds], "fastest": fastest(speeds),
            "fastest_for_queries": fastest(speeds, "queries"), "steady": settled(speeds), "cached": in_cache,
            "cache_file": str(cache_file())}


def _cpu_dtypes_text(speeds: dict) -> str:
    """The "CPU dtypes" row: the figures and picks, and truthfully whether they are cached."""
    if not speeds["measured"]:
        return "not measured on this CPU yet; `searchkit info --retime` measures them (about a minute)"
    figures = ", ".join(f"{d['dtype']} {d['tokens_per_s']:,.0f} tok/s, {d['query_ms']:.1f} ms a query "
                        f"(cos {d['min_cosine']:.4f})" for d in speeds["measured"])
    picks = f"fastest = {speeds['fastest']} for batches, {speeds['fastest_for_queries']} for single queries"
    if not speeds["steady"]:
        note = (" (the CPU was busy: these figures are not cached, and fastest stays fp32;"
                " run `searchkit info --retime` when it is quiet)")
    elif speeds.get("cached", True):
        note = f" (cached in {speeds.get('cache_file', 'the cache')})"
    else:
        note = f" (not cached: could not write {speeds.get('cache_file', 'the cache')})"
    return f"measured here: {figures}; {picks}{note}"


def _index_type_line(s: dict) -> str:
    """E.g. "hnsw (M=32, efConstruction=80, efSearch=384)" or "flat (exact; auto: hnsw from 30,000 vectors)"."""
    from ..store.vectors import AUTO_HNSW_AT, IVF_MIN_TRAIN

    kind, choice = s.get("index_type"), s.get("index_choice")
    if kind == "flat-ip" or kind == "flat" and choice in (None, "flat"):
        return "flat (exact)"
    if kind == "flat":
        then, at = ("hnsw", AUTO_HNSW_AT) if choice == "auto" else (choice, IVF_MIN_TRAIN if choice == "ivfpq" else 0)
        return f"flat (exact; {choice}: {then} from {at:,} vectors)"
    params = ", ".join(f"{k}={v}" for k, v in (s.get("index_params") or {}).items())
    return f"{kind} ({params}{'; chosen by size' if choice == 'auto' else ''})"


def _streams_text(streams: int, threads: int) -> str:
    """How batches share the CPU (cpu_streams.py), as `info` prints it."""
    from ..cpu_streams import ENV, threads_per_stream

    if streams <= 1:
        return "one at a time"
    shares = threads_per_stream(streams, threads)
    each = f"{shares[0]} thread{'s' if shares[0] > 1 else ''} each" if len(set(shares)) == 1 else \
        "threads " + "+".join(map(str, shares))
    return f"{streams} side by side, {each} ({ENV})"
