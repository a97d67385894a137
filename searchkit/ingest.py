"""The ingest stages, as plain functions over batches of records.

scan (which files are new, changed, gone) -> read + chunk -> embed -> (Index commits).
No global state: each stage takes what it needs, so they run in-process today and as
batch stages of a distributed runner unchanged later.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .chunking import chunk_texts, whole_chunks
from .hashing import sha256_file
from .readers import SkipFile, read_file, walk

MAX_FILE_BYTES = 50 * 2**20


@dataclass
class FileState:
    """A file found on disk, compared with what the catalog holds for its path."""

    path: Path
    size: int
    mtime: float
    sha256: str | None = None  # filled when the file has to be compared by content
    old_id: int | None = None  # the catalog's file id when the path is known


@dataclass
class Scan:
    new: list[FileState] = field(default_factory=list)
    changed: list[FileState] = field(default_factory=list)
    unchanged: int = 0
    touched: list[FileState] = field(default_factory=list)  # new mtime, same content
    removed: list[dict] = field(default_factory=list)  # catalog rows of files that are gone
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seen: int = 0


@dataclass
class PreparedFile:
    """A file read and chunked, ready to embed: catalog rows without ids yet."""

    state: FileState
    reader: str
    documents: list[dict]  # {key, title, text, meta}
    chunks: list[list[dict]]  # per document: {ordinal, start, end, text}
    problems: list[str]

    @property
    def chunk_count(self) -> int:
        return sum(len(c) for c in self.chunks)


def _under(path: str, roots: Sequence[Path]) -> bool:
    return any(path == str(r) or path.startswith(str(r).rstrip(os.sep) + os.sep) for r in roots)


def scan(paths: Sequence[str | Path], known: dict[str, dict], max_bytes: int = MAX_FILE_BYTES) -> Scan:
    """Sort the files under `paths` into new, changed, unchanged and skipped, and find the
    known files under those paths that are gone. Size and mtime equal means unchanged;
    otherwise the content hash decides."""
    result = Scan()
    roots = [Path(p).expanduser().resolve() for p in paths]
    seen_paths: set[str] = set()
    for path, reason in walk(paths, max_bytes=max_bytes):
        result.seen += 1
        key = str(path)
        seen_paths.add(key)
        if reason is not None:
            result.skipped.append((key, reason))
            continue
        try:
            st = path.stat()
        except OSError as exc:
            result.skipped.append((key, exc.strerror or "unreadable"))
            continue
        state = FileState(path, st.st_size, st.st_mtime)
        row = known.get(key)
        if row is None:
            result.new.append(state)
            continue
        state.old_id = row["id"]
        if row["size"] == st.st_size and row["mtime"] == st.st_mtime:
            result.unchanged += 1
            continue
        try:
            state.sha256 = sha256_file(path)
        except OSError as exc:
            result.skipped.append((key, exc.strerror or "unreadable"))
            continue
        if state.sha256 == row["sha256"]:
            result.unchanged += 1  # touched, not changed
            result.touched.append(state)
        else:
            result.changed.append(state)
    # A file skipped this time (now unreadable, say) keeps its old chunks: nothing is lost.
    result.removed = [
        row for path, row in known.items() if path not in seen_paths and _under(path, roots)
    ]
    return result


def prepare(
    states: Sequence[FileState],
    tokenizer,
    max_tokens: int | None,
    overlap: int | None,
    max_bytes: int = MAX_FILE_BYTES,
) -> tuple[list[PreparedFile], list[tuple[str, str]]]:
    """Read and chunk a batch of files. Returns the prepared files and (path, reason) skips.
    `max_tokens=None` makes each document one chunk (the encoder truncates it)."""
    prepared, skipped = [], []
    for state in states:
        try:
            result = read_file(state.path, max_bytes=max_bytes)
            state.sha256 = state.sha256 or sha256_file(state.path)
        except SkipFile as exc:
            skipped.append((str(state.path), exc.reason))
            continue
        except OSError as exc:
            skipped.append((str(state.path), exc.strerror or "unreadable"))
            continue
        docs = [
            {"key": d.key, "title": d.title, "text": d.text, "meta": d.meta} for d in result.documents
        ]
        texts = [d["text"] for d in docs]
        chunked = whole_chunks(texts) if max_tokens is None else chunk_texts(texts, tokenizer, max_tokens, overlap)
        chunks = [
            [{"ordinal": c.ordinal, "start": c.start, "end": c.end, "text": c.text} for c in doc_chunks]
            for doc_chunks in chunked
        ]
        if not any(chunks) and not result.problems:
            skipped.append((str(state.path), "no text"))
            continue
        prepared.append(PreparedFile(state, state.path.suffix.lower(), docs, chunks, result.problems))
    return prepared, skipped


def embed(prepared: Sequence[PreparedFile], encode: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """Vectors for every chunk of the prepared files, in file, document, chunk order."""
    texts = [c["text"] for f in prepared for doc in f.chunks for c in doc]
    return encode(texts)
