"""The records a reader produces: `Document` (one unit of text to chunk and embed) and
`ReadResult` (the documents of one file, and notes on what was left out of it).

Readers (readers.py, pdf.py) make them; chunking, positions and ingest take them. Every
character offset elsewhere in searchkit refers to `Document.text`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Document", "ReadResult"]


@dataclass(frozen=True)
class Document:
    """One unit of text to chunk and embed, and where it came from."""

    path: Path  # absolute and resolved (symlinks followed)
    key: str  # '' for a whole file; a JSONL record's `_id`, or `line-<n>` (1-based)
    title: str  # '' when there is none
    text: str  # what gets chunked; all character offsets refer to it
    meta: dict = field(default_factory=dict)  # JSON-serialisable extras (JSONL scalar fields)
    pages: tuple[int, ...] = ()  # where each page starts in `text` (PDF); () when not paged
    file_lines: bool = False  # `text`'s lines are the file's lines (plain text, code, Markdown)
    line: int | None = None  # the one line of the file the document is (a JSONL record)


@dataclass
class ReadResult:
    """The documents read from one file, and one-line notes on records left out of it."""

    documents: list[Document]
    problems: list[str] = field(default_factory=list)
