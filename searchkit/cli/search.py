"""`searchkit search`: one query, or one a line from standard input, and hits printed for a
human (or as JSON)."""

from __future__ import annotations

import os
import stat
import sys
from dataclasses import asdict
from pathlib import Path

import click
from rich.markup import escape

from .common import (
    DTYPE_HELP,
    binary_stdin,
    emit_json,
    handle_errors,
    index_option,
    json_option,
    stdout,
)
from .group import main
from .names import shown


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
@click.option("--distinct", is_flag=True,
              help="One hit per text: chunks that repeat a better hit's text (copied files, a section "
                   "shipped twice) are listed under it as copies instead of taking a rank.")
@click.option("--ef-search", type=click.IntRange(min=1), default=None,
              help="hnsw indexes: candidates explored per query (more: better recall, slower).")
@click.option("--nprobe", type=click.IntRange(min=1), default=None,
              help="ivfpq indexes: inverted lists scanned per query (more: better recall, slower).")
@json_option
@handle_errors
def search(query, index_dir, k, device, dtype, mode, where, distinct, ef_search, nprobe, as_json):
    """Find the chunks that best answer QUERY (by meaning, by words, or both).

    QUERY `-` reads one query a line from standard input (blank lines skipped), loading the
    index once: with --json, one JSON object a line, {"query": ..., "hits": [...]}."""
    from ..index import Index

    tuning = {name: value for name, value in (("efSearch", ef_search), ("nprobe", nprobe)) if value is not None}
    # Queries come one at a time: "fastest" is the dtype that embeds those fastest here.
    index = Index(index_dir, device=device, dtype=dtype, fastest_for="queries", index_params=tuning)
    if query == "-":
        _search_stdin(index, k=k, mode=mode, where=where, distinct=distinct, as_json=as_json)
        return
    hits = index.search(query, k=k, mode=mode, where=list(where) or None, distinct=distinct)
    if as_json:
        emit_json([asdict(h) for h in hits])
        return
    _print_hits(hits, mode, where)


def _search_stdin(index, *, k: int, mode: str, where: tuple[str, ...], distinct: bool, as_json: bool) -> None:
    """`search -`: the queries of stdin, answered a batch at a time from a file, one at a
    time from a terminal or a pipe (see `_query_batch_size`)."""
    from ..lines import batches, numbered_lines

    stream = binary_stdin()
    for batch in batches(numbered_lines(stream, "stdin"), _query_batch_size(stream)):
        queries = [text for _, text in batch]
        for text, hits in zip(queries, index.search_many(queries, k=k, mode=mode, where=list(where) or None,
                                                                  distinct=distinct)):
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


def _display_path(path: str) -> str:
    """A path relative to the working directory when it lies below it (JSON keeps it absolute)."""
    try:
        return str(Path(path).relative_to(Path.cwd()))
    except ValueError:
        return path


def _print_hits(hits, mode: str, where: tuple[str, ...]) -> None:
    """Hits for a human: rank, score, where it is, then the start of its text."""
    if not hits:
        stdout.print("no hits" + (" (no chunk matches the filters)" if where else
                                  " (no chunk shares a word with the query)" if mode == "lexical" else " (the index is empty)"))
    for hit in hits:
        stdout.print(f"[bold]{hit.rank:>2}.[/bold] [cyan]{hit.score:.4f}[/cyan]  {escape(_location(hit))}  "
                     f"[dim]\\[{hit.start}:{hit.end}][/dim]", highlight=False)
        snippet = " ".join(hit.text.split())
        stdout.print("    " + (snippet[:300] + ("…" if len(snippet) > 300 else "")), highlight=False, markup=False)
        for copy in hit.copies:
            stdout.print(f"    [dim]same text: {escape(_location(copy))} \\[{copy.start}:{copy.end}][/dim]",
                         highlight=False)


def _location(hit) -> str:
    """A hit's (or a copy's) file, record and lines, as the listing shows them (on one line,
    whatever the name holds: names.shown)."""
    path = _display_path(hit.path)
    return shown(f"{path}#{hit.document}" if hit.document else path) + _position(hit)
