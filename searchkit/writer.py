"""Pending additions and removals of an ingest, committed a generation at a time.

The ingest loop (`Index.ingest`) feeds it embedded files and removed file ids; `commit`
applies them to the in-memory vectors and hands them to `Index.publish`, which makes them
durable in one step (see there).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

from .ingest import PreparedFile

if TYPE_CHECKING:
    from .index import Index, IngestSummary


class Writer:
    """Pending additions and removals, committed as one new generation at a time."""

    def __init__(self, index: Index, settings: dict, summary: IngestSummary):
        self.index, self.summary = index, summary
        self.next_id = int(settings.get("next_chunk_id", 1))
        self.files: list[tuple[PreparedFile, np.ndarray]] = []
        self.vectors: list[np.ndarray] = []
        self.removed_files: list[int] = []
        self.started = time.time()

    @property
    def pending_chunks(self) -> int:
        return sum(len(ids) for _, ids in self.files)

    @property
    def age(self) -> float:
        return time.time() - self.started

    def remove(self, file_ids: list[int]) -> None:
        self.removed_files += file_ids

    def add(self, files: list[PreparedFile], vectors: np.ndarray) -> None:
        offset = 0
        for f in files:
            n = f.chunk_count
            ids = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
            self.next_id += n
            self.files.append((f, ids))
            self.vectors.append(vectors[offset : offset + n])
            offset += n
            if f.state.old_id is not None:
                self.removed_files.append(f.state.old_id)

    def commit(self) -> None:
        if not self.files and not self.removed_files:
            return
        index, catalog = self.index, self.index.catalog
        vectors = index.vectors
        removed_ids = np.array(catalog.chunk_ids_of_files(self.removed_files), dtype=np.int64)
        new_ids = np.concatenate([ids for _, ids in self.files]) if self.files else np.zeros(0, np.int64)

        def record_in_catalog() -> None:
            catalog.remove_files(self.removed_files)
            for f, ids in self.files:
                file_row = {"path": str(f.state.path), "sha256": f.state.sha256, "size": f.state.size,
                            "mtime": f.state.mtime, "reader": f.reader,
                            "found_as": f.state.found_as or str(f.state.path)}
                it = iter(ids.tolist())
                docs = [(d, [{**c, "id": next(it)} for c in chunks]) for d, chunks in zip(f.documents, f.chunks)]
                catalog.add_file(file_row, docs)

        try:
            vectors.remove(removed_ids)
            if len(new_ids):
                vectors.add(new_ids, np.concatenate(self.vectors))
        except BaseException:
            index.forget_vectors()  # the in-memory copy is half-changed
            raise
        index.publish(vectors, record_in_catalog, {"next_chunk_id": self.next_id})
        s = self.summary
        s.merges += index.merge()  # after every commit, so a long ingest never piles segments up
        s.chunks_added += len(new_ids)
        s.chunks_removed += len(removed_ids)
        for f, _ in self.files:
            if f.state.old_id is None:
                s.files_added += 1
            else:
                s.files_updated += 1
            s.problems += f.problems
        self.files, self.vectors, self.removed_files = [], [], []
        self.started = time.time()
