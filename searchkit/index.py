"""`Index`: one folder holding a SQLite catalog and FAISS vector segments, kept in step.

Crash safety: each commit writes its new segment file (atomic write) *before* the SQLite
transaction that lists it commits (store/commit.py). A crash before the commit leaves the
catalog naming the previous, intact segments; a crash after it, the new ones. Opening
always loads the segments the catalog names.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .encoder import Encoder
from .errors import (
    BadInput,
    IndexCorrupt,
    IndexNotFound,
    ModelMismatch,
    SearchkitError,
    bad_value,
)
from .filters import compile_where
from .ingest import MAX_FILE_BYTES, PreparedFile, content_reason, embed, prepare, scan, under
from .readers import printable
from .retrieval import check_mode, fts_query, hybrid_depth, rrf
from .store.catalog import Catalog
from .store.commit import FORMAT_VERSION, commit, segment_rows
from .store.folder import (
    CATALOG_FILE,
    FolderLock,
    carry_over,
    exchange,
    folder_error,
    is_index_file,
    remove_folder,
    stale_files,
)
from .store.segments import Segments, plan_merges
from .store.vectors import KINDS, check_params, fsync_dir
from .writer import Writer

# Settings that must match for vectors to be comparable; dtype may differ (cosine > 0.999).
# "chunks": token windows of chunk_tokens; "whole": one chunk per document, which the
# encoder truncates at its maximum length (how sentence-transformers' BEIR figures embed).
CHUNKINGS = ("chunks", "whole")
INDEX_TYPES = ("auto", *KINDS)  # --index-type; see searchkit/store/vectors.py
ENCODER_KEYS = ("model_type", "weights_sha256", "dim", "pooling", "normalize", "layer", "max_length")


@dataclass(frozen=True)
class Hit:
    """One search result; `text == document_text[start:end]`.

    `score` depends on the search mode: the cosine similarity (dense), the BM25 score
    (lexical; higher is better, not bounded) or the reciprocal-rank-fusion score (hybrid:
    the sum over the dense and lexical lists of 1 / (60 + rank)).
    """

    rank: int
    score: float
    path: str
    chunk_id: int
    text: str
    start: int
    end: int
    document: str = ""  # record key inside the file ('' for whole-file documents)
    title: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class IngestSummary:
    files_seen: int = 0
    files_added: int = 0
    files_updated: int = 0
    files_removed: int = 0
    files_skipped: int = 0
    files_unchanged: int = 0
    chunks_added: int = 0
    chunks_removed: int = 0
    merges: int = 0  # segment merges after its commits (store/segments.py)
    seconds: float = 0.0
    skipped: list[dict] = field(default_factory=list)  # {path, reason}
    problems: list[str] = field(default_factory=list)  # records skipped inside good files

    def to_dict(self) -> dict:
        return asdict(self)


# progress(bytes_done, bytes_total, chunks_done)
ProgressFn = Callable[[int, int, int], None]


MAX_K = 1_000_000  # hits per query: past that it is a typo, and SQLite's LIMIT overflows first


def _check_k(k) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise bad_value("k", k, "must be a positive integer")
    if k > MAX_K:
        raise bad_value("k", k, f"at most {MAX_K:,} hits a query")


def index_choice(settings: dict) -> str:
    """The index type chosen at creation: "auto" (flat, then hnsw past AUTO_HNSW_AT
    vectors), or a kind; indexes from before index types were flat ("flat-ip")."""
    choice = settings.get("index_choice") or settings.get("index_type") or "auto"
    return "flat" if choice == "flat-ip" else choice


class Index:
    """A searchable index in a folder.

    >>> index = Index("index/")
    >>> index.ingest(["corpus/"])
    >>> index.search("a question", k=5)[0].path
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        model: str | Path | None = None,
        device: str | None = "auto",
        dtype: str | None = "auto",
        pooling: str | None = None,
        layer: int | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        chunking: str | None = None,
        encoder: Encoder | None = None,
        index_type: str | None = None,
        index_params: dict | None = None,
    ):
        self.folder = Path(folder).expanduser()
        self._model, self._device, self._dtype = model, device, dtype
        self._pooling, self._layer = pooling, layer
        self._chunk_tokens, self._chunk_overlap = chunk_tokens, chunk_overlap
        if chunking not in (None, *CHUNKINGS):
            raise bad_value("chunking", chunking, f"expected {' or '.join(CHUNKINGS)}")
        if chunking == "whole" and (chunk_tokens is not None or chunk_overlap is not None):
            raise bad_value("chunking", chunking, "makes one chunk per document: give no chunk_tokens or chunk_overlap")
        self._chunking = chunking
        if index_type not in (None, *INDEX_TYPES):
            raise bad_value("index_type", index_type, f"expected one of {', '.join(INDEX_TYPES)}")
        self._index_type = index_type
        # Vector-index parameters (store/vectors.py DEFAULT_PARAMS): all of them for a new
        # index; on a built one only efSearch / nprobe, which also become its new defaults
        # when this Index commits.
        self._index_params = dict(index_params or {})
        self._encoder = encoder
        self._encoder_from_settings = False  # built from the stored model, not given
        self._catalog: Catalog | None = None
        self._vectors: Segments | None = None
        self._generation = -1
        self._lock = threading.RLock()
        # --rebuild: the new index goes on with the old one's generation and chunk-id
        # numbering, so a reader still holding the old catalog never takes a new file for its own.
        self._numbering: dict = {}
        self._home = self.folder.resolve()  # where it will live (--rebuild builds elsewhere)

    # -- opening ---------------------------------------------------------------------------

    @property
    def exists(self) -> bool:
        return (self.folder / CATALOG_FILE).is_file()

    def _open_catalog(self, create: bool = False) -> Catalog:
        if self._catalog is None:
            if not self.exists and not create:
                raise IndexNotFound(f"{self.folder}: no index here (run `searchkit ingest PATH --index {self.folder}`)")
            self.folder.mkdir(parents=True, exist_ok=True)
            self._catalog = Catalog(self.folder / CATALOG_FILE, create=create)
        return self._catalog

    @property
    def catalog(self) -> Catalog:
        return self._open_catalog()

    def _follow_swap(self) -> None:
        """Reopen once another process's `--rebuild` has swapped a new index into the folder:
        the open catalog is the old one's (long-lived readers: the TUI, an app)."""
        if self._catalog is not None and self._catalog.replaced():
            self.close()
            self.forget_vectors()
            if self._encoder_from_settings:
                self._encoder = None  # it may have been rebuilt with another model

    @property
    def settings(self) -> dict:
        return self.catalog.settings()

    @property
    def vectors(self) -> Segments:
        """The vectors of the catalog's current generation (reloaded when it moves on)."""
        with self._lock:
            generation = self.catalog.generation
            while self._vectors is None or generation != self._generation:
                try:
                    self._vectors = self.load_vectors(previous=self._vectors)
                    self._generation = self._vectors.generation
                except IndexCorrupt:
                    # A writer may have committed a newer generation and deleted a merged
                    # segment between our two reads: then load that one. Else it is real.
                    newer = self.catalog.generation
                    if newer == generation:
                        raise
                generation = self.catalog.generation
            return self._vectors

    def forget_vectors(self) -> None:
        """Drop the vectors held in memory (changed but not committed, or superseded): the
        next use reloads the committed generation."""
        self._vectors, self._generation = None, -1

    def _params(self, settings: dict) -> dict:
        """The stored index parameters with this Index's overrides, checked."""
        stored = settings.get("index_params") or {}
        return {**stored, **check_params(index_choice(settings), self._index_params, stored)}

    def load_vectors(self, check_sha256: bool = True, previous: Segments | None = None,
                     broken: list | None = None) -> Segments:
        """The committed segments, read from their files (`check_sha256`: refuse a file whose
        digest is not the one its commit recorded; `verify` reads them regardless). Segments
        already loaded in `previous` are reused (segment files never change). `broken`: see
        `Segments.open`."""
        settings, rows, dead = self.catalog.snapshot()
        if int(settings.get("format", 1)) > FORMAT_VERSION:
            raise IndexCorrupt(f"{self.folder}: written in format {settings['format']} by a newer searchkit; "
                               f"this one reads formats 1 to {FORMAT_VERSION}")
        dim = int(settings.get("dim") or self.encoder.dim)
        segments = Segments.open(self.folder, segment_rows(settings, rows), dead, dim, index_choice(settings),
                                 self._params(settings), previous=previous, check_sha256=check_sha256,
                                 broken=broken)
        segments.generation = int(settings.get("generation") or 0)
        return segments

    @property
    def encoder(self) -> Encoder:
        """The encoder for this index: the one it was built with, checked by weight hash."""
        if self._encoder is None:
            stored = self.settings if self.exists else {}
            self._encoder_from_settings = self._model is None
            model = self._model or stored.get("model")
            self._encoder = Encoder(
                model,
                device=self._device,
                dtype=self._dtype,
                pooling=self._pooling or stored.get("pooling"),
                layer=self._layer if self._layer is not None else stored.get("layer"),
                normalize=stored.get("normalize", True),
            )
        if self.exists:
            self.check_encoder(self._encoder)
        return self._encoder

    def check_encoder(self, encoder: Encoder) -> None:
        stored = self.settings
        if "weights_sha256" not in stored:
            return  # created but nothing committed yet
        mine = encoder.settings()
        diffs = [k for k in ENCODER_KEYS if stored.get(k) != mine.get(k)]
        if diffs:
            def show(value):
                return f"{value[:12]}…" if isinstance(value, str) and len(value) == 64 else repr(value)

            detail = ", ".join(f"{k} {show(stored.get(k))} vs {show(mine.get(k))}" for k in diffs)
            raise ModelMismatch(
                f"{self.folder}: built with model {stored.get('model')}, not {mine.get('model')} ({detail}); "
                "use the same model and settings, or rebuild the index with this one (--rebuild; rebuild=True in Python)"
            )

    # -- searching --------------------------------------------------------------------------

    def search(self, query: str, k: int = 10, *, mode: str = "dense", where=None) -> list[Hit]:
        """The k chunks that best answer `query`, best first.

        `mode`: "dense" (embedding cosine; `Hit.score` is the cosine), "lexical" (BM25 over
        the chunk text with SQLite FTS5; the score is BM25's, higher is better) or "hybrid"
        (both lists fused by reciprocal rank; the score is the fused RRF score).
        `where`: metadata filters, ANDed (syntax in `searchkit.filters`), applied before
        ranking, so k hits come back whenever k chunks match.

        >>> index.search("how do I open a file", k=3)
        [Hit(rank=1, score=0.61, path='/.../inputoutput.txt', ...), ...]
        >>> index.search("open a file", k=3, mode="hybrid", where=["path:*.txt", "mtime>2024-01-01"])
        """
        if not isinstance(query, str):
            raise bad_value("query", query, "expected a string (search_many takes a list of queries)")
        return self.search_many([query], k, mode=mode, where=where)[0]

    def search_many(self, queries: Sequence[str], k: int = 10, *, mode: str = "dense", where=None) -> list[list[Hit]]:
        """`search` for many queries at once (their vectors embedded in one batch).

        >>> [hits[0].path for hits in index.search_many(["open a file", "loop"], k=1)]
        """
        _check_k(k)
        check_mode(mode)
        if isinstance(queries, str):
            queries = [queries]
        queries = list(queries)
        for n, query in enumerate(queries, 1):
            if not isinstance(query, str):
                raise bad_value("queries", queries, f"query {n} is a {type(query).__name__}, not a string")
            if not query.strip():
                raise BadInput("empty query" if len(queries) == 1 else f"query {n} is empty")
        if not queries:
            return []
        flt = compile_where(where)
        with self._lock:
            self._follow_swap()
        vectors = self.encoder.encode(queries, what="query") if mode != "lexical" else None
        depth = hybrid_depth(k) if mode == "hybrid" else int(k)
        with self._lock:
            allowed = self._allowed(flt)
            if allowed is not None and not len(allowed):
                return [[] for _ in queries]
            dense = self._dense(vectors, depth, allowed) if vectors is not None else None
            lexical = [self._lexical(q, depth, flt) for q in queries] if mode != "dense" else None
            if mode == "dense":
                ranked = dense
            elif mode == "lexical":
                ranked = lexical
            else:
                ranked = [rrf([d, lx], int(k)) for d, lx in zip(dense, lexical)]
            return self._hits(ranked)

    def search_vectors(self, queries: np.ndarray, k: int = 10, *, where=None) -> list[list[Hit]]:
        """Dense hits for query vectors already embedded, (n, dim) -> n lists."""
        _check_k(k)
        flt = compile_where(where)
        queries = np.atleast_2d(queries)
        with self._lock:
            self._follow_swap()
            allowed = self._allowed(flt)
            if allowed is not None and not len(allowed):
                return [[] for _ in queries]
            return self._hits(self._dense(queries, int(k), allowed))

    def _allowed(self, flt) -> np.ndarray | None:
        """The chunk ids a filter lets through (None: no filter)."""
        if not flt:
            return None
        return np.array(self.catalog.chunk_ids_where((flt.sql, flt.params)), dtype=np.int64)

    def _dense(self, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> list[list[tuple[int, float]]]:
        vectors = self.vectors
        scores, ids = vectors.search(queries, k, ids=allowed)
        self._check_scores(vectors, queries, scores, ids)
        return [[(int(i), float(s)) for s, i in zip(srow, irow) if i >= 0] for srow, irow in zip(scores, ids)]

    def _check_scores(self, vectors: Segments, queries: np.ndarray, scores: np.ndarray, ids: np.ndarray) -> None:
        """Stored vectors are unit length, so no score can pass the query's norm: one that
        does (or a NaN) means the vectors in memory are not what was written."""
        if not self.settings.get("normalize", True):
            return
        slack = 0.5 if "ivfpq" in vectors.kinds else 1e-3  # PQ codes approximate
        bound = np.linalg.norm(np.atleast_2d(queries), axis=1, keepdims=True) * (1 + slack) + 1e-3
        real = ids >= 0
        bad = real & ~(np.abs(scores) <= bound)  # NaN fails the comparison too
        if bad.any():
            value = float(scores[bad][0])
            raise IndexCorrupt(f"{self.folder}: the vectors gave a score of {value:.3g}, impossible for unit "
                               f"vectors: the vectors file is damaged; `searchkit verify --repair` re-embeds it")

    def _lexical(self, query: str, k: int, flt) -> list[tuple[int, float]]:
        match = fts_query(query)
        if match is None:
            return []  # no words (only punctuation): nothing for BM25 to match
        return self.catalog.lexical(match, k, (flt.sql, flt.params) if flt else None)

    def _hits(self, ranked: list[list[tuple[int, float]]]) -> list[list[Hit]]:
        rows = self.catalog.chunks({i for lst in ranked for i, _ in lst})
        results = []
        for lst in ranked:
            hits: list[Hit] = []
            for chunk_id, score in lst:
                row = rows.get(chunk_id)
                if row is None:
                    continue  # a chunk deleted since the vectors were loaded
                hits.append(
                    Hit(len(hits) + 1, float(score), row.path, row.chunk_id, row.text, row.start, row.end, row.key, row.title)
                )
            results.append(hits)
        return results

    # -- committing a generation ---------------------------------------------------------

    def publish(self, vectors: Segments, catalog_changes: Callable[[], None], settings: dict) -> int:
        """Commit the pending changes of `vectors` as the next generation: its additions as
        one new segment file, its removals as dead ids, with `catalog_changes()` and
        `settings` in the same SQLite transaction (store/commit.py). The caller holds the
        write lock. Returns the new generation."""
        catalog = self.catalog
        written = vectors.to_write()

        def changes() -> None:
            catalog_changes()
            catalog.add_dead(vectors.dead_pairs())

        try:
            generation, row = commit(self.folder, catalog, vectors, written, changes, settings)
        except BaseException:
            self.forget_vectors()
            raise
        vectors.committed(row, written)
        vectors.generation = self._generation = generation
        self._vectors = vectors
        return generation

    def merge(self, everything: bool = False) -> int:
        """Merge segments as `plan_merges` says (all into one with `everything`: `searchkit
        optimize`), dropping dead vectors; each merge is one commit, and the merged files go
        after it. The caller holds the write lock. Returns the number of merges."""
        done = 0
        while True:
            vectors = self.vectors
            live = {s: vectors.live_count(s) for s in vectors.loaded}
            held = {s: int(v.index.ntotal) for s, v in vectors.loaded.items()}
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
                self.forget_vectors()
                raise
            vectors.merge_committed(group, row, written)
            vectors.generation = self._generation = generation
            for name in names:
                (self.folder / name).unlink(missing_ok=True)
            done += 1
            if everything:
                return done

    def optimize(self) -> dict:
        """Merge every segment into one, without the dead vectors (`searchkit optimize`).

        >>> index.optimize()["segments"]
        1
        """
        started = time.time()
        with self._write_lock():
            before = self.vectors
            segments_before, held = len(before.loaded), sum(int(v.index.ntotal) for v in before.loaded.values())
            self._remove_stale_files()
            self.merge(everything=True)
            after = self.vectors
        return {"segments_before": segments_before, "segments": len(after.loaded), "vectors": after.count,
                "dead_dropped": held - sum(int(v.index.ntotal) for v in after.loaded.values()),
                "seconds": round(time.time() - started, 3)}

    # -- ingesting ---------------------------------------------------------------------------

    def ingest(
        self,
        paths: Sequence[str | Path],
        *,
        progress: ProgressFn | None = None,
        rebuild: bool = False,
        prune: bool = False,
        commit_seconds: float = 60.0,
        commit_chunks: int = 20000,
        embed_chunks: int = 512,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> IngestSummary:
        """Bring the index in step with the files under `paths`: embed new and changed
        files, drop the chunks of files that are gone (or now empty, binary or too large),
        leave the rest untouched. A path that no longer exists but has files in the index
        drops them (a folder moved away); `prune=True` also drops every indexed file that
        is gone from disk, wherever it was, and then `paths` may be empty.

        A generation is committed (vectors file, then one SQLite transaction) at least every
        `commit_chunks` chunks or `commit_seconds` seconds, and at the end; a crash loses at
        most the work since the last commit. Small values are a tuning and testing knob
        (`searchkit ingest --commit-chunks N`): each commit rewrites the vectors file.

        >>> index.ingest(["docsB"], prune=True).files_removed  # docsA was renamed docsB
        """
        if isinstance(paths, (str, Path)):
            paths = [paths]
        paths = list(paths)
        if not paths and not prune:
            raise BadInput("nothing to ingest: give at least one file or folder")
        self._check_paths(paths)  # before anything is loaded or written
        new_folder = not os.path.lexists(self.folder)
        try:
            return self._ingest(paths, progress, rebuild, prune, commit_seconds, commit_chunks,
                                max(1, min(embed_chunks, commit_chunks)), max_file_bytes)
        except OSError as exc:  # writing the folder (reading files is ingest.prepare's to skip)
            raise folder_error(self.folder, exc) from None
        finally:
            if new_folder and not self.exists:  # refused (a bad value) or failed before a catalog
                remove_folder(self.folder)

    def _ingest(self, paths, progress, rebuild, prune, commit_seconds, commit_chunks, embed_chunks,
                max_file_bytes) -> IngestSummary:
        started = time.time()  # embed_chunks ≤ commit_chunks: commits happen between batches
        with self._write_lock():
            if rebuild and self.exists:
                return self._rebuild(paths, progress=progress, commit_seconds=commit_seconds,
                                     commit_chunks=commit_chunks, embed_chunks=embed_chunks,
                                     max_file_bytes=max_file_bytes)
            encoder = self.encoder  # loads the model, raises ModelMismatch: before any write
            if not self.exists:
                self._create_catalog(encoder)
            catalog = self.catalog
            settings = self._ensure_settings(encoder)
            self._remove_stale_files()
            found = scan(paths, catalog.files(), max_bytes=max_file_bytes, ignore=self._is_own_file,
                         prune=prune)
            summary = IngestSummary(
                files_seen=found.seen,
                files_unchanged=found.unchanged,
                skipped=[{"path": p, "reason": r} for p, r in found.skipped],
            )
            if found.touched:
                with catalog.write():
                    catalog.touch_files([(s.old_id, s.size, s.mtime, s.found_as) for s in found.touched])
            writer = Writer(self, settings, summary)
            writer.remove([row["id"] for row in found.removed])
            summary.files_removed = len(found.removed)
            todo = found.new + found.changed
            total_bytes = sum(s.size for s in todo)
            done_bytes = 0
            batch: list[PreparedFile] = []
            for state in todo:
                prepared, skipped = prepare([state], encoder.tokenizer, settings["chunk_tokens"],
                                            settings["chunk_overlap"], max_file_bytes)
                summary.skipped += [{"path": p, "reason": r} for p, r in skipped]
                if state.old_id is not None and any(content_reason(r) for _, r in skipped):
                    writer.remove([state.old_id])  # changed into something that is not text
                    summary.files_removed += 1
                batch += prepared
                done_bytes += state.size
                if sum(f.chunk_count for f in batch) >= embed_chunks:
                    writer.add(batch, embed(batch, encoder.encode))
                    batch = []
                    if progress:
                        progress(done_bytes, total_bytes, summary.chunks_added + writer.pending_chunks)
                    if writer.pending_chunks >= commit_chunks or writer.age > commit_seconds:
                        writer.commit()
            if batch:
                writer.add(batch, embed(batch, encoder.encode))
            writer.commit()
            if progress:
                progress(total_bytes, total_bytes, summary.chunks_added)
            summary.files_skipped = len(summary.skipped)
            summary.seconds = round(time.time() - started, 3)
            with catalog.write():
                catalog.add_run(started, summary.to_dict())
        return summary

    def _check_paths(self, paths: Sequence[str | Path]) -> None:
        """Every path exists, or is gone but has files in this index (they will be dropped)."""
        for path in paths:
            path = Path(os.path.abspath(Path(path).expanduser()))
            if os.path.lexists(path):
                continue
            known = self.catalog.files() if self.exists else {}
            if not any(under(row["path"], [path]) or under(row.get("found_as"), [path]) for row in known.values()):
                raise BadInput(f"{printable(path)}: no such file or directory")

    def _ensure_settings(self, encoder: Encoder) -> dict:
        catalog = self.catalog
        stored = catalog.settings()
        if "weights_sha256" in stored:
            # What a built index was made with stays; asking for something else is an error,
            # never silently ignored (the same value is fine).
            built = {"chunking": stored.get("chunking", "chunks"), "index_type": index_choice(stored),
                     "chunk_tokens": stored.get("chunk_tokens"), "chunk_overlap": stored.get("chunk_overlap")}
            asked = {"chunking": self._chunking, "index_type": self._index_type,
                     "chunk_tokens": self._chunk_tokens, "chunk_overlap": self._chunk_overlap}
            for name, value in asked.items():
                if value is not None and value != built[name]:
                    raise bad_value(name, value, f"{self.folder} was built with {built[name]!r}; "
                                                 "rebuilding the index changes it (--rebuild; rebuild=True in Python)")
            self._params(stored)  # refuse build-time changes before any work
            return stored
        if self._chunking == "whole":
            return self._put_new_settings(encoder, {"chunking": "whole", "chunk_tokens": None, "chunk_overlap": None})
        most = encoder.max_content_tokens
        tokens = self._chunk_tokens if self._chunk_tokens is not None else min(most, 510)
        if isinstance(tokens, bool) or not isinstance(tokens, int) or not 8 <= tokens <= most:
            raise bad_value("chunk_tokens", tokens, f"must be a whole number from 8 to {most} for this model")
        overlap = self._chunk_overlap if self._chunk_overlap is not None else tokens // 8
        if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < tokens // 2:
            raise bad_value("chunk_overlap", overlap, f"must be a whole number from 0 to {tokens // 2 - 1}")
        return self._put_new_settings(encoder, {"chunking": "chunks", "chunk_tokens": tokens, "chunk_overlap": overlap})

    def _put_new_settings(self, encoder: Encoder, chunking: dict) -> dict:
        catalog = self.catalog
        settings = {
            **encoder.settings(),
            **chunking,
            **self._new_vectors(encoder.dim).settings,
            "format": FORMAT_VERSION,
            "searchkit_version": __version__,
            "created_at": time.time(),
            "generation": 0,
            "next_chunk_id": 1,
            **self._numbering,
        }
        with catalog.db.atomic():
            catalog.put_settings(settings)
        return settings

    def _new_vectors(self, dim: int) -> Segments:
        choice = self._index_type or "auto"
        return Segments(dim, choice, check_params(choice, self._index_params))

    def _create_catalog(self, encoder: Encoder) -> None:
        """A new catalog, made whole before it appears: schema and settings are written to
        `catalog.db.new`, which is then renamed into place. So a `catalog.db` always holds
        its settings, and a crash while creating leaves no index rather than half of one."""
        tmp = self.folder / (CATALOG_FILE + ".new")
        for path in stale_files(self.folder, set()):
            path.unlink(missing_ok=True)
        self._catalog = Catalog(tmp, create=True)
        try:
            self._ensure_settings(encoder)  # validates the chunking options, writes the settings
        except BaseException:
            self.close()
            tmp.unlink(missing_ok=True)
            raise
        self.close()  # the last connection: SQLite checkpoints the WAL into the file
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, self.folder / CATALOG_FILE)
        fsync_dir(self.folder)

    def _is_own_file(self, path: Path) -> bool:
        """A file this index wrote (its folder may lie inside the folders it indexes)."""
        return is_index_file(path.name) and path.parent in (self.folder.resolve(), self._home)

    def _write_lock(self):
        return FolderLock(self.folder)

    def _staging_folder(self) -> Path:
        """Where --rebuild builds the new index: a hidden sibling of the index folder."""
        folder = self.folder.resolve()
        return folder.with_name(f".{folder.name}.rebuild")

    def _rebuild(self, paths: Sequence[str | Path], **options) -> IngestSummary:
        """--rebuild (the caller holds the write lock): build a whole new index in a sibling
        folder, then swap the two folders in one atomic rename and delete the old one. A crash
        at any moment before the swap leaves the old index exactly as it was (the next write
        removes the half-built sibling); other files in the folder (a README) are carried over.
        Without --model it is rebuilt with the index's own model, pooling and layer."""
        try:
            stored = self.settings
        except SearchkitError:
            stored = {}  # an unreadable catalog: rebuilding is the way out of it
        own = self._model is None and self._encoder is None
        staging = self._staging_folder()
        remove_folder(staging)
        fresh = Index(
            staging,
            model=stored.get("model") if own else self._model,
            device=self._device,
            dtype=self._dtype,
            pooling=self._pooling or (stored.get("pooling") if own else None),
            layer=self._layer if self._layer is not None or not own else stored.get("layer"),
            chunk_tokens=self._chunk_tokens,
            chunk_overlap=self._chunk_overlap,
            chunking=self._chunking,
            encoder=self._encoder,
            index_type=self._index_type or index_choice(stored),
            index_params=self._index_params,  # the defaults, but for those given now
        )
        fresh._home = self.folder.resolve()
        fresh._numbering = {"generation": int(stored.get("generation") or 0),
                            "next_chunk_id": int(stored.get("next_chunk_id") or 1),
                            "next_segment_id": int(stored.get("next_segment_id") or 1)}
        try:
            summary = fresh.ingest(paths, **options)
            fresh.close()
            self.close()
            carry_over(self.folder, staging)
            exchange(staging, self.folder.resolve())
        finally:
            fresh.close()
            remove_folder(staging)  # the old index once swapped, else the unfinished new one
        self._encoder = fresh._encoder
        self.forget_vectors()
        return summary

    def _remove_stale_files(self) -> None:
        """Leftovers of a crash (the writer holds the lock): segment and vectors files no
        commit lists, a catalog being created, an unfinished --rebuild."""
        settings, rows, _ = self.catalog.snapshot()
        keep = {row.name for row in segment_rows(settings, rows)}
        for path in stale_files(self.folder, keep):
            path.unlink(missing_ok=True)
        remove_folder(self._staging_folder())

    # -- facts ------------------------------------------------------------------------------

    def info(self) -> dict:
        """What the index holds and how it was built."""
        self._follow_swap()
        catalog = self.catalog
        return {
            "index": str(self.folder),
            "settings": catalog.settings(),
            **catalog.counts(),
            "vectors": self.vectors.count,
            "segments": len(self.vectors.loaded),
            "segments_mapped": sum(v.mapped for v in self.vectors.loaded.values()),
            "searches_on": self.vectors.placement,
            "last_run": catalog.last_run(),
        }

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None


def open_index(folder: str | Path = "index", **kwargs) -> Index:
    """Open (or prepare to create) the index in `folder`.

    >>> index = searchkit.open_index("index/")
    >>> index.ingest(["corpus/"]); index.search("a question", k=10)
    """
    return Index(folder, **kwargs)
