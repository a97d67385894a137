"""A big file's chunks and vectors, kept in the catalog while the file is ingested in parts.

Ingest streams a big file (ingest_stream.py): every batch of its chunks is embedded and
written here, in a transaction of its own, so the work done survives a crash. Nothing
here is searched: the commit that takes the finished file in (`publish`) moves its rows
into `files`, `documents` and `chunks` in the same transaction that lists its vectors'
segment, so a file is either wholly visible or not at all. An ingest stopped part-way
leaves its rows behind as an *attempt*; the next ingest of that path reads their vectors
by chunk hash instead of embedding those texts again, and drops them once the file is in.

Vectors are float32 bytes. Ids: an attempt is a `staged_files` row; its chunks are
numbered 0, 1, 2... (`seq`), and become chunk ids `first_id + seq` when published.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence

import numpy as np

from .catalog import Catalog, _translated


class Staging:
    """The staged attempts of one catalog (writes go inside `catalog.write()`)."""

    def __init__(self, catalog: Catalog):
        self.catalog = catalog
        self.path = catalog.path  # for `_translated`'s messages
        self.db = catalog.db

    @_translated
    def attempts(self, path: str | None = None) -> list[int]:
        """Attempt ids, oldest first: all, or those of one file path."""
        if path is None:
            rows = self.db.execute("SELECT id FROM staged_files ORDER BY id")
        else:
            rows = self.db.execute("SELECT id FROM staged_files WHERE path = ? ORDER BY id", [path])
        return [r[0] for r in rows.fetchall()]

    @_translated
    def paths(self) -> dict[str, int]:
        """Each staged path with the chunks its attempts hold."""
        rows = self.db.execute(
            "SELECT staged_files.path, count(staged_chunks.seq) FROM staged_files "
            "LEFT JOIN staged_chunks ON staged_chunks.staged_id = staged_files.id GROUP BY staged_files.path"
        )
        return {path: n for path, n in rows.fetchall()}

    @_translated
    def begin(self, path: str) -> int:
        """A new attempt for `path`; returns its id."""
        return self.db["staged_files"].insert({"path": path, "started_at": time.time()}).last_pk

    @_translated
    def hashes(self, attempts: Sequence[int]) -> dict[str, tuple[int, int]]:
        """Chunk hash -> (attempt, seq) of a staged vector with that text."""
        out: dict[str, tuple[int, int]] = {}
        for attempt in attempts:
            for h, seq in self.db.execute("SELECT hash, seq FROM staged_chunks WHERE staged_id = ?", [attempt]):
                out.setdefault(h, (attempt, seq))
        return out

    @_translated
    def vectors_of(self, keys: Sequence[tuple[int, int]], dim: int) -> np.ndarray:
        """The vectors of these (attempt, seq) keys, in order, (n, dim)."""
        out = np.zeros((len(keys), dim), dtype=np.float32)
        for i, (attempt, seq) in enumerate(keys):
            row = self.db.execute("SELECT vector FROM staged_chunks WHERE staged_id = ? AND seq = ?",
                                  [attempt, seq]).fetchone()
            out[i] = np.frombuffer(row[0], dtype=np.float32)
        return out

    @_translated
    def add_document(self, attempt: int, doc_index: int, key: str, title: str, text: str | None,
                     meta: dict) -> None:
        """A document of the attempt; `text=None`: its text comes in parts (`add_text`)."""
        self.db["staged_documents"].insert({"staged_id": attempt, "doc_index": doc_index, "key": key, "title": title,
                                            "text": text, "meta": json.dumps(meta)})

    @_translated
    def add_text(self, attempt: int, doc_index: int, start: int, text: str) -> None:
        """The document's text from character `start` on (parts join up in `start` order)."""
        self.db["staged_text"].insert({"staged_id": attempt, "doc_index": doc_index, "start": start, "text": text})

    @_translated
    def add_chunks(self, attempt: int, first_seq: int, chunks: Sequence[dict], vectors: np.ndarray) -> None:
        """Chunks (doc_index, ordinal, start, end, text, page, line_start, line_end, hash)
        numbered from `first_seq`, with their vectors."""
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.db["staged_chunks"].insert_all(
            {**c, "staged_id": attempt, "seq": first_seq + i, "vector": vectors[i].tobytes()}
            for i, c in enumerate(chunks)
        )

    @_translated
    def chunk_count(self, attempt: int) -> int:
        return int(self.db.execute("SELECT count(*) FROM staged_chunks WHERE staged_id = ?", [attempt]).fetchone()[0])

    @_translated
    def vectors(self, attempt: int, batch: int = 4096) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(seqs, vectors) of the attempt, `batch` at a time, in seq order."""
        last = -1
        while True:
            rows = self.db.execute(
                "SELECT seq, vector FROM staged_chunks WHERE staged_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                [attempt, last, batch]).fetchall()
            if not rows:
                return
            seqs = np.array([r[0] for r in rows], dtype=np.int64)
            yield seqs, np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows])
            last = int(seqs[-1])

    @_translated
    def publish(self, attempt: int, file_row: dict, first_id: int) -> None:
        """Move the attempt into the searched tables as one file whose chunks get ids
        `first_id + seq`, and drop every attempt of its path (inside the commit's
        transaction: store/commit.py)."""
        db = self.db
        file_id = db["files"].insert({**file_row, "ingested_at": time.time()}).last_pk
        docs = db.execute("SELECT doc_index, key, title, text, meta FROM staged_documents WHERE staged_id = ? "
                          "ORDER BY doc_index", [attempt]).fetchall()
        for doc_index, key, title, text, meta in docs:
            doc_id = db["documents"].insert({"file_id": file_id, "key": key, "title": title, "text": text or "",
                                             "meta": meta}).last_pk
            if text is None:  # joined inside SQLite: the whole text never passes through Python
                db.execute(
                    "UPDATE documents SET text = (SELECT coalesce(group_concat(text, ''), '') FROM "
                    "(SELECT text FROM staged_text WHERE staged_id = ? AND doc_index = ? ORDER BY start)) "
                    "WHERE id = ?", [attempt, doc_index, doc_id])
            db.execute(
                "INSERT INTO chunks (id, document_id, ordinal, start, end, text, page, line_start, line_end, hash) "
                "SELECT ? + seq, ?, ordinal, start, end, text, page, line_start, line_end, hash "
                "FROM staged_chunks WHERE staged_id = ? AND doc_index = ? ORDER BY seq",
                [first_id, doc_id, attempt, doc_index])
        self.drop(file_row["path"])

    @_translated
    def drop(self, path: str) -> None:
        """Forget every attempt of `path`."""
        self.drop_attempts(self.attempts(path))

    @_translated
    def drop_attempts(self, attempts: Sequence[int]) -> None:
        for attempt in attempts:
            for table in ("staged_chunks", "staged_text", "staged_documents"):
                self.db.execute(f"DELETE FROM {table} WHERE staged_id = ?", [attempt])
            self.db.execute("DELETE FROM staged_files WHERE id = ?", [attempt])
