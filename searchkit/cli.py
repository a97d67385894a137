"""The `searchkit` command: a thin click shell over the Python API.

Every command takes --json (machine-readable on stdout); progress and messages go to
stderr; a `SearchkitError` becomes one line and exit status 1.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import os
import stat
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

from .errors import BadInput, SearchkitError

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
    func = click.option("--pooling", default=None, metavar="MODE", help=POOLING_HELP)(func)
    func = click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")(func)
    func = click.option("--dtype", default="auto", show_default=True, help=DTYPE_HELP)(func)
    func = dim_option(func)
    return func


POOLING_HELP = ("Pooling (default: the model's own, else mean): mean, cls, max, lasttoken, mean_sqrt_len_tokens, "
                "weightedmean, or several joined by + (concatenated, as sentence-transformers does).")
dim_option = click.option("--dim", type=int, default=None, metavar="N",
                          help="Keep the first N values of each vector, renormalised (Matryoshka models; the "
                               "dims a model lists are in `searchkit info`). An index records it.")


# The prompts an index embeds with (recorded in it): --query-prompt for searches, --document-prompt for chunks.
def index_prompt_options(func):
    func = click.option("--query-prompt", default=None, metavar="TEXT",
                        help="Prepended to every query (default: the model's \"query\" prompt; '' for none). "
                             "Recorded in the index.")(func)
    func = click.option("--document-prompt", default=None, metavar="TEXT",
                        help="Prepended to every chunk (default: the model's \"document\"/\"passage\" prompt; '' "
                             "for none). Recorded in the index.")(func)
    return func


# The prompt `embed` and `similarity` put in front of their texts.
def prompt_options(func):
    func = click.option("--prompt-name", default=None, metavar="NAME",
                        help="One of the model's prompts (config_sentence_transformers.json), e.g. query; "
                             "default: its default prompt, if it names one.")(func)
    func = click.option("--prompt", default=None, metavar="TEXT", help="A prompt of your own, e.g. 'query: '.")(func)
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
@index_prompt_options
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
@click.option("--include", "include", multiple=True, metavar="GLOB",
              help="Only files matching GLOB (gitignore-style, relative to each PATH: '*.py', 'docs/**/*.md'); "
                   "repeatable, any may match.")
@click.option("--exclude", "exclude", multiple=True, metavar="GLOB",
              help="Leave out files and folders matching GLOB (gitignore-style: '*.csv', 'tests/'); repeatable.")
@click.option("--no-ignore", is_flag=True,
              help="Do not follow .gitignore/.ignore files, and enter __pycache__ and node_modules.")
@click.option("--hidden", is_flag=True, help="Also ingest dot-files and dot-folders (never .git, .hg, .svn).")
@json_option
@handle_errors
def ingest(paths, index_dir, model, pooling, device, dtype, layer, chunk_tokens, chunk_overlap, rebuild, prune,
           as_json, commit_chunks, chunking, index_type, index_params, ray_address, workers, gpus_per_worker,
           dim, query_prompt, document_prompt, include, exclude, no_ignore, hidden):
    """Embed the files under PATHS into the index: new and changed files only.

    Files that are gone from PATHS lose their chunks; so do files now empty, binary or too
    large, and files this run leaves out (.gitignore/.ignore, hidden, --exclude, --include).
    A PATH that no longer exists drops the files indexed from it."""
    from .index import Index

    if not paths and not prune:
        raise click.UsageError("give at least one PATH (or --prune alone, to drop files gone from disk)")
    if prune and rebuild:
        raise click.UsageError("--prune and --rebuild: a rebuild holds only PATHS already")
    if ray_address is None and (workers is not None or gpus_per_worker):
        raise click.UsageError("--workers and --gpus-per-worker go with --ray")
    on_ray = {"engine": "ray", "ray_address": ray_address, "workers": workers,
              "gpus_per_worker": gpus_per_worker} if ray_address is not None else {}

    index = Index(index_dir, model=model, pooling=pooling, device=device, dtype=dtype, layer=layer, dim=dim,
                  query_prompt=query_prompt, document_prompt=document_prompt, chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap, chunking=chunking, index_type=index_type,
                  index_params=_name_values(index_params, "--index-param"))
    with embedding_progress() as progress:
        summary = index.ingest(paths, progress=progress, rebuild=rebuild, prune=prune, commit_chunks=commit_chunks,
                               include=include, exclude=exclude, ignore_files=not no_ignore, hidden=hidden, **on_ray)
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
              help="Metadata filter, repeatable (ANDed): path:GLOB, type:NAME[,NAME] (txt, md, pdf, py, yaml, csv...), "
                   "mtime>DATE, mtime<DATE, "
                   "field.NAME=VALUE (also !=, <, <=, >, >=). E.g. --where 'path:docs/*.md' --where 'mtime>2024-01-01'")
@click.option("--ef-search", type=click.IntRange(min=1), default=None,
              help="hnsw indexes: candidates explored per query (more: better recall, slower).")
@click.option("--nprobe", type=click.IntRange(min=1), default=None,
              help="ivfpq indexes: inverted lists scanned per query (more: better recall, slower).")
@json_option
@handle_errors
def search(query, index_dir, k, device, dtype, mode, where, ef_search, nprobe, as_json):
    """Find the chunks that best answer QUERY (by meaning, by words, or both).

    QUERY `-` reads one query a line from standard input (blank lines skipped), loading the
    index once: with --json, one JSON object a line, {"query": ..., "hits": [...]}."""
    from .index import Index

    tuning = {name: value for name, value in (("efSearch", ef_search), ("nprobe", nprobe)) if value is not None}
    index = Index(index_dir, device=device, dtype=dtype, index_params=tuning)
    if query == "-":
        _search_stdin(index, k=k, mode=mode, where=where, as_json=as_json)
        return
    hits = index.search(query, k=k, mode=mode, where=list(where) or None)
    if as_json:
        emit_json([asdict(h) for h in hits])
        return
    _print_hits(hits, mode, where)


def _search_stdin(index, *, k: int, mode: str, where: tuple[str, ...], as_json: bool) -> None:
    """`search -`: the queries of stdin, answered a batch at a time from a file, one at a
    time from a terminal or a pipe (see `_query_batch_size`)."""
    from .lines import batches, numbered_lines

    stream = _stdin()
    for batch in batches(numbered_lines(stream, "stdin"), _query_batch_size(stream)):
        queries = [text for _, text in batch]
        for text, hits in zip(queries, index.search_many(queries, k=k, mode=mode, where=list(where) or None)):
            if as_json:
                emit_json({"query": text, "hits": [asdict(h) for h in hits]})
            else:
                stdout.print(f"[bold]query:[/bold] {escape(text)}", highlight=False)
                _print_hits(hits, mode, where)
        sys.stdout.flush()


def _query_batch_size(stream) -> int:
    """64 queries a batch where all of them are there to read (a regular file, or text in
    memory); 1 from a terminal or a pipe, where whoever writes a query may wait for its
    answer before writing the next: waiting for 64 there would wait forever."""
    try:
        mode = os.fstat(stream.fileno()).st_mode
    except (OSError, ValueError):  # no file descriptor: in memory (io.BytesIO)
        return 64
    return 64 if stat.S_ISREG(mode) else 1


def _position(hit) -> str:
    """Where in its file a hit is, as editors and grep write it: `:12` or `:12-30` (lines),
    ` page 3` (PDF); '' when neither is known."""
    out = ""
    if hit.line_start is not None:
        out += f":{hit.line_start}" + (f"-{hit.line_end}" if hit.line_end not in (None, hit.line_start) else "")
    if hit.page is not None:
        out += f" page {hit.page}"
    return out


def _print_hits(hits, mode: str, where: tuple[str, ...]) -> None:
    """Hits for a human: rank, score, where it is, then the start of its text."""
    if not hits:
        stdout.print("no hits" + (" (no chunk matches the filters)" if where else
                                  " (no chunk shares a word with the query)" if mode == "lexical" else " (the index is empty)"))
    for hit in hits:
        path = _display_path(hit.path)
        where = (f"{path}#{hit.document}" if hit.document else path) + _position(hit)
        stdout.print(f"[bold]{hit.rank:>2}.[/bold] [cyan]{hit.score:.4f}[/cyan]  {escape(where)}  "
                     f"[dim]\\[{hit.start}:{hit.end}][/dim]", highlight=False)
        snippet = " ".join(hit.text.split())
        stdout.print("    " + (snippet[:300] + ("…" if len(snippet) > 300 else "")), highlight=False, markup=False)


@main.command()
@click.argument("texts", nargs=-1, required=True)
@encoder_options
@prompt_options
@click.option("--layer", type=int, default=None, help="Hidden state to pool (0 = embeddings).")
@click.option("--no-normalize", is_flag=True, help="Skip the L2 normalisation.")
@json_option
@handle_errors
def embed(texts, model, pooling, device, dtype, layer, no_normalize, as_json, dim, prompt_name, prompt):
    """Print the embedding vector of each TEXT (`-`: each line of standard input, blank ones skipped)."""
    from .encoder import Encoder

    texts = _with_stdin(texts)  # before seconds of loading the model
    enc = Encoder(model, pooling=pooling, device=device, dtype=dtype, layer=layer, normalize=not no_normalize,
                  dim=dim, prompt_name=prompt_name, prompt=prompt)
    vectors = enc.encode(list(texts))
    if as_json:
        emit_json({"model": enc.name, "dim": enc.dim, "embeddings": vectors.tolist()})
        return
    prompt = enc.prompts.resolve()
    stdout.print(f"model {enc.name}, dim {enc.dim}, pooling {enc.pooling}, dtype {enc.dtype_name}"
                 + (f", prompt {prompt!r}" if prompt else ""), highlight=False, markup=False)
    for text, vec in zip(texts, vectors):
        head = ", ".join(f"{x:.4f}" for x in vec[:6])
        stdout.print(f"{text!r}: [{head}, …] (norm {float((vec ** 2).sum()) ** 0.5:.4f})", highlight=False, markup=False)


@main.command()
@click.argument("texts", nargs=-1)
@encoder_options
@prompt_options
@click.option("--metric", type=click.Choice(["cosine", "dot", "euclidean", "manhattan"]), default="cosine",
              show_default=True, help="Similarity (cosine, dot) or distance (euclidean, manhattan: lower = more alike).")
@click.option("--all-metrics", is_flag=True, help="Two texts: every metric (cosine, dot, euclidean, manhattan).")
@click.option("--pairs", "pairs_file", default=None, metavar="FILE",
              help="Score every pair of a sentence-pair file (TSV, or CSV by its .csv name; `-`: stdin); "
                   "with labels, also accuracy/threshold/ROC AUC (0/1) or Spearman/Pearson (graded).")
@click.option("--matrix", "as_matrix", is_flag=True, help="Every TEXT against every other (`-`: the lines of stdin).")
@json_option
@handle_errors
def similarity(texts, model, pooling, device, dtype, metric, all_metrics, pairs_file, as_matrix, as_json, dim,
               prompt_name, prompt):
    """How alike texts are: two texts, sentence pairs, or a matrix.

    \b
    similarity TEXT1 TEXT2        cosine (--metric, --all-metrics)
    similarity TEXT -             TEXT against each line of stdin
    similarity -                  pairs from stdin, TEXT1<TAB>TEXT2 a line (as --pairs -)
    similarity --pairs FILE.tsv   every pair of a file, and metrics when it has labels
    similarity --matrix TEXT...   every text against every other
    """
    from .encoder import Encoder
    from .similarity import METRICS, compare

    job = _similarity_job(texts, pairs_file, as_matrix, all_metrics)  # reads stdin or the file first
    enc = Encoder(model, pooling=pooling, device=device, dtype=dtype, dim=dim, prompt_name=prompt_name, prompt=prompt)
    if job is not None:
        (_show_matrix if as_matrix else _show_pairs)(enc, job, metric, as_json)
        return
    text1, text2 = texts
    a, b = enc.encode([text1, text2])
    scores = compare(a, b, METRICS if all_metrics else (metric,))
    if as_json:
        emit_json({"model": enc.name, **scores})
        return
    for name, value in scores.items():
        stdout.print(f"{name:<10} {value:.4f}", highlight=False)


def _stdin():
    """Standard input as bytes (decoded line by line in searchkit.lines, errors by line number)."""
    return sys.stdin.buffer if sys.stdin is not None else io.BytesIO()


def _stdin_lines() -> list[tuple[int, str]]:
    """(line number, text) of each non-blank line of stdin; bad UTF-8 is a one-line error."""
    from .lines import numbered_lines

    return list(numbered_lines(_stdin(), "stdin"))


def _with_stdin(texts: tuple[str, ...]) -> list[str]:
    """TEXT arguments with `-` replaced by the lines of stdin."""
    if texts.count("-") > 1:
        raise click.UsageError("`-` (standard input) may be given once")
    out: list[str] = []
    for text in texts:
        out += [line for _, line in _stdin_lines()] if text == "-" else [text]
    if not out:
        raise BadInput("stdin: no texts (only blank lines)")
    return out


def _similarity_job(texts: tuple[str, ...], pairs_file: str | None, as_matrix: bool, all_metrics: bool):
    """What `similarity` was asked: None for two texts, else the matrix's texts or a PairFile."""
    from .pairs import Pair, PairFile, read_pairs

    if all_metrics and (as_matrix or pairs_file or "-" in texts):
        raise click.UsageError("--all-metrics goes with two texts; pick one with --metric")
    if as_matrix:
        if pairs_file:
            raise click.UsageError("--matrix or --pairs, not both")
        if not texts:
            raise click.UsageError("--matrix needs TEXTs (or `-` for the lines of stdin)")
        return _with_stdin(texts)
    if pairs_file or texts == ("-",):
        if pairs_file and texts:
            raise click.UsageError("--pairs FILE takes no TEXT arguments")
        source = pairs_file or "-"
        stdin = _stdin() if source == "-" else None
        return read_pairs("stdin" if source == "-" else source, stream=stdin)
    if len(texts) != 2:
        raise click.UsageError("give TEXT1 TEXT2, TEXT -, `-`, --pairs FILE or --matrix TEXT...")
    if texts == ("-", "-"):
        raise click.UsageError("`-` (standard input) may be given once")
    if "-" not in texts:
        return None
    text = texts[1] if texts[0] == "-" else texts[0]
    lines = _stdin_lines()
    if not lines:
        raise BadInput("stdin: no texts (only blank lines)")
    pairs = [Pair(n, *((line, text) if texts[0] == "-" else (text, line))) for n, line in lines]
    return PairFile("stdin", pairs, {"sentence1": 0, "sentence2": 1}, header=False)


def _show_pairs(enc, pair_file, metric: str, as_json: bool) -> None:
    """Every pair's score, then the metrics when the pairs have labels."""
    from .pairs import score_pairs

    report = score_pairs(enc, pair_file, metric)
    if as_json:
        emit_json(report.to_dict())
        return
    labelled = report.metrics is not None
    table = Table(title=Text(f"{metric} of {len(report.pairs)} pairs from {report.source} ({enc.name})"))
    for col in ("line", metric, *(("label",) if labelled else ()), "sentence1", "sentence2"):
        table.add_column(col, justify="right" if col in ("line", metric, "label") else "left")
    for pair, score in zip(report.pairs, report.scores):
        label = (f"{pair.label:g}",) if labelled else ()
        table.add_row(str(pair.line), f"{score:.4f}", *label, Text(pair.sentence1), Text(pair.sentence2))
    stdout.print(table)
    m = report.metrics
    if m and m["labels"] == "binary":
        auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.4f}"
        stdout.print(f"{m['pairs']} pairs ({m['similar']} similar, {m['different']} different): accuracy "
                     f"{m['accuracy']:.4f} at {metric} {'<=' if metric in ('euclidean', 'manhattan') else '>='} "
                     f"{m['threshold']:.4f}, ROC AUC {auc}", highlight=False, markup=False)
    elif m:
        def fmt(x):
            return "n/a" if x is None else f"{x:.4f}"

        stdout.print(f"{m['pairs']} pairs with graded labels: Spearman {fmt(m['spearman'])}, "
                     f"Pearson {fmt(m['pearson'])}", highlight=False, markup=False)
    for note in report.notes:
        stderr.print(f"searchkit: note: {note}", highlight=False, markup=False)


def _show_matrix(enc, texts: list[str], metric: str, as_json: bool) -> None:
    """The metric between every two texts: a table, or {"texts", "matrix"} with --json."""
    from .similarity import matrix

    values = matrix(enc.encode(texts), metric)
    if as_json:
        emit_json({"model": enc.name, "metric": metric, "texts": texts, "matrix": values.tolist()})
        return
    table = Table(title=Text(f"{metric} ({enc.name})"))
    table.add_column("text")
    for i in range(len(texts)):
        table.add_column(str(i + 1), justify="right")
    for i, (text, row) in enumerate(zip(texts, values)):
        short = text if len(text) <= 40 else text[:39] + "…"
        table.add_row(Text(f"{i + 1}. {short}"), *(f"{v:.4f}" for v in row))
    stdout.print(table)


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


def _matryoshka_dims(model) -> list[int]:
    """The Matryoshka dims the index model's folder lists ([] if none, or the model is gone)."""
    from .matryoshka import matryoshka_dims
    from .resolve import resolve_model

    try:
        return matryoshka_dims(resolve_model(model)) if model else []
    except SearchkitError:
        return []


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
@dim_option
@json_option
@handle_errors
def parity(model, texts, device, dtype, plot_path, as_json, dim):
    """Prove our encoder equal to Hugging Face transformers, layer by layer (and its final
    query and document vectors equal to sentence-transformers', where that is installed)."""
    from .encoder import Encoder
    from .parity import check_plot_path, compare, load_reference, plot

    if plot_path:
        check_plot_path(plot_path)  # before seconds of loading and comparing, not after
    enc = Encoder(model, device=device, dtype=dtype, dim=dim)
    report = compare(enc, list(texts) or None, reference=load_reference(enc.path), pipeline=True)
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
        for d in report.pipeline:
            table.add_row(Text(f"sentence-transformers, {d.role}" + (f" (prompt {d.prompt!r})" if d.prompt else "")),
                          f"{d.max_abs:.2e}", "", f"{d.cosine:.8f}")
        stdout.print(table)
        if report.pipeline_note:
            stderr.print(f"searchkit: note: vectors not compared with sentence-transformers: {report.pipeline_note}",
                         highlight=False, markup=False)
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
@dim_option
@index_prompt_options
@json_option
@handle_errors
def eval_(dataset_dir, index_dir, model, device, dtype, modes, chunking, split, limit_docs, limit_queries, as_json,
          dim, query_prompt, document_prompt):
    """Retrieval quality on a BEIR dataset: nDCG@10, Recall@100, MRR@10 and timings."""
    from .evaluate import evaluate

    names = ["dense", "lexical", "hybrid"] if modes.strip() == "all" else [m.strip() for m in modes.split(",") if m.strip()]
    with embedding_progress() as progress:
        report = evaluate(dataset_dir, index_dir=index_dir, model=model, device=device, dtype=dtype, modes=names,
                          chunking=chunking, split=split, limit_docs=limit_docs, limit_queries=limit_queries,
                          progress=progress, dim=dim, query_prompt=query_prompt, document_prompt=document_prompt)
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


@main.command(name="map")
@index_option
@click.option("--out", "out", required=True, type=click.Path(path_type=Path), help="Picture to write (.png; .svg, .pdf also work).")
@click.option("--color-by", type=click.Choice(["folder", "where"]), default=None,
              help="folder: the top-level folder (or file) below the folder all indexed files share (default without --where); "
                   "where: chunks matching --where against the rest (default with --where).")
@click.option("--where", "where", multiple=True, metavar="COND",
              help="Condition, repeatable (ANDed), as in `search --where`; with --color-by folder, only matching "
                   "chunks are drawn.")
@click.option("--method", type=click.Choice(["pca", "umap"]), default="pca", show_default=True,
              help="2-D projection: pca, or umap (needs umap-learn: pip install umap-learn).")
@click.option("--max-points", type=click.IntRange(min=1), default=50_000, show_default=True,
              help="Past this many chunks, draw a seeded random sample of this many.")
@json_option
@handle_errors
def map_(index_dir, out, color_by, where, method, max_points, as_json):
    """Draw every chunk of an index in 2-D, coloured by folder or by a --where condition."""
    from .corpus_map import draw_map
    from .index import Index

    summary = draw_map(Index(index_dir), out, color_by=color_by, where=list(where) or None, method=method,
                       max_points=max_points)
    if summary.sampled:
        stderr.print(f"searchkit: note: drew a seeded random sample of {summary.points:,} of {summary.chunks:,} "
                     "chunks (--max-points)", highlight=False, markup=False)
    if as_json:
        emit_json(summary.to_dict())
        return
    groups = ", ".join(f"{g.name} {g.count:,} (e.g. {g.label})" for g in summary.groups)
    stdout.print(f"{summary.points:,} chunks drawn by {summary.method.upper()} -> {summary.out}; {groups}",
                 highlight=False, markup=False)


@main.command()
@index_option
@handle_errors
def tui(index_dir):
    """Interactive search over an index, with a live parity toggle (ctrl+t)."""
    from .tui import run

    run(index_dir)


if __name__ == "__main__":
    main()
