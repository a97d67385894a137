"""`searchkit tui`: the interactive search (Textual, imported only when the command runs)."""

from __future__ import annotations

import sys

import click

from ..errors import BadInput
from .common import DTYPE_HELP, handle_errors, index_option
from .group import main


@main.command()
@index_option
@click.option("--dtype", default="auto", show_default=True, help="Query encoder dtype: " + DTYPE_HELP)
@click.option("--distinct", is_flag=True,
              help="One hit per text, as `search --distinct`: the preview lists the hit's copies.")
@handle_errors
def tui(index_dir, dtype, distinct):
    """Interactive search over an index, with a live parity toggle (ctrl+t)."""
    missing = no_terminal()
    if missing:  # Textual would spin on such streams forever, drawing escape codes into them
        raise BadInput(f"searchkit tui needs a terminal ({missing} not a tty); use `searchkit search`")
    from ..index import Index

    Index(index_dir).must_exist()  # as every command: one line and exit 1, not a UI with a banner
    import torch

    from ..encoder import FASTEST, pick_dtype
    from ..tui import run

    if dtype.lower() != FASTEST:
        pick_dtype(dtype, torch.device("cpu"))  # a bad name: one line now, not inside the UI
    run(index_dir, dtype=dtype, distinct=distinct)


def no_terminal() -> str:
    """The standard streams that are not a terminal ("stdin is", "stdin, stdout are"), or ""."""
    names = [name for name, stream in (("stdin", sys.stdin), ("stdout", sys.stdout), ("stderr", sys.stderr))
             if stream is None or not stream.isatty()]
    return f"{', '.join(names)} {'is' if len(names) == 1 else 'are'}" if names else ""
