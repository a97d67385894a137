"""`Index`: one folder holding a SQLite catalog and FAISS vectors, kept in step.

Crash safety: vectors are saved as `vectors.<generation>.faiss` (atomic write) *before*
the SQLite transaction that records that generation commits. A crash before the commit
leaves the catalog pointing at the previous, intact vectors file; a crash after it
leaves both new. Opening always loads the generation the catalog names.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from . import __version__
from .encoder import Encoder
from .errors import BadInput, IndexCorrupt, IndexLocked, IndexNotFound, ModelMismatch
from .ingest import MAX_FILE_BYTES, PreparedFile, embed, prepare, scan
from .store.catalog import Catalog
from .store.vectors import FaissVectors

CATALOG_FILE = "catalog.db"
LOCK_FILE = "write.lock"
FORMAT_VERSION = 1
# Settings that must match for vectors to be comparable; dtype may differ (cosine > 0.999).
ENCODER_KEYS = ("model_type", "weights_sha256", "dim", "pooling", "normalize", "layer", "max_length")


@dataclass(frozen=True)
class Hit:
    """One search result; `text == document_text[start:end]`."""

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
    seconds: float = 0.0
    skipped: list[dict] = field(default_factory=list)  # {path, reason}
    problems: list[str] = field(default_factory=list)  # records skipped inside good files

    def to_dict(self) -> dict:
        return asdict(self)


# progress(bytes_done, bytes_total, chunks_done)
ProgressFn = Callable[[int, int, int], None]


def vectors_path(folder: Path, generation: int) -> Path:
    return folder / f"vectors.{generation:06d}.faiss"


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
        encoder: Encoder | None = None,
    ):
        self.folder = Path(folder).expanduser()
        self._model, self._device, self._dtype = model, device, dtype
        self._pooling, self._layer = pooling, layer
        self._chunk_tokens, self._chunk_overlap = chunk_tokens, chunk_overlap
        self._encoder = encoder
        self._catalog: Catalog | None = None
        self._vectors: FaissVectors | None = None
        self._generation = -1
        self._lock = threading.RLock()

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

    @property
    def settings(self) -> dict:
        return self.catalog.settings()

    @property
    def vectors(self) -> FaissVectors:
        """The vectors of the catalog's current generation (reloaded when it moves on)."""
        with self._lock:
            generation = self.catalog.generation
            if self._vectors is None or generation != self._generation:
                self._vectors = self._load_vectors(generation)
                self._generation = generation
            return self._vectors

    def _load_vectors(self, generation: int) -> FaissVectors:
        if generation == 0:
            return FaissVectors.create(int(self.settings.get("dim") or self.encoder.dim))
        path = vectors_path(self.folder, generation)
        if not path.is_file():
            raise IndexCorrupt(f"{path}: missing (the catalog expects generation {generation})")
        vectors = FaissVectors.load(path)
        dim = self.settings.get("dim")
        if dim and vectors.dim != dim:
            raise IndexCorrupt(f"{path}: vectors of dim {vectors.dim}, the catalog says {dim}")
        return vectors

    @property
    def encoder(self) -> Encoder:
        """The encoder for this index: the one it was built with, checked by weight hash."""
        if self._encoder is None:
            stored = self.settings if self.exists else {}
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
            detail = ", ".join(f"{k} {stored.get(k)!r} vs {mine.get(k)!r}" for k in diffs)
            raise ModelMismatch(
                f"{self.folder}: built with {stored.get('model')} ({detail}); "
                "use the same model and settings, or re-ingest with --rebuild"
            )

    # -- searching --------------------------------------------------------------------------

    def search(self, query: str, k: int = 10) -> list[Hit]:
        """The k chunks closest to `query`, best first.

        >>> index.search("how do I open a file", k=3)
        [Hit(rank=1, score=0.61, path='/.../inputoutput.txt', ...), ...]
        """
        return self.search_vectors(self._query_vector(query), k)[0]

    def _query_vector(self, query: str) -> np.ndarray:
        if not isinstance(query, str) or not query.strip():
            raise BadInput("empty query")
        return self.encoder.encode([query])

    def search_vectors(self, queries: np.ndarray, k: int = 10) -> list[list[Hit]]:
        """Hits for query vectors already embedded, (n, dim) -> n lists."""
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise BadInput(f"-k {k}: must be a positive integer")
        with self._lock:
            vectors = self.vectors
            scores, ids = vectors.search(np.atleast_2d(queries), int(k))
            rows = self.catalog.chunks(int(i) for i in np.unique(ids) if i >= 0)
        results = []
        for score_row, id_row in zip(scores, ids):
            hits: list[Hit] = []
            for score, chunk_id in zip(score_row, id_row):
                row = rows.get(int(chunk_id))
                if row is None:
                    continue  # -1 padding, or a chunk deleted since the vectors were loaded
                hits.append(
                    Hit(len(hits) + 1, float(score), row.path, row.chunk_id, row.text, row.start, row.end, row.key, row.title)
                )
            results.append(hits)
        return results

    # -- ingesting ---------------------------------------------------------------------------

    def ingest(
        self,
        paths: Sequence[str | Path],
        *,
        progress: ProgressFn | None = None,
        rebuild: bool = False,
        commit_seconds: float = 60.0,
        commit_chunks: int = 20000,
        embed_chunks: int = 512,
        max_file_bytes: int = MAX_FILE_BYTES,
    ) -> IngestSummary:
        """Bring the index in step with the files under `paths`: embed new and changed
        files, drop the chunks of files that are gone, leave the rest untouched."""
        if isinstance(paths, (str, Path)):
            paths = [paths]
        if not paths:
            raise BadInput("nothing to ingest: give at least one file or folder")
        started = time.time()
        with self._write_lock():
            if rebuild:
                self._wipe()
            catalog = self._open_catalog(create=True)
            encoder = self.encoder  # raises ModelMismatch before any work
            settings = self._ensure_settings(encoder)
            self._remove_stale_files()
            found = scan(paths, catalog.files(), max_bytes=max_file_bytes)
            summary = IngestSummary(
                files_seen=found.seen,
                files_unchanged=found.unchanged,
                skipped=[{"path": p, "reason": r} for p, r in found.skipped],
            )
            writer = _Writer(self, settings, summary)
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
            with catalog.db.atomic():
                catalog.add_run(started, summary.to_dict())
        return summary

    def _ensure_settings(self, encoder: Encoder) -> dict:
        catalog = self.catalog
        stored = catalog.settings()
        if "weights_sha256" in stored:
            return stored
        tokens = self._chunk_tokens or min(encoder.max_content_tokens, 510)
        overlap = self._chunk_overlap if self._chunk_overlap is not None else tokens // 8
        if not 8 <= tokens <= encoder.max_content_tokens:
            raise BadInput(f"--chunk-tokens {tokens}: must be between 8 and {encoder.max_content_tokens} for this model")
        if not 0 <= overlap < tokens // 2:
            raise BadInput(f"--chunk-overlap {overlap}: must be between 0 and {tokens // 2 - 1}")
        settings = {
            **encoder.settings(),
            "chunk_tokens": tokens,
            "chunk_overlap": overlap,
            "index_type": "flat-ip",
            "format": FORMAT_VERSION,
            "searchkit_version": __version__,
            "created_at": time.time(),
            "generation": 0,
            "next_chunk_id": 1,
        }
        with catalog.db.atomic():
            catalog.put_settings(settings)
        return settings

    def _write_lock(self):
        return _FolderLock(self.folder)

    def _wipe(self) -> None:
        self.close()
        for name in os.listdir(self.folder) if self.folder.is_dir() else []:
            if name.startswith(("catalog.db", "vectors.")):
                (self.folder / name).unlink()
        self._vectors, self._generation = None, -1

    def _remove_stale_files(self) -> None:
        """Vector files of other generations are leftovers of a crash (the writer holds the lock)."""
        keep = vectors_path(self.folder, self.catalog.generation).name
        for path in self.folder.glob("vectors.*"):
            if path.name != keep:
                path.unlink(missing_ok=True)

    # -- facts ------------------------------------------------------------------------------

    def info(self) -> dict:
        """What the index holds and how it was built."""
        catalog = self.catalog
        return {
            "index": str(self.folder),
            "settings": catalog.settings(),
            **catalog.counts(),
            "vectors": self.vectors.count,
            "last_run": catalog.last_run(),
        }

    def close(self) -> None:
        if self._catalog is not None:
            self._catalog.close()
            self._catalog = None


class _Writer:
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
        old_generation = catalog.generation
        generation = old_generation + 1
        vectors = index.vectors
        removed_ids = np.array(catalog.chunk_ids_of_files(self.removed_files), dtype=np.int64)
        new_ids = np.concatenate([ids for _, ids in self.files]) if self.files else np.zeros(0, np.int64)
        try:
            vectors.remove(removed_ids)
            if len(new_ids):
                vectors.add(new_ids, np.concatenate(self.vectors))
            vectors.save(vectors_path(index.folder, generation))
            with catalog.db.atomic():
                catalog.remove_files(self.removed_files)
                for f, ids in self.files:
                    file_row = {"path": str(f.state.path), "sha256": f.state.sha256, "size": f.state.size,
                                "mtime": f.state.mtime, "reader": f.reader}
                    it = iter(ids.tolist())
                    docs = [(d, [{**c, "id": next(it)} for c in chunks]) for d, chunks in zip(f.documents, f.chunks)]
                    catalog.add_file(file_row, docs)
                catalog.put_settings({"generation": generation, "next_chunk_id": self.next_id})
        except BaseException:
            # Back to the last committed state: the catalog rolled back; drop our file.
            vectors_path(index.folder, generation).unlink(missing_ok=True)
            index._vectors, index._generation = None, -1
            raise
        index._generation = generation
        vectors_path(index.folder, old_generation).unlink(missing_ok=True)
        s = self.summary
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


class _FolderLock:
    """One writer per index folder (an advisory lock on a file inside it)."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.fh = None

    def __enter__(self):
        self.folder.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.folder / LOCK_FILE, "a+")
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.seek(0)
            holder = self.fh.read().strip() or "another process"
            self.fh.close()
            raise IndexLocked(f"{self.folder}: another ingest ({holder}) is writing to this index; try again when it ends") from None
        self.fh.seek(0)
        self.fh.truncate()
        self.fh.write(f"pid {os.getpid()}")
        self.fh.flush()
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()


def open_index(folder: str | Path = "index", **kwargs) -> Index:
    """Open (or prepare to create) the index in `folder`.

    >>> index = searchkit.open_index("index/")
    >>> index.ingest(["corpus/"]); index.search("a question", k=10)
    """
    return Index(folder, **kwargs)
