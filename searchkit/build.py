"""Making an index folder: a new catalog, made whole before it appears, and `--rebuild`,
which builds a whole new index beside the old one and swaps the two."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import SearchkitError
from .settings import IndexSettings
from .store.catalog import Catalog
from .store.folder import CATALOG_FILE, FolderLock, carry_over, exchange, remove_folder, stale_files
from .store.vectors import fsync_dir

if TYPE_CHECKING:
    from .encoder import Encoder
    from .index import Index
    from .ingest import IngestSummary


def create_catalog(folder: Path, settings: IndexSettings) -> None:
    """A new catalog holding `settings`: schema and settings are written to
    `catalog.db.new`, which is then renamed into place. So a `catalog.db` always holds its
    settings, and a crash while creating leaves no index rather than half of one."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (CATALOG_FILE + ".new")
    for path in stale_files(folder, set()):
        path.unlink(missing_ok=True)
    catalog = Catalog(tmp, create=True)
    try:
        with catalog.db.atomic():
            catalog.put_settings(settings.to_stored())
    except BaseException:
        catalog.close()
        tmp.unlink(missing_ok=True)
        raise
    catalog.close()  # the last connection: SQLite checkpoints the WAL into the file
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, folder / CATALOG_FILE)
    fsync_dir(folder)


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


def rebuild(index: Index, paths: Sequence[str | Path], ingest_args: dict,
            encoder: Encoder | None) -> tuple[IngestSummary, Encoder | None]:
    """`index.ingest(paths, rebuild=True)`: a new index of the same class, built with
    `index`'s options (`IndexOptions.for_rebuild`: without a model given, the stored model,
    pooling and layer) and `encoder` if one is loaded, then swapped in. Returns its summary
    and the encoder it used."""
    with FolderLock(index.folder, "ingest --rebuild"):  # not a writer's: the catalog may be unreadable
        try:
            stored = index.settings
        except SearchkitError:
            stored = IndexSettings()  # an unreadable catalog: rebuilding is the way out of it
        own = index.options.model is None and encoder is None
        options = index.options.for_rebuild(stored, own, index.folder.resolve(), numbering(stored))

        def build(staging: Path):
            fresh = type(index)(staging, encoder=encoder, options=options)
            try:
                return fresh.ingest(paths, **ingest_args), fresh.encoder
            finally:
                fresh.close()

        index.close()
        return swap_in(index.folder, build)
