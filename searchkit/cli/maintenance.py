"""`searchkit verify` and `searchkit optimize`: check (and repair) an index, merge its segments."""

from __future__ import annotations

import sys

import click
from rich.markup import escape

from .common import emit_json, handle_errors, index_option, json_option, stderr, stdout
from .group import main


@main.command()
@index_option
@click.option("--repair", is_flag=True, help="Re-embed chunks that lack a vector and drop stray vectors.")
@json_option
@handle_errors
def verify(index_dir, repair, as_json):
    """Check that the catalog and the vectors agree (exit 1 when they do not)."""
    from ..index import Index
    from ..verify import repair as do_repair
    from ..verify import verify as do_verify

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
    from ..index import Index

    index = Index(index_dir)
    result = index.optimize()
    if as_json:
        emit_json(result)
        return
    stdout.print(f"{result['segments_before']} segments -> {result['segments']}, {result['vectors']} vectors "
                 f"({result['dead_dropped']} removed ones dropped) in {result['seconds']:.1f} s", highlight=False)
