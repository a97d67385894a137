"""`searchkit tui`: the interactive search (Textual, imported only when the command runs)."""

from __future__ import annotations

from .common import handle_errors, index_option
from .group import main


@main.command()
@index_option
@handle_errors
def tui(index_dir):
    """Interactive search over an index, with a live parity toggle (ctrl+t)."""
    from ..tui import run

    run(index_dir)
