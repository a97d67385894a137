"""`searchkit map`: a 2-D picture of every chunk of an index."""

from __future__ import annotations

from pathlib import Path

import click

from .common import emit_json, handle_errors, index_option, json_option, stderr, stdout
from .group import main


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
    from ..corpus_map import draw_map
    from ..index import Index

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
