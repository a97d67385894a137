"""`searchkit ingest`: embed files into an index."""

from __future__ import annotations

from pathlib import Path

import click

from .common import (
    embedding_progress,
    emit_json,
    encoder_options,
    handle_errors,
    index_option,
    index_prompt_options,
    json_option,
    stderr,
    stdout,
)
from .group import main
from .names import shown


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
# Likewise hidden: text files over N bytes are ingested in parts (the streaming tests make
# small files stream).
@click.option("--stream-bytes", type=click.IntRange(min=1), default=None, hidden=True,
              help="Ingest text files over N bytes in parts (default 1 MiB).")
@click.option("--embed-chunks", type=click.IntRange(min=1), default=None, hidden=True,
              help="Embed (and stage, in a file ingested in parts) N chunks at a time (default 512).")
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
           dim, query_prompt, document_prompt, include, exclude, no_ignore, hidden, stream_bytes, embed_chunks):
    """Embed the files under PATHS into the index: new and changed files only.

    Files that are gone from PATHS lose their chunks; so do files now empty, binary or too
    large, and files this run leaves out (.gitignore/.ignore, hidden, --exclude, --include).
    A PATH that no longer exists drops the files indexed from it."""
    from ..index import Index

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
    tuning = {name: value for name, value in (("stream_bytes", stream_bytes), ("embed_chunks", embed_chunks))
              if value is not None}
    with embedding_progress() as progress:
        summary = index.ingest(paths, progress=progress, rebuild=rebuild, prune=prune, commit_chunks=commit_chunks,
                               include=include, exclude=exclude, ignore_files=not no_ignore, hidden=hidden, **on_ray,
                               **tuning)
    if as_json:
        emit_json(summary.to_dict())
        return
    for item in summary.skipped:  # names escaped: one line per skip, whatever a name holds
        stderr.print(shown(f"skipped {item['path']}: {item['reason']}"), highlight=False, markup=False)
    for problem in summary.problems:
        stderr.print(shown(f"skipped record {problem}"), highlight=False, markup=False)
    stdout.print(
        f"{summary.files_seen} files seen: {summary.files_added} added, {summary.files_updated} updated, "
        f"{summary.files_removed} removed, {summary.files_unchanged} unchanged, {summary.files_skipped} skipped; "
        f"{summary.chunks_added} chunks added, {summary.chunks_removed} removed in {summary.seconds:.1f} s -> {index_dir}",
        highlight=False, markup=False,
    )


def _name_values(items: tuple[str, ...], option: str) -> dict[str, str]:
    """NAME=VALUE strings -> a dict (values checked where they are used)."""
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name.strip() or not value.strip():
            raise click.BadParameter(f"{item!r}: expected NAME=VALUE", param_hint=option)
        out[name.strip()] = value.strip()
    return out
