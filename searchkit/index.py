"""`Index`: one folder holding a SQLite catalog and FAISS vector segments, kept in step.

Reading is here (open, search, info); every change goes through an `IndexWriter`
(index_writer.py), which holds the folder's write lock. Crash safety: each commit writes
its new segment file *before* the SQLite transaction that lists it (store/commit.py), so
opening always finds the segments the catalog names whole.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import __version__
from .build import numbering, staging_folder, swap_in
from .distinct import fold
from .errors import BadInput, IndexCorrupt, IndexNotFound, SearchkitError, bad_value
from .filters import compile_where
from .hits import MAX_K, Hit, check_k, check_scores, ranked, to_hits
from .index_writer import IndexWriter
from .ingest import (
    MAX_FILE_BYTES,
    STREAM_BYTES,
    IngestSummary,
    Limits,
    check_paths,
    local_pipeline,
    run,
)
from .ingest_stream import StreamStages
from .ray_ingest import RayOptions, import_ray
from .ray_ingest import connected as ray_connected
from .ray_ingest import pipeline as ray_pipeline
from .readers import printable
from .retrieval import check_mode, check_queries, fts_query, hybrid_depth, rrf
from .selection import Selection
from .settings import CHUNKINGS, IndexOptions, IndexSettings
from .store.catalog import Catalog
from .store.commit import segment_rows
from .store.folder import (
    CATALOG_FILE,
    FolderLock,
    folder_error,
    is_index_file,
    make_folder,
    remove_folder,
)
from .store.segments import Segments
from .store.vectors import INDEX_TYPES, check_params

if TYPE_CHECKING:
    from .encoder import Encoder  # torch: imported when an encoder is first needed

__all__ = ["CHUNKINGS", "INDEX_TYPES", "MAX_K", "Hit", "Index", "IngestSummary", "open_index"]


# progress(bytes_done, bytes_total, chunks_done)
ProgressFn = Callable[[int, int, int], None]


class Index:
    """A searchable index in a folder.

    >>> index = Index("index/")
    >>> index.ingest(["corpus/"])
    >>> index.search("a question", k=5)[0].path
    """

    def __init__(self, folder: str | Path, *, encoder: Encoder | None = None, options: IndexOptions | None = None,
                 **kwargs):
        """`kwargs`: the fields of `IndexOptions` (model, device, dtype, fastest_for, pooling, layer,
        query_prompt, document_prompt, dim, chunk_tokens, chunk_overlap, chunking, index_type, index_params), or `options`."""
        self.folder = Path(folder).expanduser()
        self.options = options or IndexOptions(**kwargs)
        self._encoder = encoder
        self._encoder_from_settings = False  # built from the stored model, not given
        self._catalog: Catalog | None = None
        self._vectors: Segments | None = None
        self._generation = -1
        self._settings: tuple[Catalog, int, IndexSettings] | None = None  # see `settings`
        self._lock = threading.RLock()

    # -- opening ---------------------------------------------------------------------------

    @property
    def exists(self) -> bool:
        return (self.folder / CATALOG_FILE).is_file()

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            if not self.exists:
                raise self._not_found()
            self._catalog = Catalog(self.folder / CATALOG_FILE)
        return self._catalog

    def must_exist(self) -> Index:
        """Raise `IndexNotFound` unless an index is here (`tui` asks before its UI starts)."""
        if not self.exists:
            raise self._not_found()
        return self

    def _not_found(self) -> IndexNotFound:
        return IndexNotFound(f"{self.folder}: no index here (run `searchkit ingest PATH --index {self.folder}`)")

    def _follow_swap(self) -> None:
        """Reopen once another process's `--rebuild` has swapped a new index into the folder:
        the open catalog is the old one's (long-lived readers: the TUI, an app)."""
        if self._catalog is not None and self._catalog.replaced():
            self.close()
            self.forget_vectors()
            if self._encoder_from_settings:
                self._encoder = None  # it may have been rebuilt with another model

    @property
    def settings(self) -> IndexSettings:
        """The committed settings. Every write of them commits a new generation in the same
        transaction (store/commit.py), or a new catalog file, so they are read again only
        when the generation moves on: a search asks twice, and a full read (about 0.35 ms,
        JSON rows) cost more than the index lookup of a small index."""
        catalog = self.catalog
        generation = catalog.generation
        cached = self._settings
        if cached is None or cached[0] is not catalog or cached[1] != generation:
            cached = self._settings = (catalog, generation, IndexSettings.from_stored(catalog.settings(), self.folder))
        return cached[2]

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
                    if self.catalog.generation == generation:
                        raise
                generation = self.catalog.generation
            return self._vectors

    def forget_vectors(self) -> None:
        """Drop the vectors held in memory: the next use reloads the committed generation."""
        self._vectors, self._generation = None, -1

    def _params(self, settings: IndexSettings) -> dict:
        """The stored index parameters with this Index's overrides, checked."""
        given = check_params(settings.choice, self.options.index_params, settings.index_params)
        return {**settings.index_params, **given}

    def load_vectors(self, check_sha256: bool = True, previous: Segments | None = None,
                     broken: list | None = None) -> Segments:
        """The committed segments, read from their files (`check_sha256`: refuse a file whose
        digest is not the one its commit recorded; `verify` reads them regardless). Segments
        already loaded in `previous` are reused (segment files never change). `broken`: see
        `Segments.open`."""
        stored, rows, dead = self.catalog.snapshot()
        settings = IndexSettings.from_stored(stored, self.folder)  # refuses a newer format
        segments = Segments.open(self.folder, segment_rows(stored, rows), dead, settings.dim or self.encoder.dim,
                                 settings.choice, self._params(settings), previous=previous,
                                 check_sha256=check_sha256, broken=broken)
        segments.generation = settings.generation
        return segments

    @property
    def encoder(self) -> Encoder:
        """The encoder for this index: the one it was built with, checked by weight hash."""
        if self._encoder is None:
            from .encoder_loading import (
                load_encoder,  # lazy: torch loads only when an encoder is needed
            )

            self._encoder_from_settings = self.options.model is None
            args = self.options.encoder_args(self.settings if self.exists else IndexSettings())
            self._encoder = load_encoder(args.pop("model"), **args)
        if self.exists:
            self.settings.check_encoder(self._encoder.settings(), self.folder)
        return self._encoder

    # -- searching --------------------------------------------------------------------------

    def search(self, query: str, k: int = 10, *, mode: str = "dense", where=None, distinct: bool = False) -> list[Hit]:
        """The k chunks that best answer `query`, best first.

        `mode`: "dense" (embedding cosine; `Hit.score` is the cosine), "lexical" (BM25 over
        the chunk text with SQLite FTS5; the score is BM25's, higher is better) or "hybrid"
        (both lists fused by reciprocal rank; the score is the fused RRF score).
        `where`: metadata filters, ANDed (syntax in `searchkit.filters`), applied before
        ranking, so k hits come back whenever k chunks match.
        `distinct`: one hit per text; a chunk that repeats a better hit's text (a copied file,
        a section shipped twice) goes into that hit's `copies` instead of taking a rank, and
        the search reaches further down for k distinct ones (searchkit/distinct.py).

        >>> index.search("how do I open a file", k=3)
        [Hit(rank=1, score=0.61, path='/.../inputoutput.txt', ...), ...]
        >>> index.search("open a file", k=3, mode="hybrid", where=["path:*.txt", "mtime>2024-01-01"])
        """
        if not isinstance(query, str):
            raise bad_value("query", query, "expected a string (search_many takes a list of queries)")
        return self.search_many([query], k, mode=mode, where=where, distinct=distinct)[0]

    def search_many(self, queries: Sequence[str], k: int = 10, *, mode: str = "dense", where=None,
                    distinct: bool = False) -> list[list[Hit]]:
        """`search` for many queries at once (their vectors embedded in one batch).

        >>> [hits[0].path for hits in index.search_many(["open a file", "loop"], k=1)]
        """
        check_k(k)
        check_mode(mode)
        queries = check_queries(queries)
        if not queries:
            return []
        flt = compile_where(where)
        with self._lock:
            self._follow_swap()
        vectors = self.encoder.encode_queries(queries) if mode != "lexical" else None
        return self._collect(len(queries), k, distinct, flt,
                             lambda want, allowed: self._ranked(queries, vectors, mode, want, allowed, flt))

    def _ranked(self, queries: list[str], vectors: np.ndarray | None, mode: str, want: int,
                allowed: np.ndarray | None, flt) -> list[list[tuple[int, float]]]:
        """Each query's best `want` (chunk id, score), by `mode`."""
        depth = hybrid_depth(want) if mode == "hybrid" else want
        dense = self._dense(vectors, depth, allowed) if vectors is not None else None
        lexical = [self._lexical(q, depth, flt) for q in queries] if mode != "dense" else None
        if mode == "dense":
            return dense
        if mode == "lexical":
            return lexical
        return [rrf([d, lx], want) for d, lx in zip(dense, lexical)]

    def search_vectors(self, queries: np.ndarray, k: int = 10, *, where=None, distinct: bool = False) -> list[list[Hit]]:
        """Dense hits for query vectors already embedded, (n, dim) -> n lists (`distinct`: as
        in `search`)."""
        check_k(k)
        flt = compile_where(where)
        queries = np.atleast_2d(queries)
        with self._lock:
            self._follow_swap()
        return self._collect(len(queries), k, distinct, flt, lambda want, allowed: self._dense(queries, want, allowed))

    def _collect(self, n: int, k: int, distinct: bool, flt, ranked_by: Callable) -> list[list[Hit]]:
        """The hits of `ranked_by(want, allowed)`'s lists (one per query, best first), cut to k,
        or with `distinct` folded to k distinct texts: for those, twice k ranked chunks are
        fetched, then four times more each time copies leave a query short while its list
        may hold more."""
        want = min(MAX_K, 2 * int(k)) if distinct else int(k)
        with self._lock:  # one filter read and one view of the catalog for every depth
            allowed = self._allowed(flt)
            if allowed is not None and not len(allowed):
                return [[] for _ in range(n)]
            while True:
                lists = ranked_by(want, allowed)
                hits = self._hits(lists)
                if not distinct:
                    return hits
                folded = [fold(h, int(k)) for h in hits]
                short = any(len(f) < k and len(lst) >= want for f, lst in zip(folded, lists))
                if not short or want >= MAX_K:
                    return folded
                want = min(MAX_K, 4 * want)

    def _allowed(self, flt) -> np.ndarray | None:
        """The chunk ids a filter lets through (None: no filter)."""
        if not flt:
            return None
        return np.array(self.catalog.chunk_ids_where((flt.sql, flt.params)), dtype=np.int64)

    def _dense(self, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> list[list[tuple[int, float]]]:
        vectors = self.vectors
        scores, ids = vectors.search(queries, k, ids=allowed)
        if self.settings.normalize:
            check_scores(self.folder, queries, scores, ids, approximate="ivfpq" in vectors.kinds)
        return ranked(scores, ids)

    def _lexical(self, query: str, k: int, flt) -> list[tuple[int, float]]:
        match = fts_query(query)
        if match is None:
            return []  # no words (only punctuation): nothing for BM25 to match
        return self.catalog.lexical(match, k, (flt.sql, flt.params) if flt else None)

    def _hits(self, lists: list[list[tuple[int, float]]]) -> list[list[Hit]]:
        return to_hits(self.catalog.chunks({i for lst in lists for i, _ in lst}), lists)

    # -- writing ------------------------------------------------------------------------------

    @contextlib.contextmanager
    def writer(self, *, new: IndexSettings | None = None, repair: bool = False,
               purpose: str = "ingest") -> Iterator[IndexWriter]:
        """The folder's writer (index_writer.py), holding its write lock while open. `new`:
        create the index with these settings if it does not exist. `repair`: read every
        segment anew and leave out the unreadable ones (`verify --repair`). `purpose`: the
        command a second writer is told holds the lock. What the writer committed is what
        this Index searches afterwards.

        >>> with index.writer() as writer:
        ...     writer.remove_files([3]); writer.commit()
        """
        if new is None and not self.exists:
            raise self._not_found()  # only an ingest makes an index folder (optimize made one)

        def load(broken: list | None) -> Segments:
            return self.load_vectors(previous=None if repair else self._vectors, broken=broken)

        def catalog() -> Catalog:
            return self.catalog

        with IndexWriter(self.folder, catalog, load, new=new, staging=staging_folder(self.folder),
                         keep_broken=repair, purpose="verify --repair" if repair else purpose) as writer:
            try:
                yield writer
            finally:
                with self._lock:
                    if writer.vectors is not None and not writer.vectors.changed:
                        self._vectors, self._generation = writer.vectors, writer.vectors.generation
                    else:
                        self.forget_vectors()  # changed but not committed

    def optimize(self) -> dict:
        """Merge every segment into one, without the dead vectors (`searchkit optimize`).

        >>> index.optimize()["segments"]
        1
        """
        with self.writer(purpose="optimize") as writer:
            return writer.optimize()

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
        stream_bytes: int = STREAM_BYTES,
        engine: str = "local",
        ray_address: str = "local",
        workers: int | None = None,
        gpus_per_worker: float = 0.0,
        include: Sequence[str] = (),
        exclude: Sequence[str] = (),
        ignore_files: bool = True,
        hidden: bool = False,
    ) -> IngestSummary:
        """Bring the index in step with the files under `paths`: embed new and changed
        files, drop the chunks of files that are gone (or now empty, binary or too large),
        leave the rest untouched. A path that no longer exists but has files in the index
        drops them (a folder moved away); `prune=True` also drops every indexed file that
        is gone from disk, wherever it was, and then `paths` may be empty.

        A generation is committed (a new segment file, then one SQLite transaction) at least
        every `commit_chunks` chunks or `commit_seconds` seconds, and at the end; a crash
        loses at most the work since the last commit.

        Text files over `stream_bytes` are read, chunked and embedded in parts, in memory
        that does not grow with the file, after the other files; each batch of their
        chunks is kept in the catalog as soon as it is embedded, and the whole file
        becomes searchable in one commit. A run stopped part-way resumes: chunks whose text
        the index already holds for that path take the vector it has (`chunks_reused`),
        which also makes an edit to a big file re-embed only the chunks around it.

        `engine="ray"` reads, chunks and embeds on Ray Data (ray_ingest.py): a local cluster
        for `ray_address="local"`, else the cluster there ("auto", "ray://host:10001"), with
        `workers` embedding actors of `gpus_per_worker` GPUs each. The result is the local
        ingest's: the same chunk ids, chunks and vectors.

        Which files below `paths` are taken is this run's choice (selection.py): `.gitignore`
        and `.ignore` files are followed unless `ignore_files=False`; dot-names are skipped
        unless `hidden=True`; `exclude` and `include` are gitignore-style globs relative to
        each path. A file left out is listed as skipped with its reason, and loses the
        chunks an earlier run gave it (as a file gone would).

        >>> index.ingest(["repo/"], exclude=["tests/"], include=["*.py", "*.md"])

        >>> index.ingest(["docsB"], prune=True).files_removed  # docsA was renamed docsB
        """
        if isinstance(paths, (str, Path)):
            paths = [paths]
        paths = list(paths)
        if not paths and not prune:
            raise BadInput("nothing to ingest: give at least one file or folder")
        for path in paths:
            refuse_loop(path)
        check_paths(paths, lambda: self.catalog.files() if self.exists else {})  # before any write
        selection = Selection(include=include, exclude=exclude, ignore_files=ignore_files, hidden=hidden)
        if engine not in ("local", "ray"):
            raise bad_value("engine", engine, "expected 'local' or 'ray'")
        on_ray = RayOptions(ray_address, workers, gpus_per_worker) if engine == "ray" else None
        if on_ray is not None:
            import_ray()  # installed? (one line saying how, before anything is written)
        new_folder = not os.path.lexists(self.folder)
        # embed_chunks ≤ commit_chunks: commits happen between embedded batches
        limits = Limits(commit_chunks, commit_seconds, max(1, min(embed_chunks, commit_chunks)), max_file_bytes,
                        stream_bytes)
        try:
            make_folder(self.folder)  # one line for a folder that cannot be, before the model loads
            if rebuild and self.exists:
                return self._rebuild(paths, progress=progress, prune=prune, commit_seconds=commit_seconds,
                                     commit_chunks=commit_chunks, embed_chunks=embed_chunks,
                                     max_file_bytes=max_file_bytes, stream_bytes=stream_bytes, engine=engine, ray_address=ray_address,
                                     workers=workers, gpus_per_worker=gpus_per_worker, include=include,
                                     exclude=exclude, ignore_files=ignore_files, hidden=hidden)
            return self._ingest(paths, progress, prune, limits, on_ray, selection)
        except OSError as exc:  # writing the folder (reading files is ingest.prepare's to skip)
            raise folder_error(self.folder, exc) from None
        finally:
            if new_folder and not self.exists:  # refused (a bad value) or failed before a catalog
                remove_folder(self.folder)

    def _ingest(self, paths: list, progress: ProgressFn | None, prune: bool, limits: Limits,
                on_ray: RayOptions | None, selection: Selection | None = None) -> IngestSummary:
        encoder = self.encoder  # loads the model, raises ModelMismatch: before any write
        new = None
        if self.exists:
            self.settings.check_asked(self.options.asked, self.folder)
            self._params(self.settings)  # refuse build-time changes before any work
        else:
            new = self._new_settings(encoder)
        with contextlib.ExitStack() as stack:
            if on_ray is not None:
                ray = stack.enter_context(ray_connected(on_ray))
                stages = ray_pipeline(ray, on_ray, encoder, limits.max_file_bytes)
            writer = stack.enter_context(self.writer(new=new))
            if on_ray is None:
                stages = local_pipeline(encoder.tokenizer, encoder.encode_documents, limits, writer)
            settings = writer.settings()
            # Big text files stream here, on the Ray path too: it reads files whole.
            stream = StreamStages(encoder.tokenizer, encoder.encode_documents, settings.chunk_tokens,
                                  settings.chunk_overlap, limits.embed_chunks,
                                  limits.max_file_bytes) if settings.chunk_tokens else None
            return run(writer, paths, stages, limits, prune=prune, ignore=self._is_own_file, progress=progress,
                       selection=selection, stream=stream)

    def _new_settings(self, encoder: Encoder) -> IndexSettings:
        choice = self.options.index_type or "auto"
        vectors = Segments(encoder.dim, choice, check_params(choice, self.options.index_params))
        return self.options.new_settings(encoder, vectors.settings, __version__)

    def _is_own_file(self, path: Path) -> bool:
        """A file this index wrote (its folder may lie inside the folders it indexes)."""
        return is_index_file(path.name) and path.parent in (self.folder.resolve(), self.options.home)

    def _rebuild(self, paths: Sequence[str | Path], **ingest_args) -> IngestSummary:
        """`ingest(paths, rebuild=True)`: a new index of this class, built with this one's
        options (`IndexOptions.for_rebuild`: without a model given, the stored model,
        pooling and layer) and its encoder if one is loaded, then swapped in (build.py)."""
        with FolderLock(self.folder, "ingest --rebuild"):  # not a writer's: the catalog may be unreadable
            try:
                stored = self.settings
            except SearchkitError:
                stored = IndexSettings()  # an unreadable catalog: rebuilding is the way out of it
            encoder = self._encoder
            own = self.options.model is None and encoder is None
            options = self.options.for_rebuild(stored, own, self.folder.resolve(), numbering(stored))

            def build(staging: Path) -> tuple[IngestSummary, Encoder]:
                fresh = type(self)(staging, encoder=encoder, options=options)
                try:
                    return fresh.ingest(paths, **ingest_args), fresh.encoder
                finally:
                    fresh.close()

            self.close()
            summary, self._encoder = swap_in(self.folder, build)
        self.forget_vectors()
        return summary

    # -- facts ------------------------------------------------------------------------------

    def info(self) -> dict:
        """What the index holds and how it was built."""
        self._follow_swap()
        catalog, vectors = self.catalog, self.vectors
        return {
            "index": str(self.folder),
            "settings": catalog.settings(),
            **catalog.counts(),
            "vectors": vectors.count,
            "segments": len(vectors.loaded),
            "segments_mapped": sum(v.mapped for v in vectors.loaded.values()),
            "searches_on": vectors.placement,
            "last_run": catalog.last_run(),
        }

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None


def refuse_loop(path: str | Path) -> None:
    """A path to ingest that is a symlink loop, refused in one line (one met inside a folder
    is skipped with that reason instead)."""
    try:
        os.stat(Path(path).expanduser())
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise BadInput(f"{printable(path)}: symlink loop") from None


def open_index(folder: str | Path = "index", **kwargs) -> Index:
    """Open (or prepare to create) the index in `folder`.

    >>> index = searchkit.open_index("index/")
    >>> index.ingest(["corpus/"]); index.search("a question", k=10)
    """
    return Index(folder, **kwargs)
