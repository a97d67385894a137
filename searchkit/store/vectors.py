"""FAISS vectors under stable int64 ids (the SQLite chunk ids), saved atomically.

The index is an `IndexIDMap2` over an inner-product index: ids stay attached to their
vectors across removals (a plain Flat index would shift every id above a removed one).
"""

from __future__ import annotations

import os
from pathlib import Path

import faiss
import numpy as np

from ..errors import IndexCorrupt
from ..hashing import sha256_file


class FaissVectors:
    """A small vector-index interface over FAISS: add, remove, search, save, load, count.

    >>> vectors = FaissVectors.create(384)
    >>> vectors.add(np.array([7]), np.ones((1, 384), "float32"))
    >>> vectors.search(np.ones((1, 384), "float32"), k=1)[1]
    array([[7]])
    """

    def __init__(self, index: faiss.Index):
        self.index = index

    @classmethod
    def create(cls, dim: int) -> "FaissVectors":
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)))

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def count(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        """Every id held, as int64."""
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim or len(ids) != len(vectors):
            raise ValueError(f"add: expected {len(ids)} vectors of dim {self.dim}, got {vectors.shape}")
        if len(ids):
            self.index.add_with_ids(vectors, ids)

    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids; returns how many were present."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return 0
        return int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these ids, (n, dim)."""
        return np.stack([self.index.reconstruct(int(i)) for i in ids]) if len(ids) else np.zeros((0, self.dim), "float32")

    def search(self, queries: np.ndarray, k: int, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query; ids are -1 where fewer than k vectors exist.

        With `ids`, only those vectors are candidates (an exact search among them, however
        few: FAISS skips the others while it scans, so no hit is lost to the filter)."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if ids is None:
            k = max(1, min(int(k), max(self.count, 1)))
            return self.index.search(queries, k)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        k = max(1, min(int(k), max(len(ids), 1)))
        selector = faiss.IDSelectorBatch(ids)  # kept alive in this frame during the search
        return self.index.search(queries, k, params=faiss.SearchParameters(sel=selector))

    def save(self, path: Path) -> str:
        """Write to `path` atomically: temp file, fsync, rename, fsync the folder. Returns the
        file's sha256, for the catalog to record: `verify` then finds any later damage."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        faiss.write_index(self.index, str(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        digest = sha256_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
        return digest

    @classmethod
    def load(cls, path: Path) -> "FaissVectors":
        try:
            return cls(faiss.read_index(str(path)))
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
            raise IndexCorrupt(f"{path}: not a readable FAISS index ({first[:160]})") from None




def fsync_dir(folder: Path) -> None:
    """Make a rename inside `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
