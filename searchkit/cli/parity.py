"""`searchkit parity`: our encoder against Hugging Face transformers (and sentence-transformers)."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from .common import dim_option, emit_json, handle_errors, json_option, stderr, stdout
from .group import main


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
    from ..encoder_loading import load_encoder
    from ..parity import check_plot_path, compare, load_reference, plot

    if plot_path:
        check_plot_path(plot_path)  # before seconds of loading and comparing, not after
    enc = load_encoder(model, device=device, dtype=dtype, dim=dim)
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
