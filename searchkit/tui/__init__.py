"""The Textual terminal UI: `searchkit tui [--index DIR]`.

>>> from searchkit.tui import run
>>> run("index/")
"""

from __future__ import annotations

from pathlib import Path

from .app import SearchApp


def run(index_dir: str | Path, dtype: str = "auto", distinct: bool = False) -> None:
    """Open the search UI over the index in `index_dir`, queries embedded in `dtype`
    (`distinct`: one hit per text, as `Index.search(..., distinct=True)`).

    A missing or broken index is shown in the UI, not raised at once; after the user quits,
    the error that kept it from opening (or broke it while searching) is raised, so that
    `searchkit tui` prints it on one line and exits 1. A bug that ended the app exits with
    the app's return code, after Textual has printed its traceback.
    """
    app = SearchApp(index_dir=index_dir, dtype=dtype, distinct=distinct)
    app.run()
    if app.return_code:  # an unexpected exception (in a worker or a handler) ended the app
        raise SystemExit(app.return_code)
    if app.failure is not None:
        raise app.failure


__all__ = ["SearchApp", "run"]
