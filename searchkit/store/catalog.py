"""The SQLite catalog: files, documents, chunks, the index's settings and its runs.

Written through sqlite-utils, schema changes as numbered migrations, every ingest step
committed in one transaction together with the vector generation it matches.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlite_utils import Database, Migrations

from ..errors import IndexCorrupt

migrations = Migrations("searchkit")


@migrations()
def m001_initial(db: Database) -> None:
    db["settings"].create({"key": str, "value": str}, pk="key")
    db["files"].create(
        {"id": int, "path": str, "sha256": str, "size": int, "mtime": float, "reader": str, "ingested_at": float},
        pk="id",
    )
    db["files"].create_index(["path"], unique=True)
    db["documents"].create(
        {"id": int, "file_id": int, "key": str, "title": str, "text": str, "meta": str},
        pk="id",
        foreign_keys=[("file_id", "files", "id")],
    )
    db["documents"].create_index(["file_id", "key"], unique=True)
    db["chunks"].create(
        {"id": int, "document_id": int, "ordinal": int, "start": int, "end": int, "text": str},
        pk="id",
        foreign_keys=[("document_id", "documents", "id")],
    )
    db["chunks"].create_index(["document_id"])
    db["runs"].create(
        {"id": int, "started_at": float, "finished_at": float, "summary": str}, pk="id"
    )


# The BM25 index's tokenizer: Porter stemming over unicode61 words, accents folded.
FTS_TOKENIZE = "porter unicode61 remove_diacritics 2"


@migrations()
def m002_chunks_fts(db: Database) -> None:
    """A full-text (FTS5, BM25) index of chunk text for lexical and hybrid search.

    External content: the text stays in `chunks` only, the FTS row id is the chunk id.
    Triggers keep it in step with every insert and delete of a chunk, inside whatever
    transaction makes the change (ingest's commit, `verify --repair`); existing indexes
    are backfilled here.
    """
    db.execute(
        "CREATE VIRTUAL TABLE chunks_fts USING fts5("
        f"text, content='chunks', content_rowid='id', tokenize='{FTS_TOKENIZE}')"
    )
    db.execute(
        "CREATE TRIGGER chunks_fts_insert AFTER INSERT ON chunks BEGIN "
        "INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END"
    )
    db.execute(
        "CREATE TRIGGER chunks_fts_delete AFTER DELETE ON chunks BEGIN "
        "INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); END"
    )
    db.execute(
        "CREATE TRIGGER chunks_fts_update AFTER UPDATE OF id, text ON chunks BEGIN "
        "INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', old.id, old.text); "
        "INSERT INTO chunks_fts(rowid, text) VALUES (new.id, new.text); END"
    )
    db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")


# SQL joining a chunk to its document and file, for filters on their columns.
_CHUNK_JOINS = (
    "JOIN documents ON chunks.document_id = documents.id JOIN files ON documents.file_id = files.id"
)


@dataclass(frozen=True)
class ChunkRow:
    """A chunk with what a hit needs from its document and file."""

    chunk_id: int
    path: str
    key: str
    title: str
    ordinal: int
    start: int
    end: int
    text: str


class Catalog:
    """The catalog of one index folder.

    >>> cat = Catalog(Path("index/catalog.db"))
    >>> cat.counts()
    {'files': 12, 'documents': 12, 'chunks': 80}
    """

    def __init__(self, path: Path, create: bool = False):
        self.path = Path(path)
        try:
            # Searches may run in a worker thread (the TUI); Index serialises access.
            conn = sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
            self.db = Database(conn)
            self.db.execute("PRAGMA schema_version").fetchone()
            if not create and not {"settings", "files", "documents", "chunks"} <= set(self.db.table_names()):
                conn.close()  # empty, or someone else's database: never add tables to it
                raise IndexCorrupt(f"{self.path}: not a searchkit catalog (a SQLite database without its tables)")
            self.db.enable_wal()
            self.db.execute("PRAGMA synchronous = FULL")
            migrations.apply(self.db)
        except sqlite3.DatabaseError as exc:
            raise IndexCorrupt(f"{self.path}: not a usable SQLite database ({exc})") from None

    def close(self) -> None:
        self.db.close()

    # -- settings -------------------------------------------------------------------------

    def settings(self) -> dict:
        return {row["key"]: json.loads(row["value"]) for row in self.db["settings"].rows}

    def put_settings(self, values: dict) -> None:
        self.db["settings"].upsert_all(
            ({"key": k, "value": json.dumps(v)} for k, v in values.items()), pk="key"
        )

    @property
    def generation(self) -> int:
        row = self.db.execute("SELECT value FROM settings WHERE key = 'generation'").fetchone()
        return int(json.loads(row[0])) if row else 0

    # -- reads ------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        return {t: self.db[t].count for t in ("files", "documents", "chunks")}

    def files(self) -> dict[str, dict]:
        """Every file row, by path."""
        return {row["path"]: row for row in self.db["files"].rows}

    def chunk_ids_of_files(self, file_ids: Sequence[int]) -> list[int]:
        if not file_ids:
            return []
        marks = ",".join("?" * len(file_ids))
        sql = (
            f"SELECT chunks.id FROM chunks JOIN documents ON chunks.document_id = documents.id "
            f"WHERE documents.file_id IN ({marks})"
        )
        return [r[0] for r in self.db.execute(sql, list(file_ids)).fetchall()]

    def chunk_ids(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT id FROM chunks ORDER BY id").fetchall()]

    def chunk_ids_where(self, where: tuple[str, Sequence]) -> list[int]:
        """Ids of the chunks whose document and file satisfy `where`, an SQL boolean over
        `files.*` and `documents.*` with its bound parameters (see `searchkit.filters`)."""
        sql, params = where
        query = f"SELECT chunks.id FROM chunks {_CHUNK_JOINS} WHERE {sql} ORDER BY chunks.id"
        return [r[0] for r in self.db.execute(query, list(params)).fetchall()]

    def lexical(self, match: str, k: int, where: tuple[str, Sequence] | None = None) -> list[tuple[int, float]]:
        """The k best (chunk id, BM25 score) for an FTS5 `match` expression, best first;
        higher scores are better (FTS5's bm25() negated). `where` as in `chunk_ids_where`."""
        if where and where[0]:
            sql = (
                "SELECT chunks_fts.rowid, bm25(chunks_fts) AS s FROM chunks_fts "
                f"JOIN chunks ON chunks.id = chunks_fts.rowid {_CHUNK_JOINS} "
                f"WHERE chunks_fts MATCH ? AND ({where[0]}) ORDER BY s, chunks_fts.rowid LIMIT ?"
            )
            params = [match, *where[1], int(k)]
        else:
            sql = (
                "SELECT rowid, bm25(chunks_fts) AS s FROM chunks_fts WHERE chunks_fts MATCH ? "
                "ORDER BY s, rowid LIMIT ?"
            )
            params = [match, int(k)]
        return [(int(r[0]), -float(r[1])) for r in self.db.execute(sql, params).fetchall()]

    def fts_count(self) -> int:
        """Rows in the full-text index itself (not its content table, which is `chunks`)."""
        return int(self.db.execute("SELECT count(*) FROM chunks_fts_docsize").fetchone()[0])

    def chunks(self, ids: Iterable[int]) -> dict[int, ChunkRow]:
        """The chunks with these ids (missing ids are left out)."""
        ids = [int(i) for i in ids]
        out: dict[int, ChunkRow] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            sql = (
                "SELECT chunks.id, files.path, documents.key, documents.title, chunks.ordinal, "
                "chunks.start, chunks.end, chunks.text FROM chunks "
                "JOIN documents ON chunks.document_id = documents.id "
                f"JOIN files ON documents.file_id = files.id WHERE chunks.id IN ({marks})"
            )
            for row in self.db.execute(sql, part).fetchall():
                out[row[0]] = ChunkRow(*row)
        return out

    def document_text(self, chunk_id: int) -> str:
        row = self.db.execute(
            "SELECT documents.text FROM chunks JOIN documents ON chunks.document_id = documents.id "
            "WHERE chunks.id = ?",
            [int(chunk_id)],
        ).fetchone()
        return row[0] if row else ""

    def last_run(self) -> dict | None:
        rows = list(self.db["runs"].rows_where(order_by="id desc", limit=1))
        if not rows:
            return None
        return {**rows[0], "summary": json.loads(rows[0]["summary"] or "{}")}

    # -- writes (callers wrap them in `self.write()` or `self.db.atomic()`) ----------------

    @contextlib.contextmanager
    def write(self) -> Iterator["Catalog"]:
        """One write transaction that takes SQLite's write lock at its start (BEGIN IMMEDIATE).

        A deferred BEGIN (`db.atomic()`) starts as a read and upgrades at its first write; if
        another connection wrote meanwhile (`verify`'s FTS integrity check, a repair), that
        upgrade fails at once with "database is locked", busy timeout or not. Taken at the
        start, the lock is waited for instead.

            >>> with catalog.write():
            ...     catalog.add_run(started, summary)
        """
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self
        except BaseException:
            if self.db.conn.in_transaction:
                self.db.conn.rollback()
            raise
        self.db.conn.commit()

    def remove_files(self, file_ids: Sequence[int]) -> None:
        for start in range(0, len(file_ids), 500):
            part = list(file_ids[start : start + 500])
            marks = ",".join("?" * len(part))
            self.db.execute(
                f"DELETE FROM chunks WHERE document_id IN "
                f"(SELECT id FROM documents WHERE file_id IN ({marks}))",
                part,
            )
            self.db.execute(f"DELETE FROM documents WHERE file_id IN ({marks})", part)
            self.db.execute(f"DELETE FROM files WHERE id IN ({marks})", part)

    def touch_files(self, stats: Sequence[tuple[int, int, float]]) -> None:
        """Record the new (size, mtime) of files whose content did not change, so the next
        scan skips them without hashing: (file id, size, mtime) triples."""
        for file_id, size, mtime in stats:
            self.db["files"].update(file_id, {"size": size, "mtime": mtime})

    def add_file(self, file: dict, documents: Sequence[tuple[dict, Sequence[dict]]]) -> None:
        """Insert one file row, its documents and their chunks (chunk ids given by the caller)."""
        file_id = self.db["files"].insert({**file, "ingested_at": time.time()}).last_pk
        for document, chunks in documents:
            doc_id = self.db["documents"].insert(
                {**document, "meta": json.dumps(document.get("meta") or {}), "file_id": file_id}
            ).last_pk
            self.db["chunks"].insert_all(({**c, "document_id": doc_id} for c in chunks))

    def add_run(self, started_at: float, summary: dict) -> None:
        self.db["runs"].insert(
            {"started_at": started_at, "finished_at": time.time(), "summary": json.dumps(summary)}
        )
