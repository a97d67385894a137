"""A new index folder's catalog, made whole before it appears."""

from __future__ import annotations

import os
from pathlib import Path

from .catalog import Catalog
from .folder import CATALOG_FILE, stale_files
from .vectors import fsync_dir


def create_catalog(folder: Path, settings: dict) -> None:
    """A new catalog holding `settings` (`IndexSettings.to_stored()`): schema and settings are written to
    `catalog.db.new`, which is then renamed into place. So a `catalog.db` always holds its
    settings, and a crash while creating leaves no index rather than half of one."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / (CATALOG_FILE + ".new")
    for path in stale_files(folder, set()):
        path.unlink(missing_ok=True)
    catalog = Catalog(tmp, create=True)
    try:
        with catalog.db.atomic():
            catalog.put_settings(settings)
    except BaseException:
        catalog.close()
        tmp.unlink(missing_ok=True)
        raise
    catalog.close()  # the last connection: SQLite checkpoints the WAL into the file
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, folder / CATALOG_FILE)
    fsync_dir(folder)
