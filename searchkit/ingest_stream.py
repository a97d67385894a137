"""Ingest one big text file in parts, in memory that does not grow with the file.

The file is decoded a block at a time (text_stream.py) and chunked a window at a time
(chunk_stream.py); every `embed_chunks` chunks are embedded and staged in the catalog in
a transaction of their own (store/staging.py), so progress moves from the first batch
on and a crash keeps what was done. A chunk whose text the index already holds for this
path (in the file's committed chunks, or staged by an ingest that was stopped) takes that
vector instead of being embedded again: a killed run resumes, and an edit re-embeds only
the chunks around it. The finished file becomes searchable in one commit
(`IndexWriter.add_staged`), never in part.

    >>> staged = stream_file(writer, state, StreamStages(tokenizer, encoder.encode_documents, 256, 32, 512))
    >>> writer.add_staged(staged); writer.commit()
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import chunk_stream
from .chunking import chunk_texts
from .documents import Document
from .errors import SkipFile
from .filetypes import suffix_of, type_of
from .hashing import chunk_hash
from .ingest_records import MAX_FILE_BYTES, FileState, IngestSink, StagedFile
from .positions import locate
from .readers import markdown_title, rst_title
from .text_stream import TextStream

READ_BLOCK_BYTES = 1 << 16  # well under a window: the window, not the read, bounds what is tokenized at once
STREAMED_READERS = ("plain", "markdown", "rst")  # one document whose text is the file's


def streams(path: Path, size: int, threshold: int) -> bool:
    """Whether a file is ingested in parts: a text file whose document is its own text
    (not HTML, JSONL or PDF, which are read whole), above `threshold` bytes."""
    file_type = type_of(path)
    return size > threshold and file_type is not None and file_type.reader in STREAMED_READERS


@dataclass
class StreamStages:
    """What streaming needs from the ingest: the chunker's tokenizer and sizes, the
    embedding function (`encode(texts, progress)`), the batch size, the size limit, and
    `progress(bytes_read, chunks_done)` for this file."""

    tokenizer: object
    encode: Callable[..., np.ndarray]
    max_tokens: int
    overlap: int
    embed_chunks: int = 512
    max_bytes: int = MAX_FILE_BYTES
    window_chars: int | None = None  # None: chunk_stream.WINDOW_CHARS
    progress: Callable[[int, int], None] | None = None


def stream_file(writer: IngestSink, state: FileState, stages: StreamStages) -> StagedFile:
    """Read, chunk, embed and stage one file; `SkipFile` when it turns out not to be text
    (this attempt's rows are dropped then; the caller drops earlier ones when the reason
    is the file's content). The writer's lock is held throughout."""
    staging, path = writer.staging, str(state.path)
    cache = KnownVectors(writer, staging.attempts(path), state.old_id)
    attempt = writer.stage(lambda: staging.begin(path))
    file_type = type_of(state.path)
    stream = TextStream(state.path, stages.max_bytes)
    staged = StagedFile(state, suffix_of(state.path), attempt, 0)
    try:
        windows = chunk_stream.stream_chunks(stream.pieces(READ_BLOCK_BYTES), _chunker(stages, file_type.lines),
                                             stages.window_chars or chunk_stream.WINDOW_CHARS)
        pending: list[dict] = []
        texts: list[tuple[int, str]] = []
        for n, window in enumerate(windows):
            if n == 0:
                title = _title(file_type.reader, window.text)
                writer.stage(lambda t=title: staging.add_document(attempt, 0, "", t, None, {}))
            texts.append((window.start, window.text))
            pending += _rows(state.path, window)
            while len(pending) >= stages.embed_chunks:
                _flush(writer, staged, cache, stages, pending[: stages.embed_chunks], texts, stream)
                pending, texts = pending[stages.embed_chunks:], []
        _flush(writer, staged, cache, stages, pending, texts, stream)
    except (SkipFile, OSError):
        # This attempt only: what earlier ones staged stays for a resume, unless the file
        # is no longer text (the ingest drops them all then: a content reason).
        writer.stage(lambda: staging.drop_attempts([attempt]))
        raise
    if not staged.chunk_count:
        writer.stage(lambda: staging.drop(path))
        raise SkipFile(state.path, "empty")
    state.sha256 = stream.sha256
    return staged


def _chunker(stages: StreamStages, line_oriented: bool):
    def chunk(text: str, ends_after: int):
        return chunk_texts([text], stages.tokenizer, stages.max_tokens, stages.overlap,
                           line_oriented=line_oriented, ends_after=[ends_after])[0]
    return chunk


def _title(reader: str, head: str) -> str:
    """A Markdown or rst file's title, looked for in its first window."""
    if reader == "markdown":
        return markdown_title(head)
    if reader == "rst":
        return rst_title(head)
    return ""


def _rows(path: Path, window) -> list[dict]:
    """Catalog rows of a window's chunks, lines counted from the document's start."""
    doc = Document(path, "", "", window.text + window.lookahead, file_lines=True)
    spans = [(c.start - window.start, c.end - window.start) for c in window.chunks]
    rows = []
    for c, where in zip(window.chunks, locate(doc, spans)):
        rows.append({"doc_index": 0, "ordinal": c.ordinal, "start": c.start, "end": c.end, "text": c.text,
                     "page": None, "line_start": where["line_start"] + window.lines_before,
                     "line_end": where["line_end"] + window.lines_before, "hash": chunk_hash(c.text)})
    return rows


def _flush(writer: IngestSink, staged: StagedFile, cache: KnownVectors, stages: StreamStages, rows: list[dict],
           texts: list[tuple[int, str]], stream: TextStream) -> None:
    """Vectors for `rows` (known ones taken, the rest embedded), staged with the text
    pieces in one transaction."""
    done = 0

    def moved(n: int) -> None:
        # Bytes: where the last chunk embedded ends, in the file's bytes per character so far.
        nonlocal done
        done += n
        if stages.progress and rows:
            end = rows[min(done, len(rows)) - 1]["end"] if done else rows[0]["start"]
            stages.progress(int(end * stream.bytes_read / max(stream.chars_read, 1)), staged.chunk_count + done)

    vectors, reused = embed_unknown(rows, cache.lookup([r["hash"] for r in rows]), writer.dim,
                                    lambda texts: stages.encode(texts, moved))
    moved(reused)
    first = staged.chunk_count

    def write() -> None:
        for start, text in texts:
            writer.staging.add_text(staged.attempt, 0, start, text)
        writer.staging.add_chunks(staged.attempt, first, rows, vectors)

    writer.stage(write)
    staged.chunk_count += len(rows)
    staged.embedded += len(rows) - reused
    staged.reused += reused


def embed_unknown(rows: list[dict], known: dict[str, np.ndarray], dim: int,
                  encode: Callable[[list[str]], np.ndarray]) -> tuple[np.ndarray, int]:
    """Vectors for chunk rows ({text, hash}): `known` ones (hash -> vector) taken, the rest
    embedded in one `encode` call; and how many were taken."""
    todo = [i for i, r in enumerate(rows) if r["hash"] not in known]
    if len(todo) == len(rows):
        return (encode([r["text"] for r in rows]) if rows else np.zeros((0, dim), np.float32)), 0
    vectors = np.zeros((len(rows), dim), dtype=np.float32)
    for i, r in enumerate(rows):
        if r["hash"] in known:
            vectors[i] = known[r["hash"]]
    if todo:
        vectors[todo] = encode([rows[i]["text"] for i in todo])
    return vectors, len(rows) - len(todo)


class KnownVectors:
    """Vectors the index already holds for a path, by chunk hash: staged by earlier
    attempts, or committed with the file's current version (read from exact segments
    only: an IVF-PQ segment's vectors come back approximate)."""

    def __init__(self, writer: IngestSink, attempts: list[int], old_id: int | None):
        self.writer = writer
        self.staged = writer.staging.hashes(attempts) if attempts else {}
        exact = "ivfpq" not in writer.vectors.kinds
        self.committed = writer.catalog.chunk_hashes_of_file(old_id) if old_id is not None and exact else {}

    def lookup(self, hashes: list[str]) -> dict[str, np.ndarray]:
        found: dict[str, np.ndarray] = {}
        staged = [h for h in dict.fromkeys(hashes) if h in self.staged]
        if staged:
            rows = self.writer.staging.vectors_of([self.staged[h] for h in staged], self.writer.dim)
            found.update(zip(staged, rows))
        committed = [h for h in dict.fromkeys(hashes) if h in self.committed and h not in found]
        if committed:
            rows = self.writer.vectors.reconstruct(np.array([self.committed[h] for h in committed], dtype=np.int64))
            found.update(zip(committed, rows))
        return found
