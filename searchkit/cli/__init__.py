"""The `searchkit` command: a thin click shell over the Python API.

Every command takes --json (machine-readable on stdout); progress and messages go to
stderr; a `SearchkitError` becomes one line and exit status 1.

One module per command (or pair of close commands), each registering on the click group
`main` (group.py); what they share is in common.py.
"""

from __future__ import annotations

from ..store import sqlite_import

sqlite_import.FOR_CLI = True  # before any command imports the catalog (store/sqlite_import.py)

# Imported for their side effect: each module registers its commands on `main`.
from . import embed, eval_, info, ingest, maintenance, map_, parity, search, tui  # noqa: E402, F401
from .group import main  # noqa: E402

__all__ = ["main"]
