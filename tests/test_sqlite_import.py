"""The command imports sqlite-utils without pandas; the library leaves it alone
(searchkit/store/sqlite_import.py). Each case runs in a fresh interpreter, since what
matters is what an import does to sys.modules."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(importlib.util.find_spec("pandas") is None,
                                reason="pandas is not installed: there is nothing to hide")


def run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_the_command_imports_sqlite_utils_without_pandas_and_pandas_still_imports_after():
    out = run(
        "import sys\n"
        "import searchkit.cli\n"
        "import searchkit.store.catalog\n"
        "import sqlite_utils.db\n"
        "print('pandas' in sys.modules, sqlite_utils.db.pd is None)\n"
        "import pandas\n"
        "print(pandas.DataFrame({'a': [1]}).shape)\n"
    )
    assert out.splitlines() == ["False True", "(1, 1)"]


def test_the_library_leaves_sqlite_utils_its_pandas():
    out = run(
        "import searchkit.store.catalog\n"
        "import sqlite_utils.db\n"
        "print(sqlite_utils.db.pd is not None)\n"
    )
    assert out == "True"
