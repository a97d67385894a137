"""sqlite-utils for the `searchkit` command, imported without pandas.

sqlite-utils imports pandas whenever it is installed (searchkit's `ray` extra brings it,
as do many Python setups), only to map `pandas.Timestamp` values to TEXT columns, and
searchkit stores none. On a 2-core AMD EPYC (2026-12-06), `import sqlite_utils` took
0.40-0.44 s with pandas installed and 0.15-0.17 s with it hidden; a one-shot `searchkit
search` on a small index, five runs each taking turns, took a median 2.06 s against 2.48 s
with pandas imported (`import torch` is most of the rest; bench/cli_startup.py measures it).

So the command (cli/__init__.py sets `FOR_CLI`) hides pandas while sqlite-utils is
imported, and only then: anything that imports pandas afterwards (Ray Data in `ingest
--ray`) gets it as usual. The library leaves sqlite-utils alone, since a program that
imports searchkit may insert Timestamps through sqlite-utils itself.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

FOR_CLI = False


def load() -> ModuleType:
    """The sqlite_utils module; in the command, imported with pandas hidden (see above)."""
    if not FOR_CLI or "sqlite_utils" in sys.modules or "pandas" in sys.modules:
        return importlib.import_module("sqlite_utils")
    sys.modules["pandas"] = None  # `import pandas` now raises ImportError, which sqlite-utils expects
    try:
        return importlib.import_module("sqlite_utils")
    finally:
        if "pandas" in sys.modules and sys.modules["pandas"] is None:
            del sys.modules["pandas"]
