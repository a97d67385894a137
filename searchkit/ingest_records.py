"""The records an ingest passes from stage to stage, and the sink it writes them to.

scan -> `FileState` -> prepare -> `PreparedFile` (in `Batch`es) -> embed -> the sink; a
big file streamed in parts becomes a `StagedFile`. The stages (ingest.py,
ingest_stream.py, ray_ingest.py) make and take them, and `IndexWriter` (index_writer.py)
commits them; each of those imports this module, none of them another for its types.
`IngestSink` is what an ingest needs of a writer: `IndexWriter` is the one there is.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

import numpy as np

if TYPE_CHECKING:
    # Annotations only: the stages never touch these classes themselves, and importing
    # them would load faiss (store/segments.py) into every Ray read/chunk task.
    from .settings import IndexSettings
    from .store.catalog import Catalog
    from .store.segments import Segments
    from .store.staging import Staging

__all__ = ["MAX_FILE_BYTES", "STREAM_BYTES", "Batch", "CommitCounts", "FileState", "IngestSink", "PreparedFile", "StagedFile"]

T = TypeVar("T")

# The largest file an ingest reads; text files over STREAM_BYTES are read, chunked and
# embedded in parts (ingest_stream.py).
MAX_FILE_BYTES = 50 * 2**20
STREAM_BYTES = 2**20


@dataclass
class FileState:
    """A file found on disk, compared with what the catalog holds for its path."""

    path: Path
    size: int
    mtime: float
    sha256: str | None = None  # filled when the file has to be compared by content
    old_id: int | None = None  # the catalog's file id when the path is known
    found_as: str | None = None  # the path the walk met it at, before symlinks were followed


@dataclass
class PreparedFile:
    """A file read and chunked, ready to embed: catalog rows without ids yet."""

    state: FileState
    reader: str
    documents: list[dict]  # {key, title, text, meta}
    chunks: list[list[dict]]  # per document: {ordinal, start, end, text, page, line_start, line_end}
    problems: list[str]

    @property
    def chunk_count(self) -> int:
        return sum(len(c) for c in self.chunks)


@dataclass
class Batch:
    """Files prepared together, to be embedded in one call."""

    files: list[PreparedFile]
    skipped: list[tuple[str, str]]  # (path, reason)
    emptied: list[int]  # catalog ids of changed files that are no longer text: their chunks go
    bytes_done: int  # of the files to prepare, bytes read up to the end of this batch
    reused: int = 0  # chunks whose vectors the index held (`embed`'s `known`), not embedded


@dataclass
class StagedFile:
    """A file staged whole, ready for the commit that makes it visible."""

    state: FileState
    reader: str
    attempt: int
    chunk_count: int
    embedded: int = 0  # chunks embedded by this run
    reused: int = 0  # chunks whose vector the index already held
    problems: list[str] = field(default_factory=list)


@dataclass
class CommitCounts:
    """What one commit (and the merges after it) changed."""

    generation: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    files_added: int = 0
    files_updated: int = 0
    merges: int = 0
    problems: list[str] = field(default_factory=list)  # records skipped inside the files added


class IngestSink(Protocol):
    """Where `ingest.run` and `ingest_stream.stream_file` write: pending additions and
    removals, staging transactions for big files, and commits (index_writer.IndexWriter)."""

    catalog: Catalog
    staging: Staging  # the staging tables of files streamed in parts (store/staging.py)
    vectors: Segments  # read for vectors the index already holds (ingest_stream.KnownVectors)

    @property
    def dim(self) -> int: ...

    @property
    def pending_chunks(self) -> int: ...

    @property
    def age(self) -> float: ...

    def settings(self) -> IndexSettings: ...

    def remove_files(self, file_ids: list[int]) -> None: ...

    def add_files(self, files: list[PreparedFile], vectors: np.ndarray) -> None: ...

    def add_staged(self, staged: StagedFile) -> None: ...

    def stage(self, write: Callable[[], T]) -> T: ...

    def commit(self, merge: bool = True) -> CommitCounts: ...
