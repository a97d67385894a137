"""Content hashes of files: what tells a changed document, a changed model or a damaged
vectors file from an unchanged one."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable


def sha256_files(paths: Iterable[str | os.PathLike]) -> str:
    """One SHA-256 hex digest over the bytes of `paths`, in order, read in 4 MiB blocks."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as fh:
            while block := fh.read(1 << 22):
                digest.update(block)
    return digest.hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """The SHA-256 hex digest of one file."""
    return sha256_files([path])


def chunk_hash(text: str) -> str:
    """The digest that names a chunk's text: two chunks with the same one embed alike, so
    an ingest takes the vector it already has instead of embedding the text again."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
