"""`IndexWriter`: the one way an index folder is changed.

It holds the folder's write lock for as long as it is open, sweeps what a crashed writer
left, hands out chunk ids, takes additions and removals (of files, or of bare vectors for
`verify --repair`), and commits them a generation at a time: a new segment file, durable
first, then one SQLite transaction (store/commit.py). After each commit it merges
segments as the merge policy asks (store/segments.py `plan_merges`).

>>> with index.writer() as writer:
...     writer.remove_files([3])
...     writer.add_files(prepared, vectors)
...     writer.commit().chunks_added
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .ingest_records import CommitCounts, PreparedFile, StagedFile
from .settings import IndexSettings
from .store.catalog import Catalog
from .store.commit import commit, crash_point, segment_rows
from .store.create import create_catalog
from .store.folder import CATALOG_FILE, FolderLock, remove_folder, stale_files
from .store.segments import Segments, plan_merges
from .store.staging import Staging

# load(broken) -> the committed segments (Index.load_vectors, which knows the parameters);
# given a list, segments that cannot be read are left out and listed there (repair)
LoadFn = Callable[[list | None], Segments]


class IndexWriter:
    """Pending changes to an index folder, committed one generation at a time.

    `catalog()` opens the folder's catalog; `new`: the settings to create it with when
    there is none yet (created under the lock, whole or not at all: store/create.py). `load`
    reads the committed segments; `keep_broken`: leave out segments that cannot be read,
    listed in `broken` (`verify --repair` drops them). `staging`: the sibling folder an
    unfinished `--rebuild` may have left, swept too.
    """

    def __init__(self, folder: Path, catalog: Callable[[], Catalog], load: LoadFn, *,
                 new: IndexSettings | None = None, staging: Path | None = None, keep_broken: bool = False,
                 purpose: str = "ingest"):
        self.folder, self._open_catalog, self._load, self._new = folder, catalog, load, new
        self._staging = staging
        self.broken: list | None = [] if keep_broken else None
        self._lock = FolderLock(folder, purpose)  # named to a second writer: "searchkit optimize (pid N)"
        self.catalog: Catalog | None = None
        self.vectors: Segments | None = None
        self.next_id = self._stored_next_id = 1
        self._files: list[tuple[PreparedFile | StagedFile, np.ndarray]] = []
        self._removed_files: list[int] = []
        self._dropped_segments: list[int] = []
        self.started = time.time()
        self.bytes_written = 0  # segment files written by this writer, merges included
        self.stages = 0  # staging transactions (ingest_stream.py)

    # -- the lock -----------------------------------------------------------------------------

    def __enter__(self) -> IndexWriter:
        self._lock.__enter__()
        try:
            if self._new is not None and not (self.folder / CATALOG_FILE).is_file():
                create_catalog(self.folder, self._new.to_stored())
            self.catalog = self._open_catalog()
            self.staging = Staging(self.catalog)
            self.sweep()
            self.vectors = self._load(self.broken)
            self.next_id = self._stored_next_id = self.settings().next_chunk_id
        except BaseException:
            self._lock.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc) -> None:
        self._lock.__exit__(*exc)

    def settings(self) -> IndexSettings:
        return IndexSettings.from_stored(self.catalog.settings(), self.folder)

    def sweep(self) -> None:
        """Leftovers of a crash: segment and vectors files no commit lists, a catalog being
        created, an unfinished --rebuild."""
        settings, rows, _ = self.catalog.snapshot()
        keep = {row.name for row in segment_rows(settings, rows)}
        for path in stale_files(self.folder, keep):
            path.unlink(missing_ok=True)
        if self._staging is not None:
            remove_folder(self._staging)

    # -- changes ------------------------------------------------------------------------------

    @property
    def pending_chunks(self) -> int:
        return sum(len(ids) for _, ids in self._files)

    @property
    def age(self) -> float:
        """Seconds since the last commit (or since opening)."""
        return time.time() - self.started

    def allocate(self, n: int) -> np.ndarray:
        """`n` new chunk ids; ids are never reused, so a reader holding an older generation
        never takes a new chunk for one it knew."""
        ids = np.arange(self.next_id, self.next_id + n, dtype=np.int64)
        self.next_id += n
        return ids

    def remove_files(self, file_ids: list[int]) -> None:
        """Drop these files (catalog ids) and their chunks' vectors at the next commit."""
        self._removed_files += file_ids

    def add_files(self, files: list[PreparedFile], vectors: np.ndarray) -> None:
        """Add prepared files, `vectors` holding their chunks' in order; a file that replaces
        an older version of itself drops that one."""
        offset = 0
        for f in files:
            ids = self.allocate(f.chunk_count)
            self._files.append((f, ids))
            self.vectors.add(ids, vectors[offset : offset + len(ids)])
            offset += len(ids)
            if f.state.old_id is not None:
                self._removed_files.append(f.state.old_id)

    @property
    def dim(self) -> int:
        return self.vectors.dim

    def stage(self, write: Callable[[], object]):
        """Run `write` (changes to the staging tables, store/staging.py) as a transaction of
        its own: durable at once, and invisible to searches."""
        with self.catalog.write():
            done = write()
        self.stages += 1
        crash_point("after-stage", self.stages)  # the crash tests' kill -9 in mid-file
        return done

    def add_staged(self, staged: StagedFile) -> None:
        """Take a file staged whole (ingest_stream.py) into the next commit: its vectors
        come out of the staging tables in batches, under new chunk ids."""
        ids = self.allocate(staged.chunk_count)
        first = int(ids[0]) if len(ids) else self.next_id
        for seqs, vectors in self.staging.vectors(staged.attempt):
            self.vectors.add(first + seqs, vectors)
        self._files.append((staged, ids))
        if staged.state.old_id is not None:
            self._removed_files.append(staged.state.old_id)

    def add_vectors(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        """Vectors for chunks the catalog already holds (`verify --repair`)."""
        self.vectors.add(np.asarray(ids, dtype=np.int64), vectors)

    def remove_vectors(self, ids: np.ndarray) -> int:
        """Vectors with no chunk row (`verify --repair`); returns how many were live."""
        return self.vectors.remove(np.asarray(ids, dtype=np.int64))

    def drop_segments(self, segment_ids: list[int]) -> None:
        """Unlist segments that cannot be read (`verify --repair`) at the next commit."""
        self._dropped_segments += segment_ids

    @property
    def changed(self) -> bool:
        return bool(self._files or self._removed_files or self._dropped_segments or self.vectors.changed
                    or self.next_id != self._stored_next_id)

    # -- committing -----------------------------------------------------------------------------

    def commit(self, merge: bool = True) -> CommitCounts:
        """Make the pending changes durable as one generation, then (`merge`) merge what the
        policy asks for. Nothing pending: nothing written (a zero count)."""
        if not self.changed:
            return CommitCounts(generation=self.catalog.generation)
        catalog, vectors = self.catalog, self.vectors
        removed = np.array(catalog.chunk_ids_of_files(self._removed_files), dtype=np.int64)
        files, removed_files, dropped = self._files, self._removed_files, self._dropped_segments
        counts = CommitCounts(chunks_added=sum(len(ids) for _, ids in files), chunks_removed=len(removed))
        try:
            vectors.remove(removed)
        except BaseException:
            self._reload()
            raise

        def record() -> None:
            catalog.remove_files(removed_files)
            catalog.drop_segments(dropped)
            for f, ids in files:
                row = {"path": str(f.state.path), "sha256": f.state.sha256, "size": f.state.size,
                       "mtime": f.state.mtime, "reader": f.reader, "found_as": f.state.found_as or str(f.state.path)}
                if not isinstance(f, PreparedFile):  # staged in parts: moved over inside SQLite
                    self.staging.publish(f.attempt, row, int(ids[0]))
                    continue
                it = iter(ids.tolist())
                catalog.add_file(row, [(d, [{**c, "id": next(it)} for c in chunks])
                                       for d, chunks in zip(f.documents, f.chunks)])

        counts.generation = self._publish(record, {"next_chunk_id": self.next_id})
        for f, _ in files:
            if f.state.old_id is None:
                counts.files_added += 1
            else:
                counts.files_updated += 1
            counts.problems += f.problems
        self._files, self._removed_files, self._dropped_segments = [], [], []
        self._stored_next_id, self.started = self.next_id, time.time()
        if merge:  # after every commit, so a long ingest never piles segments up
            counts.merges = self.merge()
        return counts

    def _publish(self, catalog_changes: Callable[[], None], settings: dict) -> int:
        """The pending vectors' additions as one new segment file, their removals as dead
        ids, with `catalog_changes()` and `settings` in the same transaction."""
        catalog, vectors = self.catalog, self.vectors
        written = vectors.to_write()

        def changes() -> None:
            catalog_changes()
            catalog.add_dead(vectors.dead_pairs())

        try:
            generation, row = commit(self.folder, catalog, vectors, written, changes, settings)
        except BaseException:
            self._reload()
            raise
        vectors.committed(row, written)
        vectors.generation = generation
        self.bytes_written += row.bytes if row is not None else 0
        return generation

    def _reload(self) -> None:
        """Back to the committed state after a failed commit (the copy in memory is
        half-changed); what was pending is lost, as a crash would lose it."""
        self._files, self._removed_files, self._dropped_segments = [], [], []
        self.vectors = self._load(None)
        self.next_id = self._stored_next_id = self.settings().next_chunk_id

    def optimize(self) -> dict:
        """Every segment merged into one, without the dead vectors (`searchkit optimize`)."""
        started = time.time()
        before = self.vectors
        segments_before, held = len(before.loaded), sum(v.held for v in before.loaded.values())
        self.merge(everything=True)
        after = self.vectors
        return {"segments_before": segments_before, "segments": len(after.loaded), "vectors": after.count,
                "dead_dropped": held - sum(v.held for v in after.loaded.values()),
                "seconds": round(time.time() - started, 3)}

    def merge(self, everything: bool = False) -> int:
        """Merge segments as `plan_merges` says (all into one with `everything`: `searchkit
        optimize`), dropping dead vectors; each merge is one commit, and the merged files go
        after it. Returns the number of merges."""
        done = 0
        while True:
            vectors = self.vectors
            live = {s: vectors.live_count(s) for s in vectors.loaded}
            held = {s: v.held for s, v in vectors.loaded.items()}
            groups = plan_merges(live, held, everything) or vectors.conversions()
            if not groups:
                return done
            group = groups[0]
            written = vectors.merged(group)
            written = written if written.count else None
            names = [vectors.rows[s].name for s in group]
            try:
                generation, row = commit(self.folder, self.catalog, vectors, written,
                                         functools.partial(self.catalog.drop_segments, group), {})
            except BaseException:
                self._reload()
                raise
            vectors.merge_committed(group, row, written)
            vectors.generation = generation
            self.bytes_written += row.bytes if row is not None else 0
            for name in names:
                (self.folder / name).unlink(missing_ok=True)
            done += 1
            if everything:
                return done
