"""The `searchkit` command: a thin click shell over the Python API.

Every command takes --json (machine-readable on stdout); progress and messages go to
stderr; a `SearchkitError` becomes one line and exit status 1.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from dataclasses import asdict
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from .errors import SearchkitError

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)  # a message stays on one line, however long

DEFAULT_INDEX = "index"
DTYPE_HELP = ("auto (fp32 on CPU, fp16 on CUDA), fastest (the CPU dtype measured fastest here: see `info`), "
              "fp32, bf16, fp16 or int8 (CPU).")


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"searchkit: error: {message}", err=True)
    sys.exit(code)


def _message(exc: SearchkitError) -> str:
    """The library's message, naming the flag where it names a Python parameter
    (`chunk_tokens=5: ...` becomes `--chunk-tokens 5: ...`)."""
    param = getattr(exc, "param", None)
    ctx = click.get_current_context(silent=True)
    if param and ctx is not None:
        long = "--" + param.replace("_", "-")
        for option in ctx.command.params:
            if isinstance(option, click.Option) and (option.name == param or long in option.opts):
                flag = long if long in option.opts else option.opts[0]
                return f"{flag} {exc.value!r}: {exc.why}"
    return str(exc)


def handle_errors(func):
    """Turn library errors into one-line messages and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except SearchkitError as exc:
            _fail(_message(exc))
        except KeyboardInterrupt:
            _fail("interrupted (nothing half-written: the index keeps its last committed state)", 130)

    return wrapper


def _display_path(path: str) -> str:
    """A path relative to the working directory when it lies below it (JSON keeps it absolute)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


@contextlib.contextmanager
def embedding_progress():
    """A rich bar on stderr over the bytes to embed; yields the callback `Index.ingest` takes."""
    columns = [TextColumn("embedding"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[chunks]} chunks"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=stderr, transient=True) as bar:
        task = bar.add_task("embed", total=None, chunks=0)

        def progress(done: int, total: int, chunks: int) -> None:
            bar.update(task, completed=done, total=total, chunks=chunks)

        yield progress


def _name_values(items: tuple[str, ...], option: str) -> dict[str, str]:
    """NAME=VALUE strings -> a dict (values checked where they are used)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE", param_hint=option)
        out[name.strip()] = value.strip()
    return out


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


# Options shared by the commands that build an encoder.
def encoder_options(func):
    func = click.option("--model", "-m", default=None, help="Model name or local folder (default: all-MiniLM-L6-v2).")(func)
    func = click.option("--pooling", type=click.Choice(["mean", "cls"]), default=None, help="Pooling (default: the model's own, else mean).")(func)
    func = click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")(func)
    func = click.option("--dtype", default="auto", show_default=True, help=DTYPE_HELP)(func)
    return func


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
index_option = click.option("--index", "index_dir", default=DEFAULT_INDEX, show_default=True, type=click.Path(file_okay=False), help="Index folder.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="searchkit")
def main():
    """searchkit: local semantic search with encoders of its own, FAISS and SQLite."""


@main.command()
@click.argument("paths", nargs=-1, type=click.Path(path_type=Path))
@index_option
@encoder_options
@click.option("--layer", type=int, default=None, help="Hidden state to pool (GPT-2: default the middle block).")
@click.option("--chunk-tokens", type=int, default=None, help="Tokens per chunk (default: the model's max length, at most 510).")
@click.option("--chunk-overlap", type=int, default=None, help="Tokens shared by consecutive chunks (default: chunk-tokens / 8).")
@click.option("--chunking", type=click.Choice(["chunks", "whole"]), default=None,
              help="chunks: token windows (the default for a new index); whole: one chunk per document, truncated by the model.")
@click.option("--index-type", type=click.Choice(["auto", "flat", "hnsw", "ivfpq"]), default=None,
              help="Vector index of a new index: flat (exact), hnsw (graph, fast at any size), ivfpq (compressed, "
                   "approximate); auto (default): flat, then hnsw from 30,000 vectors. Changing it needs --rebuild.")
@click.option("--index-param", "index_params", multiple=True, metavar="NAME=VALUE",
              help="Vector-index parameter, repeatable: hnsw M, efConstruction, efSearch; ivfpq nlist, m, nbits, "
                   "nprobe. For a new index or --rebuild; on a built one only efSearch/nprobe (its new default).")
@click.option("--rebuild", is_flag=True, help="Build the index anew (e.g. with another --model; default its own) "
              "beside the old one, swapped in when complete.")
@click.option("--prune", is_flag=True, help="Also drop every indexed file that is gone from disk, wherever it was "
              "(a folder moved or deleted, a removed symlink); PATHS may then be left out.")
@click.option("--ray", "ray_address", default=None, metavar="local|ADDRESS",
              help="Read, chunk and embed on Ray Data: 'local' starts a Ray cluster for the run, an ADDRESS "
                   "('auto', 'ray://host:10001') joins one. Needs the ray extra (pip install 'searchkit[ray]').")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="With --ray: embedding actors (default: one per GPU with --gpus-per-worker, else one per CPU, "
                   "at most 8).")
@click.option("--gpus-per-worker", type=click.FloatRange(min=0, max=64), default=0.0,
              help="With --ray: GPUs each embedding actor takes (may be fractional, e.g. 0.5).")
# Tuning/testing knob, hidden: commit a generation at least every N chunks (the crash tests
# use small values to get many commits; each commit rewrites the vectors file).
@click.option("--commit-chunks", type=click.IntRange(min=1), default=20000, hidden=True,
              help="Commit at least every N chunks (default 20000).")
@json_option
@handle_errors
def ingest(paths, index_dir, model, pooling, device, dtype, layer, chunk_tokens, chunk_overlap, rebuild, prune,
           as_json, commit_chunks, chunking, index_type, index_params, ray_address, workers, gpus_per_worker):
    """Embed the files under PATHS into the index: new and changed files only.

    Files that are gone from PATHS lose their chunks; so do files now empty, binary or too
    large. A PATH that no longer exists drops the files indexed from it."""
    from .index import Index

    if not paths and not prune:
        raise click.UsageError("give at least one PATH (or --prune alone, to drop files gone from disk)")
    if prune and rebuild:
        raise click.UsageError("--prune and --rebuild: a rebuild holds only PATHS already")
    if ray_address is None and (workers is not None or gpus_per_worker):
        raise click.UsageError("--workers and --gpus-per-worker go with --ray")
    on_ray = {"engine": "ray", "ray_address": ray_address, "workers": workers,
              "gpus_per_worker": gpus_per_worker} if ray_address is not None else {}

    index = Index(index_dir, model=model, pooling=pooling, device=device, dtype=dtype, layer=layer,
                  chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap, chunking=chunking, index_type=index_type,
                  index_params=_name_values(index_params, "--index-param"))
    with embedding_progress() as progress:
        summary = index.ingest(paths, progress=progress, rebuild=rebuild, prune=prune, commit_chunks=commit_chunks,
                               **on_ray)
    if as_json:
        emit_json(summary.to_dict())
        return
    for item in summary.skipped:
        stderr.print(f"skipped {item['path']}: {item['reason']}", highlight=False, markup=False)
    for problem in summary.problems:
        stderr.print(f"skipped record {problem}", highlight=False, markup=False)
    stdout.print(
        f"{summary.files_seen} files seen: {summary.files_added} added, {summary.files_updated} updated, "
        f"{summary.files_removed} removed, {summary.files_unchanged} unchanged, {summary.files_skipped} skipped; "
        f"{summary.chunks_added} chunks added, {summary.chunks_removed} removed in {summary.seconds:.1f} s -> {index_dir}",
        highlight=False, markup=False,
    )


@main.command()
@click.argument("query")
@index_option
@click.option("-k", "k", type=int, default=10, show_default=True, help="Number of hits.")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--dtype", default="auto", show_default=True, help="Query encoder dtype: " + DTYPE_HELP)
@click.option("--mode", type=click.Choice(["dense", "lexical", "hybrid"]), default="dense", show_default=True,
              help="dense: embeddings (score = cosine); lexical: BM25 over the text (score = BM25); "
                   "hybrid: both fused by reciprocal rank (score = RRF).")
@click.option("--where", "where", multiple=True, metavar="COND",
              help="Metadata filter, repeatable (ANDed): path:GLOB, type:EXT[,EXT], mtime>DATE, mtime<DATE, "
                   "field.NAME=VALUE (also !=, <, <=, >, >=). E.g. --where 'path:docs/*.md' --where 'mtime>2024-01-01'")
@click.option("--ef-search", type=click.IntRange(min=1), default=None,
              help="hnsw indexes: candidates explored per query (more: better recall, slower).")
@click.option("--nprobe", type=click.IntRange(min=1), default=None,
              help="ivfpq indexes: inverted lists scanned per query (more: better recall, slower).")
@json_option
@handle_errors
def search(query, index_dir, k, device, dtype, mode, where, ef_search, nprobe, as_json):
    """Find the chunks that best answer QUERY (by meaning, by words, or both)."""
    from .index import Index

    tuning = {name: value for name, value in (("efSearch", ef_search), ("nprobe", nprobe)) if value is not None}
    index = Index(index_dir, device=device, dtype=dtype, index_params=tuning)
    hits = index.search(query, k=k, mode=mode, where=list(where) or None)
    if as_json:
        emit_json([asdict(h) for h in hits])
        return
    if not hits:
        stdout.print("no hits" + (" (no chunk matches the filters)" if where else
                                  " (no chunk shares a word with the query)" if mode == "lexical" else " (the index is empty)"))
    for hit in hits:
        path = _display_path(hit.path)
        where = f"{path}#{hit.document}" if hit.document else path
        stdout.print(f"[bold]{hit.rank:>2}.[/bold] [cyan]{hit.score:.4f}[/cyan]  {escape(where)}  "
                     f"[dim]\\[{hit.start}:{hit.end}][/dim]", highlight=False)
        snippet = " ".join(hit.text.split())
        stdout.print("    " + (snippet[:300] + ("…" if len(snippet) > 300 else "")), highlight=False, markup=False)


@main.command()
@click.argument("texts", nargs=-1, required=True)
@encoder_options
@click.option("--layer", type=int, default=None, help="Hidden state to pool (0 = embeddings).")
@click.option("--no-normalize", is_flag=True, help="Skip the L2 normalisation.")
@json_option
@handle_errors
def embed(texts, model, pooling, device, dtype, layer, no_normalize, as_json):
    """Print the embedding vector of each TEXT."""
    from .encoder import Encoder

    enc = Encoder(model, pooling=pooling, device=device, dtype=dtype, layer=layer, normalize=not no_normalize)
    vectors = enc.encode(list(texts))
    if as_json:
        emit_json({"model": enc.name, "dim": enc.dim, "embeddings": vectors.tolist()})
        return
    stdout.print(f"model {enc.name}, dim {enc.dim}, pooling {enc.pooling}, dtype {enc.dtype_name}", highlight=False,
                 markup=False)
    for text, vec in zip(texts, vectors):
        head = ", ".join(f"{x:.4f}" for x in vec[:6])
        stdout.print(f"{text!r}: [{head}, …] (norm {float((vec ** 2).sum()) ** 0.5:.4f})", highlight=False, markup=False)


@main.command()
@click.argument("text1")
@click.argument("text2")
@encoder_options
@click.option("--all-metrics", is_flag=True, help="Also dot product, euclidean and manhattan distance.")
@json_option
@handle_errors
def similarity(text1, text2, model, pooling, device, dtype, all_metrics, as_json):
    """Cosine similarity of two texts (and other metrics with --all-metrics)."""
    from .encoder import Encoder
    from .similarity import METRICS, compare

    enc = Encoder(model, pooling=pooling, device=device, dtype=dtype)
    a, b = enc.encode([text1, text2])
    scores = compare(a, b, METRICS if all_metrics else ("cosine",))
    if as_json:
        emit_json({"model": enc.name, **scores})
        return
    for name, value in scores.items():
        stdout.print(f"{name:<10} {value:.4f}", highlight=False)


@main.command()
@index_option
@json_option
@handle_errors
def info(index_dir, as_json):
    """What an index holds and how it was built, and what this machine supports."""
    from .encoder import machine_facts
    from .index import Index

    data = {**Index(index_dir).info(), "machine": machine_facts()}
    data["cpu_dtypes"] = _cpu_dtypes(str(data["settings"].get("model")))
    if as_json:
        emit_json(data)
        return
    s = data["settings"]
    table = Table(show_header=False, box=None)
    rows = [
        ("index", data["index"]),
        ("model", f"{s.get('model')} ({s.get('model_type')}, sha256 {str(s.get('weights_sha256'))[:12]}…)"),
        ("vectors", f"{data['vectors']} × {s.get('dim')} ({s.get('dtype')}, "
                    f"{s.get('pooling')} pooling{', normalised' if s.get('normalize') else ''})"),
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
                            "CPU projections: " + ", ".join(f"{k} {v}" for k, v in m["cpu_projections"].items())))
    speeds = data["cpu_dtypes"]
    rows.append(("CPU dtypes", "measured here: " + ", ".join(
        f"{d['dtype']} {d['tokens_per_s']:,.0f} tok/s (cos {d['min_cosine']:.4f})" for d in speeds["measured"])
        + f"; fastest = {speeds['fastest']}"))
    run = data.get("last_run")
    if run:
        sm = run["summary"]
        rows.append(("last ingest", f"{sm.get('files_added')} added, {sm.get('files_updated')} updated, "
                                    f"{sm.get('files_removed')} removed in {sm.get('seconds')} s"))
    for key, value in rows:
        table.add_row(f"[bold]{key}[/bold]", Text(value))
    stdout.print(table)


def _cpu_dtypes(model: str) -> dict:
    """The index model's tokens/s in each CPU dtype on this machine (measured once, cached)."""
    from .dtype_speed import cache_file, fastest, is_cached, measured

    if not is_cached(model):
        stderr.print(f"timing {model} in fp32, bf16 and int8 on this CPU (once; cached in {cache_file()})…",
                     highlight=False)
    speeds = measured(model)
    return {"measured": [asdict(s) for s in speeds], "fastest": fastest(speeds)}


def _index_type_line(s: dict) -> str:
    """E.g. "hnsw (M=32, efConstruction=80, efSearch=384)" or "flat (exact; auto: hnsw from 30,000 vectors)"."""
    from .store.vectors import AUTO_HNSW_AT, IVF_MIN_TRAIN

    kind, choice = s.get("index_type"), s.get("index_choice")
    if kind == "flat-ip" or kind == "flat" and choice in (None, "flat"):
        return "flat (exact)"
    if kind == "flat":
        then, at = ("hnsw", AUTO_HNSW_AT) if choice == "auto" else (choice, IVF_MIN_TRAIN if choice == "ivfpq" else 0)
        return f"flat (exact; {choice}: {then} from {at:,} vectors)"
    params = ", ".join(f"{k}={v}" for k, v in (s.get("index_params") or {}).items())
    return f"{kind} ({params}{'; chosen by size' if choice == 'auto' else ''})"


@main.command()
@click.option("--model", "-m", default=None, help="Model name or local folder (default: all-MiniLM-L6-v2).")
@click.option("--text", "texts", multiple=True, help="A text to compare on (repeatable; default: a built-in mixed-length set).")
@click.option("--device", default="cpu", show_default=True, help="Device for our encoder (the reference runs on the CPU).")
@click.option("--dtype", default="fp32", show_default=True, help="Our encoder's dtype; fp32 is the exact comparison.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write a PNG of max |Δ| per layer.")
@json_option
@handle_errors
def parity(model, texts, device, dtype, plot_path, as_json):
    """Prove our encoder equal to Hugging Face transformers, layer by layer."""
    from .encoder import Encoder
    from .parity import check_plot_path, compare, load_reference, plot

    if plot_path:
        check_plot_path(plot_path)  # before seconds of loading and comparing, not after
    enc = Encoder(model, device=device, dtype=dtype)
    report = compare(enc, list(texts) or None, reference=load_reference(enc.path))
    if plot_path:
        plot(report, plot_path)
    if as_json:
        emit_json(report.to_dict())
    else:
        table = Table(title=Text(f"{enc.name} ({report.model_type}, {report.dtype} on {report.device}) vs transformers, "
                                 f"{report.texts} texts, {report.tokens} tokens; {report.projections} projections"))
        for col in ("hidden state", "max |Δ|", "mean |Δ|", "min cosine"):
            table.add_column(col, justify="left" if col == "hidden state" else "right")
        for d in report.layers:
            table.add_row(d.name, f"{d.max_abs:.2e}", f"{d.mean_abs:.2e}", f"{d.cosine:.8f}")
        table.add_row("pooled (normalised)", f"{report.pooled_max_abs:.2e}", "", f"{report.pooled_cosine:.8f}")
        stdout.print(table)
        tol = report.tolerance
        verdict = "[green]PASS[/green]" if report.passed else "[red]FAIL[/red]"
        stdout.print(f"{verdict}: every max |Δ| ≤ {tol['max_abs']:g} (× the layer's largest |value| past 1), "
                     f"pooled cosine ≥ {tol['pooled_cosine']}")
        if plot_path:
            stderr.print(f"plot written to {plot_path}", markup=False)
    if not report.passed:
        sys.exit(2)

@main.command()
@index_option
@click.option("--repair", is_flag=True, help="Re-embed chunks that lack a vector and drop stray vectors.")
@json_option
@handle_errors
def verify(index_dir, repair, as_json):
    """Check that the catalog and the vectors agree (exit 1 when they do not)."""
    from .index import Index
    from .verify import repair as do_repair
    from .verify import verify as do_verify

    index = Index(index_dir)
    report = do_repair(index) if repair else do_verify(index)
    if as_json:
        emit_json(report.to_dict())
    else:
        for line in report.repaired:
            stdout.print(f"repaired: {line}", highlight=False, markup=False)
        counts = ", ".join(f"{v} {k}" for k, v in report.counts.items())
        if report.ok:
            stdout.print(f"[green]ok[/green]: {escape(str(index_dir))} is consistent ({counts})", highlight=False)
        for problem in report.problems:
            stderr.print(f"searchkit: {index_dir}: {problem}", highlight=False, markup=False)
        for note in report.notes:
            stderr.print(f"searchkit: note: {note}", highlight=False, markup=False)
        if report.advice:
            stderr.print(f"searchkit: {report.advice.replace('DIR', str(index_dir))}", highlight=False, markup=False)
    if not report.ok:
        sys.exit(1)


@main.command()
@index_option
@json_option
@handle_errors
def optimize(index_dir, as_json):
    """Merge the index's segments into one, dropping removed vectors."""
    from .index import Index

    index = Index(index_dir)
    result = index.optimize()
    if as_json:
        emit_json(result)
        return
    stdout.print(f"{result['segments_before']} segments -> {result['segments']}, {result['vectors']} vectors "
                 f"({result['dead_dropped']} removed ones dropped) in {result['seconds']:.1f} s", highlight=False)


@main.command(name="eval")
@click.argument("dataset_dir", type=click.Path(path_type=Path))
@click.option("--index", "index_dir", default=None, type=click.Path(file_okay=False),
              help="Index folder to ingest into and keep (default: a temporary one).")
@click.option("--model", "-m", default=None, help="Model name or local folder (default: all-MiniLM-L6-v2).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--dtype", default="auto", show_default=True, help=DTYPE_HELP)
@click.option("--mode", "modes", default="dense", show_default=True, metavar="MODES",
              help="dense, lexical, hybrid, a comma list of them, or all.")
@click.option("--chunking", type=click.Choice(["whole", "chunks"]), default="whole", show_default=True,
              help="whole: one vector per record, truncated at the model's max length (the BEIR protocol); "
                   "chunks: searchkit's token windows, a document scored by its best chunk.")
@click.option("--split", default="test", show_default=True, help="Which qrels/<split>.tsv to evaluate on.")
@click.option("--limit-docs", type=int, default=None, help="Only the first N corpus records (and the queries judged on them).")
@click.option("--limit-queries", type=int, default=None, help="Only the first N judged queries.")
@json_option
@handle_errors
def eval_(dataset_dir, index_dir, model, device, dtype, modes, chunking, split, limit_docs, limit_queries, as_json):
    """Retrieval quality on a BEIR dataset: nDCG@10, Recall@100, MRR@10 and timings."""
    from .evaluate import evaluate

    names = ["dense", "lexical", "hybrid"] if modes.strip() == "all" else [m.strip() for m in modes.split(",") if m.strip()]
    with embedding_progress() as progress:
        report = evaluate(dataset_dir, index_dir=index_dir, model=model, device=device, dtype=dtype, modes=names,
                          chunking=chunking, split=split, limit_docs=limit_docs, limit_queries=limit_queries,
                          progress=progress)
    if as_json:
        emit_json(report.to_dict())
        return
    table = Table(title=Text(f"{report.dataset} ({report.split}): {report.documents} documents, {report.queries} queries; "
                             f"{report.model} {report.dtype} on {report.device}, chunking {report.chunking} "
                             f"({report.chunks} chunks)"))
    for col in ("mode", "nDCG@10", "Recall@100", "MRR@10", "query s"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for mode, r in report.results.items():
        table.add_row(mode, f"{r['ndcg@10']:.4f}", f"{r['recall@100']:.4f}", f"{r['mrr@10']:.4f}", f"{r['query_seconds']:.2f}")
    stdout.print(table)
    stdout.print(f"ingest {report.ingest_seconds:.1f} s ({report.chunks_embedded} chunks embedded)"
                 + (f" -> {report.index}" if report.index else ""), highlight=False, markup=False)


@main.command()
@index_option
@handle_errors
def tui(index_dir):
    """Interactive search over an index, with a live parity toggle (ctrl+t)."""
    from .tui import run

    run(index_dir)


if __name__ == "__main__":
    main()
