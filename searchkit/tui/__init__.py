"""The Textual terminal UI: `searchkit tui [--index DIR]`.

>>> from searchkit.tui import run
>>> run("index/")
"""

from __future__ import annotations

from pathlib import Path

from .app import SearchApp


def run(index_dir: str | Path) -> None:
    """Open the search UI over the index in `index_dir` (a missing index is shown, not raised)."""
    SearchApp(index_dir=index_dir).run()


__all__ = ["SearchApp", "run"]
