"""`--rebuild`'s folder work: a whole new index is built in a sibling folder (`staging_folder`),
going on from the old one's numbering (`numbering`), and swapped in (`swap_in`).
`Index._rebuild` (index.py) drives it; a new catalog is store/create.py's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .settings import IndexSettings
from .store.folder import carry_over, exchange, remove_folder


def staging_folder(folder: Path) -> Path:
    """Where --rebuild builds the new index: a hidden sibling of the index folder."""
    folder = folder.resolve()
    return folder.with_name(f".{folder.name}.rebuild")


def numbering(stored: IndexSettings) -> dict:
    """What a rebuilt index goes on from: the old one's generation and chunk and segment
    numbering, so a reader still holding the old catalog never takes a new file or chunk
    for one of its own."""
    return {"generation": stored.generation, "next_chunk_id": stored.next_chunk_id,
            "next_segment_id": stored.next_segment_id}


def swap_in(folder: Path, build: Callable[[Path], object]) -> object:
    """--rebuild (the caller holds `folder`'s write lock): `build(staging)` makes a whole
    new index in a sibling folder, closing it when done; then the two folders are swapped
    in one atomic rename and the old one is deleted. A crash at any moment before the swap
    leaves the old index exactly as it was (the next writer removes the half-built
    sibling); other files in the folder (a README) are carried over. Returns what `build`
    returned."""
    staging = staging_folder(folder)
    remove_folder(staging)
    try:
        result = build(staging)
        carry_over(folder, staging)
        exchange(staging, folder.resolve())
    finally:
        remove_folder(staging)  # the old index once swapped, else the unfinished new one
    return result
