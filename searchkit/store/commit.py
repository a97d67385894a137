"""Committing one generation of an index folder, and reading the committed one back.

A generation is what one SQLite transaction records: the catalog's changes, the new
segment (if vectors were added), the ids now dead, the settings. Its segment file is
written and fsynced *before* that transaction, and files it supersedes (after a merge)
are deleted only after it: a crash at any point leaves the previous generation whole,
and the next writer sweeps what no transaction names (`folder.stale_files`).
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from .catalog import Catalog
from .folder import vectors_path
from .format import FORMAT_VERSION
from .segments import SegmentRow, Segments, segment_name
from .vectors import FaissVectors

# Fault injection for the crash tests (tests/test_crash.py), inert unless set:
# SEARCHKIT_TEST_CRASH_AT=<point> or <point>:<generation> SIGKILLs the process at that point
# of a commit; SEARCHKIT_TEST_PAUSE_AT (same values) makes it wait there, a minute unless
# SEARCHKIT_TEST_PAUSE_SECONDS says otherwise, so a test's signal lands at a known moment, or
# a reader gets time to see each generation, however fast or loaded the machine. Points:
# after-vectors-save, before-sqlite-commit, after-sqlite-commit; and after-stage:<n>, after the
# n-th staging transaction of a file ingested in parts (IndexWriter.stage).
CRASH_ENV = "SEARCHKIT_TEST_CRASH_AT"
PAUSE_ENV = "SEARCHKIT_TEST_PAUSE_AT"
PAUSE_SECONDS_ENV = "SEARCHKIT_TEST_PAUSE_SECONDS"


def crash_point(point: str, generation: int) -> None:
    here = (point, f"{point}:{generation}")
    if os.environ.get(CRASH_ENV) in here:
        os.kill(os.getpid(), signal.SIGKILL)
    if os.environ.get(PAUSE_ENV) in here:
        time.sleep(float(os.environ.get(PAUSE_SECONDS_ENV, "60")))


def segment_rows(settings: dict, rows: list[dict]) -> list[SegmentRow]:
    """The catalog's segments; an index of format 1 has none listed, and its one vectors
    file stands as segment 0 until the first commit lists it (the upgrade)."""
    if rows or int(settings.get("format", 1)) >= 2 or not int(settings.get("generation") or 0):
        return [SegmentRow(r["id"], r["name"], r["count"], r["sha256"], r["kind"], r.get("bytes") or 0) for r in rows]
    legacy = vectors_path(Path("."), int(settings["generation"])).name
    return [SegmentRow(0, legacy, 0, settings.get("vectors_sha256"), settings.get("index_type", "flat"))]


def commit(folder: Path, catalog: Catalog, segments: Segments, written: FaissVectors | None,
           changes: Callable[[], None], settings: dict) -> tuple[int, SegmentRow | None]:
    """Commit a generation: `written` (a new segment, or None) saved durably first, then one
    transaction with `changes()`, its segment row, `settings` and the next generation
    number. The caller holds the write lock. Returns (generation, the new row)."""
    stored = catalog.settings()
    generation = int(stored.get("generation") or 0) + 1
    segment_id = int(stored.get("next_segment_id") or 1)
    path = folder / segment_name(segment_id)
    row = None
    try:
        if written is not None:
            digest = written.save(path)
            row = SegmentRow(segment_id, path.name, written.held, digest, written.kind,
                             path.stat().st_size)
        crash_point("after-vectors-save", generation)
        with catalog.write():
            if int(stored.get("format", 1)) < 2:  # list format 1's vectors file: it is a segment now
                for legacy in segments.rows.values():
                    if legacy.id == 0:
                        catalog.add_segment({**dataclasses.asdict(legacy), "count": segments.loaded[0].held})
            changes()
            if row is not None:
                catalog.add_segment(dataclasses.asdict(row))
            catalog.put_settings({**settings, **segments.settings, "generation": generation, "format": FORMAT_VERSION,
                                  "next_segment_id": segment_id + (row is not None)})
            crash_point("before-sqlite-commit", generation)
    except BaseException:
        # Back to the last committed state: drop our file, unless the catalog did commit
        # it (Ctrl-C can land just after SQLite's COMMIT, on the way out of the `with`).
        try:
            if catalog.db.conn.in_transaction:
                catalog.db.conn.rollback()  # interrupted before its COMMIT ran
            committed = catalog.generation == generation
        except Exception:
            committed = True  # unknown: a stale file is harmless, a missing live one is not
        if not committed and row is not None:
            path.unlink(missing_ok=True)
        raise
    crash_point("after-sqlite-commit", generation)
    return generation, row
