"""Messages that carry results from worker threads back to the UI thread.

Workers never touch widgets; they post one of these (`post_message` is thread-safe)
and the app's handlers update reactive state. Messages that answer a query carry its
sequence number so that late answers to an old query can be dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from textual.message import Message

from ..errors import SearchkitError
from ..index import Hit, Index
from .compare import ParityResult


@dataclass(frozen=True)
class IndexFacts:
    """What the status bar shows about the opened index and its encoder."""

    model: str
    device: str
    dtype: str
    vectors: int
    root: Path | None  # common folder of the indexed files (paths are shown relative to it)


class IndexReady(Message):
    def __init__(self, index: Index, facts: IndexFacts) -> None:
        super().__init__()
        self.index, self.facts = index, facts


class IndexFailed(Message):
    """The index could not be opened (`cause` says why), or holds nothing to search."""

    def __init__(
        self,
        error: str,
        state: str,
        facts: IndexFacts | None = None,
        cause: SearchkitError | None = None,
    ) -> None:
        super().__init__()
        self.error = error
        self.state = state  # a few words for the status bar
        self.facts = facts
        self.cause = cause  # None for an empty index, which opened fine


class SearchDone(Message):
    def __init__(
        self,
        seq: int,
        query: str,
        vector: np.ndarray,
        hits: list[Hit],
        documents: dict[int, str],
        latency_ms: float,
        index_state: tuple[int, Path | None] | None = None,
    ) -> None:
        super().__init__()
        self.seq, self.query, self.vector, self.hits = seq, query, vector, hits
        self.documents = documents  # chunk id -> its document's text, read in the worker
        self.latency_ms = latency_ms
        # (vectors, root) when the index moved on since the last answer (another ingest, a
        # rebuild swapped in): the status bar and the shown paths follow it.
        self.index_state = index_state


class SearchFailed(Message):
    def __init__(self, seq: int, error: str, cause: SearchkitError | None = None) -> None:
        super().__init__()
        self.seq, self.error, self.cause = seq, error, cause


class ReferenceLoaded(Message):
    def __init__(self, reference: Any) -> None:
        super().__init__()
        self.reference = reference


class ReferenceFailed(Message):
    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class ParityDone(Message):
    def __init__(self, seq: int, result: ParityResult) -> None:
        super().__init__()
        self.seq, self.result = seq, result


class ParityFailed(Message):
    def __init__(self, seq: int, error: str) -> None:
        super().__init__()
        self.seq, self.error = seq, error
