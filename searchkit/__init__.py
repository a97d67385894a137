"""searchkit: local semantic search with encoders of its own, FAISS and SQLite.

>>> import searchkit
>>> enc = searchkit.load_encoder("all-MiniLM-L6-v2")
>>> index = searchkit.open_index("index/")
>>> index.ingest(["corpus/"])
>>> hits = index.search("a question", k=10)
"""

__version__ = "0.1.0"

from .encoder import Encoder, load_encoder  # noqa: E402
from .errors import SearchkitError  # noqa: E402
from .index import Hit, Index, IngestSummary, open_index  # noqa: E402

__all__ = ["Encoder", "Hit", "Index", "IngestSummary", "SearchkitError", "load_encoder", "open_index", "__version__"]
