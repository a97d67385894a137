"""searchkit: local semantic search with encoders of its own, FAISS and SQLite.

>>> import searchkit
>>> enc = searchkit.load_encoder("all-MiniLM-L6-v2")
>>> index = searchkit.open_index("index/")
>>> index.ingest(["corpus/"])
>>> hits = index.search("a question", k=10)
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# Public names, imported on first use: `import searchkit` (and so the CLI's start, its
# --help, and a Ctrl-C during start-up) does not wait for torch and faiss to load.
_EXPORTS = {
    "Encoder": ".encoder",
    "load_encoder": ".encoder_loading",
    "SearchkitError": ".errors",
    "Hit": ".hits",
    "Index": ".index",
    "IndexOptions": ".settings",
    "IndexSettings": ".settings",
    "IndexWriter": ".index_writer",
    "IngestSummary": ".ingest",
    "open_index": ".index",
}

__all__ = [*_EXPORTS, "__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'searchkit' has no attribute {name!r}")
