"""The ingest stages, as plain functions over batches of records.

scan (which files are new, changed, gone) -> prepare (read + chunk) -> embed -> the
index writer, which commits. No global state: each stage takes what it needs, so they
run in-process today (`run`) and as batch stages of a distributed runner unchanged later.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .chunking import Chunk, chunk_texts, whole_chunks
from .documents import Document
from .errors import BadInput
from .filetypes import suffix_of, type_of
from .hashing import chunk_hash, sha256_file
from .ingest_records import (
    MAX_FILE_BYTES,
    STREAM_BYTES,
    Batch,
    CommitCounts,
    FileState,
    IngestSink,
    PreparedFile,
)
from .ingest_stream import KnownVectors, StreamStages, embed_unknown, stream_file, streams
from .positions import locate
from .readers import SkipFile, printable, read_file, walk_found
from .selection import SELECTION_REASONS, Selection

if TYPE_CHECKING:
    from .settings import IndexSettings  # annotations only: settings loads faiss (store/vectors.py)

# Skip reasons that say what a file's content now is: a file that had chunks and is now
# one of these has changed, so its old chunks go. The other reasons (permission denied,
# unreadable, a duplicate route to it) say nothing of its content: its chunks stay.
CONTENT_REASONS = ("empty", "binary", "invalid UTF", "over size limit", "no text", "not a regular file",
                   "encrypted PDF", "broken PDF")


def content_reason(reason: str) -> bool:
    """A skip that drops the file's old chunks: its content is no longer readable text, or
    this run's selection leaves it out (hidden, ignored, excluded: like a file gone)."""
    return reason.startswith(CONTENT_REASONS + SELECTION_REASONS)



@dataclass
class Scan:
    new: list[FileState] = field(default_factory=list)
    changed: list[FileState] = field(default_factory=list)
    unchanged: int = 0
    touched: list[FileState] = field(default_factory=list)  # new mtime or route, same content
    removed: list[dict] = field(default_factory=list)  # catalog rows of files gone or emptied
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    seen: int = 0


def roots_of(paths: Sequence[str | Path]) -> list[Path]:
    """The given paths as absolute paths, and resolved where they lead through a link:
    what a file found under them may be catalogued under."""
    roots = [Path(os.path.abspath(Path(p).expanduser())) for p in paths]
    return roots + [r.resolve() for r in roots if r.resolve() != r]


def under(path: str | None, roots: Sequence[Path]) -> bool:
    return path is not None and any(
        path == str(r) or path.startswith(str(r).rstrip(os.sep) + os.sep) for r in roots
    )


def gone(row: dict) -> bool:
    """A catalogued file is gone when nothing is at its path any more, or the link it was
    found through was removed or points elsewhere now."""
    if not os.path.isfile(row["path"]):
        return True
    via = row.get("found_as") or row["path"]
    return via != row["path"] and os.path.realpath(via) != row["path"]


def scan(
    paths: Sequence[str | Path],
    known: dict[str, dict],
    max_bytes: int = MAX_FILE_BYTES,
    ignore: Callable[[Path], bool] | None = None,
    prune: bool = False,
    selection: Selection | None = None,
) -> Scan:
    """Sort the files under `paths` into new, changed, unchanged and skipped, and find the
    known files under those paths (or found through them) that are gone or are no longer
    readable text. Size and mtime equal means unchanged; otherwise the content hash decides.
    A path that no longer exists is taken as a folder now empty. `ignore(path)`: files not
    to see at all (the index's own, when a folder is indexed into itself). `prune`: also
    find every known file that is gone from disk, wherever it is. `selection`: which files
    below the paths to take (selection.py); a known file it leaves out is removed, and a
    known file inside a folder it leaves out is removed as not seen.

    >>> found = scan(["notes/"], catalog.files())
    >>> [s.path.name for s in found.new], [row["path"] for row in found.removed]
    """
    result = Scan()
    roots = roots_of(paths)
    seen_paths: set[str] = set()
    emptied: list[dict] = []
    existing = [p for p in paths if os.path.lexists(Path(p).expanduser())]
    for path, reason, via in walk_found(existing, max_bytes=max_bytes, selection=selection):
        if ignore is not None and ignore(path):
            continue
        result.seen += 1
        key = str(path)
        seen_paths.add(key)
        row = known.get(key)
        if reason is not None:
            result.skipped.append((printable(key), reason))
            if row is not None and content_reason(reason):
                emptied.append(row)
            continue
        try:
            st = path.stat()
        except OSError as exc:
            result.skipped.append((key, exc.strerror or "unreadable"))
            continue
        state = FileState(path, st.st_size, st.st_mtime, found_as=str(via))
        if row is None:
            result.new.append(state)
            continue
        state.old_id = row["id"]
        same_route = (row.get("found_as") or row["path"]) == state.found_as
        if row["size"] == st.st_size and row["mtime"] == st.st_mtime:
            result.unchanged += 1
            if not same_route:
                result.touched.append(state)
            continue
        try:
            state.sha256 = sha256_file(path)
        except OSError as exc:
            result.skipped.append((key, exc.strerror or "unreadable"))
            continue
        if state.sha256 == row["sha256"]:
            result.unchanged += 1  # touched, not changed
            result.touched.append(state)
        else:
            result.changed.append(state)
    # A file skipped for its access (unreadable now, say) keeps its old chunks: nothing is
    # lost to a passing problem. One whose content is no longer text loses them.
    result.removed = emptied + [
        row for path, row in known.items()
        if path not in seen_paths
        and (under(path, roots) or under(row.get("found_as"), roots) or (prune and gone(row)))
    ]
    return result


def prepare(
    states: Sequence[FileState],
    tokenizer,
    max_tokens: int | None,
    overlap: int | None,
    max_bytes: int = MAX_FILE_BYTES,
) -> tuple[list[PreparedFile], list[tuple[str, str]]]:
    """Read and chunk a batch of files. Returns the prepared files and (path, reason) skips.
    `max_tokens=None` makes each document one chunk (the encoder truncates it)."""
    prepared, skipped = [], []
    for state in states:
        try:
            result = read_file(state.path, max_bytes=max_bytes)
            state.sha256 = state.sha256 or sha256_file(state.path)
        except SkipFile as exc:
            skipped.append((str(state.path), exc.reason))
            continue
        except OSError as exc:
            skipped.append((str(state.path), exc.strerror or "unreadable"))
            continue
        docs = [
            {"key": d.key, "title": d.title, "text": d.text, "meta": d.meta} for d in result.documents
        ]
        file_type = type_of(state.path)
        line_oriented = file_type is not None and file_type.lines  # code, config, tables
        chunked = (whole_chunks([d.text for d in result.documents]) if max_tokens is None
                   else _chunk_documents(result.documents, tokenizer, max_tokens, overlap, line_oriented))
        chunks = [
            [{"ordinal": c.ordinal, "start": c.start, "end": c.end, "text": c.text, **where, "hash": chunk_hash(c.text)}
             for c, where in zip(doc_chunks, locate(doc, [(c.start, c.end) for c in doc_chunks]))]
            for doc, doc_chunks in zip(result.documents, chunked)
        ]
        if not any(chunks) and not result.problems:
            skipped.append((str(state.path), "no text"))
            continue
        prepared.append(PreparedFile(state, suffix_of(state.path), docs, chunks, result.problems))
    return prepared, skipped


def _chunk_documents(documents: Sequence[Document], tokenizer, max_tokens: int, overlap: int,
                     line_oriented: bool) -> list[list[Chunk]]:
    """Token windows of each document; a paged document (PDF) is cut page by page, so that
    every chunk lies on one page and its `page` is exact. Offsets are the document's."""
    pieces = []  # (document index, start, end): a whole document, or one page of it
    for i, doc in enumerate(documents):
        bounds = [*doc.pages, len(doc.text)] if doc.pages else [0, len(doc.text)]
        pieces += [(i, a, b) for a, b in zip(bounds, bounds[1:])]
    chunked = chunk_texts([documents[i].text[start:end] for i, start, end in pieces], tokenizer, max_tokens, overlap,
                          line_oriented=line_oriented)
    out: list[list[Chunk]] = [[] for _ in documents]
    for (i, start, _), piece_chunks in zip(pieces, chunked):
        out[i] += [Chunk(len(out[i]) + n, start + c.start, start + c.end, c.text) for n, c in enumerate(piece_chunks)]
    return out


def embed(prepared: Sequence[PreparedFile], encode: Callable[[list[str]], np.ndarray],
          known: Callable[[PreparedFile], dict[str, np.ndarray]] | None = None) -> tuple[np.ndarray, int]:
    """Vectors for every chunk of the prepared files, in file, document, chunk order, and
    how many of them were `known(file)` (text hash -> the vector the index holds: a changed
    file's chunks whose text did not change) rather than embedded."""
    rows = [c for f in prepared for doc in f.chunks for c in doc]
    found: dict[str, np.ndarray] = {}
    if known is not None:
        for f in prepared:
            found.update(known(f))
    dim = len(next(iter(found.values()))) if found else 0  # (not used when nothing is known)
    return embed_unknown(rows, found, dim, encode)


@dataclass
class IngestSummary:
    files_seen: int = 0
    files_added: int = 0
    files_updated: int = 0
    files_removed: int = 0
    files_skipped: int = 0
    files_unchanged: int = 0
    files_streamed: int = 0  # big files read, chunked and embedded in parts (ingest_stream.py)
    chunks_added: int = 0
    chunks_removed: int = 0
    chunks_embedded: int = 0  # of the chunks added, those embedded by this run
    chunks_reused: int = 0  # ... and those whose text the index held a vector for
    merges: int = 0  # segment merges after its commits (store/segments.py)
    seconds: float = 0.0
    skipped: list[dict] = field(default_factory=list)  # {path, reason}
    problems: list[str] = field(default_factory=list)  # records skipped inside good files

    def to_dict(self) -> dict:
        return asdict(self)

    def skip(self, skipped: Sequence[tuple[str, str]]) -> None:
        self.skipped += [{"path": p, "reason": r} for p, r in skipped]

    def count(self, counts: CommitCounts) -> None:
        """Take in what one commit changed."""
        self.files_added += counts.files_added
        self.files_updated += counts.files_updated
        self.chunks_added += counts.chunks_added
        self.chunks_removed += counts.chunks_removed
        self.merges += counts.merges
        self.problems += counts.problems


@dataclass(frozen=True)
class Limits:
    """When an ingest embeds and commits: a batch is embedded once it holds `embed_chunks`
    chunks; a commit happens once `commit_chunks` are pending or `commit_seconds` passed.
    Text files over `stream_bytes` are ingested in parts (ingest_stream.py), each one
    staged durably and made visible by a commit of its own."""

    commit_chunks: int = 20000
    commit_seconds: float = 60.0
    embed_chunks: int = 512
    max_file_bytes: int = MAX_FILE_BYTES
    stream_bytes: int = STREAM_BYTES


def batches(todo: Sequence[FileState], tokenizer, max_tokens: int | None, overlap: int | None,
            embed_chunks: int, max_bytes: int = MAX_FILE_BYTES) -> Iterator[Batch]:
    """The files of `todo` prepared, in batches of at least `embed_chunks` chunks (the
    last one smaller)."""
    batch = Batch([], [], [], 0)
    for state in todo:
        prepared, skipped = prepare([state], tokenizer, max_tokens, overlap, max_bytes)
        batch.files += prepared
        batch.skipped += skipped
        if state.old_id is not None and any(content_reason(r) for _, r in skipped):
            batch.emptied.append(state.old_id)
        batch.bytes_done += state.size
        if sum(f.chunk_count for f in batch.files) >= embed_chunks:
            yield batch
            batch = Batch([], [], [], batch.bytes_done)
    if batch.files or batch.skipped or batch.emptied:
        yield batch


def check_paths(paths: Sequence[str | Path], known: Callable[[], dict[str, dict]]) -> None:
    """Every path exists, or is gone but has files in the index (`known()`: the catalog's
    files), which the ingest then drops: a folder moved away."""
    for path in paths:
        path = Path(os.path.abspath(Path(path).expanduser()))
        if os.path.lexists(path):
            continue
        if not any(under(row["path"], [path]) or under(row.get("found_as"), [path]) for row in known().values()):
            raise BadInput(f"{printable(path)}: no such file or directory")


# pipeline(todo, settings) -> (batch, its chunks' vectors or None), in the order of `todo`:
# the prepare and embed stages, in this process (`local_pipeline`) or on Ray (ray_ingest.py)
Pipeline = Callable[[list[FileState], "IndexSettings"], Iterator[tuple[Batch, "np.ndarray | None"]]]


def local_pipeline(tokenizer, encode: Callable[[list[str]], np.ndarray], limits: Limits,
                   writer: IngestSink | None = None) -> Pipeline:
    """The prepare and embed stages in this process. With the `writer`, a changed file's
    chunks whose text the index already holds take that vector instead of being embedded."""
    def known(f: PreparedFile) -> dict[str, np.ndarray]:
        if f.state.old_id is None:
            return {}
        return KnownVectors(writer, [], f.state.old_id).lookup([c["hash"] for doc in f.chunks for c in doc])

    def stages(todo: list[FileState], settings: IndexSettings) -> Iterator[tuple[Batch, np.ndarray | None]]:
        for batch in batches(todo, tokenizer, settings.chunk_tokens, settings.chunk_overlap, limits.embed_chunks,
                             limits.max_file_bytes):
            vectors = None
            if batch.files:
                vectors, batch.reused = embed(batch.files, encode, known if writer is not None else None)
            yield batch, vectors

    return stages


def run(writer: IngestSink, paths: Sequence[str | Path], pipeline: Pipeline, limits: Limits, prune: bool = False,
        ignore: Callable[[Path], bool] | None = None,
        progress: Callable[[int, int, int], None] | None = None,
        selection: Selection | None = None, stream: StreamStages | None = None) -> IngestSummary:
    """Bring the index `writer` holds in step with the files under `paths`: scan, then the
    new and changed files through `pipeline` (prepare, embed) into the writer, committing
    as `limits` say and at the end, so a crash loses at most the work since the last
    commit. Text files over `limits.stream_bytes` go after the others, one at a time,
    through `stream` (ingest_stream.py) when it is given. `ignore`, `prune` and
    `selection`: see `scan`. `progress(bytes_done, bytes_total, chunks_done)`."""
    started = time.time()
    catalog, settings = writer.catalog, writer.settings()
    found = scan(paths, catalog.files(), max_bytes=limits.max_file_bytes, ignore=ignore, prune=prune,
                 selection=selection)
    summary = IngestSummary(files_seen=found.seen, files_unchanged=found.unchanged)
    summary.skip(found.skipped)
    if found.touched:
        with catalog.write():
            catalog.touch_files([(s.old_id, s.size, s.mtime, s.found_as) for s in found.touched])
    writer.remove_files([row["id"] for row in found.removed])
    summary.files_removed += len(found.removed)
    todo = found.new + found.changed
    big = [s for s in todo if stream is not None and settings.chunk_tokens is not None
           and streams(s.path, s.size, limits.stream_bytes)]
    streamed = {id(s) for s in big}
    small = [s for s in todo if id(s) not in streamed]  # first: never held back behind a big file
    _drop_stale_staging(writer, paths, {str(s.path) for s in big})
    total = sum(s.size for s in todo)
    if progress:  # the total at once: the first batch may take seconds to embed
        progress(0, total, 0)
    done_bytes = 0
    for batch, vectors in pipeline(small, settings):
        summary.skip(batch.skipped)
        writer.remove_files(batch.emptied)
        summary.files_removed += len(batch.emptied)
        if batch.files:
            writer.add_files(batch.files, vectors)
            summary.chunks_embedded += sum(f.chunk_count for f in batch.files) - batch.reused
            summary.chunks_reused += batch.reused
        done_bytes = batch.bytes_done
        if progress:
            progress(done_bytes, total, summary.chunks_added + writer.pending_chunks)
        if writer.pending_chunks >= limits.commit_chunks or writer.age > limits.commit_seconds:
            summary.count(writer.commit())
    done_bytes = sum(s.size for s in small)
    for state in big:
        summary.count(writer.commit())  # what came before is searchable while this file embeds
        _stream_one(writer, state, stream, summary, progress, done_bytes, total)
        done_bytes += state.size
    summary.count(writer.commit())
    if progress:
        progress(total, total, summary.chunks_added)
    summary.files_skipped = len(summary.skipped)
    summary.seconds = round(time.time() - started, 3)
    with catalog.write():
        catalog.add_run(started, summary.to_dict())
    return summary


def _stream_one(writer: IngestSink, state: FileState, stream: StreamStages, summary: IngestSummary,
                progress: Callable[[int, int, int], None] | None, done_bytes: int, total: int) -> None:
    """One big file staged in parts, then committed whole (or skipped, as `prepare` would)."""
    base = summary.chunks_added

    def moved(bytes_read: int, chunks_done: int) -> None:
        if progress:
            progress(done_bytes + min(bytes_read, state.size), total, base + chunks_done)

    try:
        staged = stream_file(writer, state, dataclasses.replace(stream, progress=moved))
    except SkipFile as exc:
        summary.skip([(str(state.path), exc.reason)])
        if content_reason(exc.reason):  # not text now: nothing staged for it will serve
            writer.stage(lambda: writer.staging.drop(str(state.path)))
            if state.old_id is not None:
                writer.remove_files([state.old_id])
                summary.files_removed += 1
        return
    except OSError as exc:
        summary.skip([(str(state.path), exc.strerror or "unreadable")])
        return
    writer.add_staged(staged)
    summary.files_streamed += 1
    summary.chunks_embedded += staged.embedded
    summary.chunks_reused += staged.reused
    summary.count(writer.commit())


def _drop_stale_staging(writer: IngestSink, paths: Sequence[str | Path], streaming: set[str]) -> None:
    """Forget what stopped ingests staged for files this run will not stream: gone from
    disk, or under its paths and not (or no longer) to be ingested in parts."""
    roots = roots_of(paths)
    stale = [path for path in writer.staging.paths()
             if path not in streaming and (not os.path.isfile(path) or under(path, roots))]
    for path in stale:
        writer.stage(lambda p=path: writer.staging.drop(p))
