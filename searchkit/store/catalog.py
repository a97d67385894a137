"""The SQLite catalog: files, documents, chunks, the index's settings and its runs.

Written through sqlite-utils, schema changes as numbered migrations, every ingest step
committed in one transaction together with the vector generation it matches.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DiskFull, IndexCorrupt, IndexLocked, ReadOnlyIndex, SearchkitError
from .sqlite_import import load as _load_sqlite_utils

_sqlite_utils = _load_sqlite_utils()  # without pandas in the command (sqlite_import.py)
Database, Migrations = _sqlite_utils.Database, _sqlite_utils.Migrations

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


@migrations()
def m003_files_found_as(db: Database) -> None:
    """The path a file was found at before symlinks were resolved (`files.path` is the
    resolved one), so that removing a link drops the file it led to."""
    db["files"].add_column("found_as", str)
    db.execute("UPDATE files SET found_as = path")


@migrations()
def m004_segments(db: Database) -> None:
    """Vectors in segment files (store/segments.py): the live segments, and the ids that
    are dead in them (removed, excluded at search time until a merge drops them)."""
    db["segments"].create(
        {"id": int, "name": str, "count": int, "sha256": str, "kind": str, "bytes": int, "created_at": float},
        pk="id",
    )
    db["dead"].create({"id": int, "segment": int}, pk="id")
    db["dead"].create_index(["segment"])


@migrations()
def m005_chunk_positions(db: Database) -> None:
    """Where each chunk sits in its file: `page` (1-based, PDF), `line_start` and `line_end`
    (1-based, inclusive; text whose lines are the file's, and JSONL records). NULL where not
    known, and for every chunk of an index made before this migration: its ingest did not
    record them, and re-deriving them here would mean re-reading files that may have
    changed since. `ingest --rebuild` fills them in."""
    for column in ("page", "line_start", "line_end"):
        db["chunks"].add_column(column, int)


@migrations()
def m006_chunk_hashes_and_staging(db: Database) -> None:
    """Content-addressed chunks and files ingested in parts (store/staging.py).

    `chunks.hash` is the digest of the text a chunk's vector was made from, so a file
    ingested again embeds only the chunks whose text is new to it (NULL for chunks from
    before this migration: they are embedded again once). The `staged_*` tables hold a big
    file's chunks and vectors while it is ingested in parts: never searched, moved into
    `files`/`documents`/`chunks` by the commit that makes the whole file visible, and read
    back by the next ingest when a run was stopped part-way."""
    db["chunks"].add_column("hash", str)
    db["staged_files"].create({"id": int, "path": str, "started_at": float}, pk="id")
    db["staged_files"].create_index(["path"])
    db["staged_documents"].create(
        {"staged_id": int, "doc_index": int, "key": str, "title": str, "text": str, "meta": str},
        pk=("staged_id", "doc_index"),
    )
    db["staged_text"].create({"staged_id": int, "doc_index": int, "start": int, "text": str},
                             pk=("staged_id", "doc_index", "start"))
    db["staged_chunks"].create(
        {"staged_id": int, "seq": int, "doc_index": int, "ordinal": int, "start": int, "end": int, "text": str,
         "page": int, "line_start": int, "line_end": int, "hash": str, "vector": bytes},
        pk=("staged_id", "seq"),
    )


# Migrations a read-only catalog may lack and still be read: m005's columns read as NULL,
# m006's column and tables are only written and read by ingests.
READABLE_PENDING = {"m005_chunk_positions", "m006_chunk_hashes_and_staging"}

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
    page: int | None = None
    line_start: int | None = None
    line_end: int | None = None


REBUILD = "`searchkit ingest PATH... --rebuild` builds the index anew"


_SQLITE_IOERR, _SQLITE_FULL = 10, 13


def _disk_error(exc: sqlite3.Error) -> str:
    """"full", "io" (SQLite's "disk I/O error": a full disk where it grows its -shm or -wal
    files, or a failing device) or "" for an error that is not about the disk."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if code is not None else None  # the extended codes' low byte
    text = str(exc)
    if primary == _SQLITE_FULL or "disk is full" in text:
        return "full"
    if primary == _SQLITE_IOERR or "disk I/O error" in text:
        return "io"
    return ""


def _no_room(folder: Path) -> bool:
    """Less than 1 MiB free where the catalog is: too little for SQLite's -wal and -shm."""
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 2**20


def sql_error(path: Path, exc: sqlite3.Error, doing: str = "using") -> SearchkitError:
    """One line for what SQLite raised, naming the catalog and what to do. A disk problem
    is never called damage: the catalog is whole, and rebuilding it would be the wrong advice
    (`doing`: what was under way, for an I/O error that may not be a full disk)."""
    text = str(exc)
    disk = _disk_error(exc)
    if disk == "full" or (disk == "io" and _no_room(path.parent)):  # even a read writes the -shm
        return DiskFull(f"disk full while writing {path}; free some space and run the command again")
    if disk == "io":
        return DiskFull(f"disk full or I/O error while {doing} {path} ({text}); free some space and run the "
                        "command again")
    if "readonly" in text or "read-only" in text:
        return ReadOnlyIndex(f"{path}: read-only; searches work, writing needs a writable index folder")
    if "locked" in text or "busy" in text:
        return IndexLocked(f"{path}: busy ({text}); try again")
    return IndexCorrupt(f"{path}: damaged ({text}); `searchkit verify` tells what is wrong, {REBUILD}")


def _translated(method):
    """SQLite's errors from `method` become `sql_error`'s one-line `SearchkitError`s."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise sql_error(self.path, exc) from None

    return wrapper


class Catalog:
    """The catalog of one index folder.

    Opened read-write where the folder and the file can be written, else read-only (WAL
    needs its -shm file, so a read-only folder is opened `immutable`: nothing can change
    it meanwhile). Every SQLite error becomes a one-line `SearchkitError` (`sql_error`).

    >>> cat = Catalog(Path("index/catalog.db"))
    >>> cat.counts()
    {'files': 12, 'documents': 12, 'chunks': 80}
    """

    def __init__(self, path: Path, create: bool = False):
        self.path = Path(path)
        self.readonly = not create and self.path.exists() and not (
            os.access(self.path.parent, os.W_OK) and os.access(self.path, os.W_OK)
        )
        conn = None
        try:
            self.inode = os.stat(self.path).st_ino if self.path.exists() else None
            # Searches may run in a worker thread (the TUI); Index serialises access.
            conn = self._connect()
            self.db = Database(conn)
            self.db.execute("PRAGMA schema_version").fetchone()
            if not create and not {"settings", "files", "documents", "chunks"} <= set(self.db.table_names()):
                conn.close()  # empty, or someone else's database: never add tables to it
                raise IndexCorrupt(f"{self.path}: not a searchkit catalog (a SQLite database without its tables)")
            if self.readonly:
                # m005 only adds nullable columns, which reads take as NULL where absent: an
                # index from before it still answers searches on a read-only mount.
                if {m.name for m in migrations.pending(self.db)} - READABLE_PENDING:
                    raise ReadOnlyIndex(f"{self.path}: made by an older searchkit and read-only; open it once with "
                                        "write access (any ingest) to bring it up to date")
            else:
                self.db.enable_wal()
                self.db.execute("PRAGMA synchronous = FULL")
                migrations.apply(self.db)
            self.inode = self.inode or os.stat(self.path).st_ino
            self.positions_sql = (
                "chunks.page, chunks.line_start, chunks.line_end"
                if {"page", "line_start", "line_end"} <= set(self.db["chunks"].columns_dict)
                else "NULL AS page, NULL AS line_start, NULL AS line_end"  # read-only, from before m005
            )
        except sqlite3.DatabaseError as exc:
            if conn is not None:
                conn.close()  # not left to the garbage collector, holding the file open
            if _disk_error(exc) or "readonly" in str(exc):
                raise sql_error(self.path, exc, "opening") from None
            raise IndexCorrupt(f"{self.path}: not a usable SQLite database ({exc}); {REBUILD}") from None

    def _connect(self) -> sqlite3.Connection:
        if not self.readonly:
            return sqlite3.connect(str(self.path), timeout=30, check_same_thread=False)
        # A read-only folder: no -shm can be made there, so SQLite must take the file as
        # immutable, unless a writer left a WAL with its -shm (then read through both).
        wal, shm = (Path(f"{self.path}{suffix}") for suffix in ("-wal", "-shm"))
        live_wal = wal.exists() and wal.stat().st_size > 0 and shm.exists()
        flags = "mode=ro" + ("" if live_wal or os.access(self.path.parent, os.W_OK) else "&immutable=1")
        uri = f"file:{urllib.parse.quote(str(self.path))}?{flags}"
        return sqlite3.connect(uri, uri=True, timeout=30, check_same_thread=False)

    def replaced(self) -> bool:
        """True once another file took this catalog's name (a `--rebuild` swapped the folder):
        this connection still reads the old one."""
        try:
            return os.stat(self.path).st_ino != self.inode
        except FileNotFoundError:
            return False  # mid-swap on a system without an atomic exchange: look again later

    def close(self) -> None:
        self.db.close()

    # -- settings -------------------------------------------------------------------------

    @_translated
    def settings(self) -> dict:
        return {row["key"]: json.loads(row["value"]) for row in self.db["settings"].rows}

    @_translated
    def put_settings(self, values: dict) -> None:
        self.db["settings"].upsert_all(
            ({"key": k, "value": json.dumps(v)} for k, v in values.items()), pk="key"
        )

    @property
    @_translated
    def generation(self) -> int:
        row = self.db.execute("SELECT value FROM settings WHERE key = 'generation'").fetchone()
        return int(json.loads(row[0])) if row else 0

    # -- reads ------------------------------------------------------------------------------

    def quick_check(self) -> str:
        """'' when SQLite's `PRAGMA quick_check` finds the file sound, else its first finding."""
        try:
            rows = [r[0] for r in self.db.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.DatabaseError as exc:
            return str(exc)
        return "" if rows == ["ok"] else f"{rows[0]}" + (f" and {len(rows) - 1} more" if len(rows) > 1 else "")

    @_translated
    def counts(self) -> dict[str, int]:
        return {t: self.db[t].count for t in ("files", "documents", "chunks")}

    @_translated
    def files(self) -> dict[str, dict]:
        """Every file row, by path."""
        return {row["path"]: row for row in self.db["files"].rows}

    @_translated
    def chunk_ids_of_files(self, file_ids: Sequence[int]) -> list[int]:
        if not file_ids:
            return []
        marks = ",".join("?" * len(file_ids))
        sql = (
            f"SELECT chunks.id FROM chunks JOIN documents ON chunks.document_id = documents.id "
            f"WHERE documents.file_id IN ({marks})"
        )
        return [r[0] for r in self.db.execute(sql, list(file_ids)).fetchall()]

    @_translated
    def chunk_hashes_of_file(self, file_id: int) -> dict[str, int]:
        """Text hash -> chunk id of a file's chunks (those with a hash: made since m006)."""
        sql = ("SELECT chunks.hash, chunks.id FROM chunks JOIN documents ON chunks.document_id = documents.id "
               "WHERE documents.file_id = ? AND chunks.hash IS NOT NULL")
        return {h: i for h, i in self.db.execute(sql, [int(file_id)]).fetchall()}

    @_translated
    def chunk_ids(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT id FROM chunks ORDER BY id").fetchall()]

    @_translated
    def chunk_ids_where(self, where: tuple[str, Sequence]) -> list[int]:
        """Ids of the chunks whose document and file satisfy `where`, an SQL boolean over
        `files.*` and `documents.*` with its bound parameters (see `searchkit.filters`)."""
        sql, params = where
        query = f"SELECT chunks.id FROM chunks {_CHUNK_JOINS} WHERE {sql} ORDER BY chunks.id"
        return [r[0] for r in self.db.execute(query, list(params)).fetchall()]

    @_translated
    def chunk_paths(self) -> dict[int, str]:
        """Every chunk id with the path of its file (without the texts `chunks` reads)."""
        query = f"SELECT chunks.id, files.path FROM chunks {_CHUNK_JOINS}"
        return dict(self.db.execute(query).fetchall())

    @_translated
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

    @_translated
    def fts_count(self) -> int:
        """Rows in the full-text index itself (not its content table, which is `chunks`)."""
        return int(self.db.execute("SELECT count(*) FROM chunks_fts_docsize").fetchone()[0])

    @_translated
    def chunks(self, ids: Iterable[int]) -> dict[int, ChunkRow]:
        """The chunks with these ids (missing ids are left out)."""
        ids = [int(i) for i in ids]
        out: dict[int, ChunkRow] = {}
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ",".join("?" * len(part))
            sql = (
                "SELECT chunks.id, files.path, documents.key, documents.title, chunks.ordinal, "
                f"chunks.start, chunks.end, chunks.text, {self.positions_sql} FROM chunks "
                "JOIN documents ON chunks.document_id = documents.id "
                f"JOIN files ON documents.file_id = files.id WHERE chunks.id IN ({marks})"
            )
            for row in self.db.execute(sql, part).fetchall():
                out[row[0]] = ChunkRow(*row)
        return out

    @_translated
    def document_text(self, chunk_id: int) -> str:
        row = self.db.execute(
            "SELECT documents.text FROM chunks JOIN documents ON chunks.document_id = documents.id "
            "WHERE chunks.id = ?",
            [int(chunk_id)],
        ).fetchone()
        return row[0] if row else ""

    @_translated
    def segments(self) -> list[dict]:
        """The live segments, oldest first."""
        return list(self.db["segments"].rows_where(order_by="id"))

    @_translated
    def dead(self) -> list[tuple[int, int]]:
        """(chunk id, segment id) of every vector removed but still in a segment file."""
        return [(int(a), int(b)) for a, b in self.db.execute("SELECT id, segment FROM dead").fetchall()]

    @_translated
    def snapshot(self) -> tuple[dict, list[dict], list[tuple[int, int]]]:
        """Settings, segments and dead ids as one commit left them (one read transaction:
        a writer committing meanwhile cannot mix two generations)."""
        mine = not self.db.conn.in_transaction
        if mine:
            self.db.execute("BEGIN")
        try:
            return self.settings(), self.segments(), self.dead()
        finally:
            if mine and self.db.conn.in_transaction:
                self.db.conn.commit()

    @_translated
    def add_segment(self, row: dict) -> None:
        self.db["segments"].insert({**row, "created_at": time.time()})

    @_translated
    def drop_segments(self, segment_ids: Sequence[int]) -> None:
        """Forget merged segments and their dead ids (the merged segment holds neither)."""
        for segment_id in segment_ids:
            self.db.execute("DELETE FROM dead WHERE segment = ?", [int(segment_id)])
            self.db.execute("DELETE FROM segments WHERE id = ?", [int(segment_id)])

    @_translated
    def add_dead(self, pairs: Sequence[tuple[int, int]]) -> None:
        self.db["dead"].insert_all(({"id": i, "segment": s} for i, s in pairs), replace=True)

    @_translated
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
        try:
            self.db.execute("BEGIN IMMEDIATE")
            try:
                yield self
            except BaseException:
                if self.db.conn.in_transaction:
                    self.db.conn.rollback()
                raise
            self.db.conn.commit()
        except sqlite3.Error as exc:
            if self.db.conn.in_transaction:
                self.db.conn.rollback()
            raise sql_error(self.path, exc) from None

    @_translated
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

    @_translated
    def touch_files(self, stats: Sequence[tuple[int, int, float, str]]) -> None:
        """Record the new (size, mtime, found_as) of files whose content did not change, so
        the next scan skips them without hashing: (file id, size, mtime, found_as) tuples."""
        for file_id, size, mtime, found_as in stats:
            self.db["files"].update(file_id, {"size": size, "mtime": mtime, "found_as": found_as})

    @_translated
    def add_file(self, file: dict, documents: Sequence[tuple[dict, Sequence[dict]]]) -> None:
        """Insert one file row, its documents and their chunks (chunk ids given by the caller)."""
        file_id = self.db["files"].insert({**file, "ingested_at": time.time()}).last_pk
        for document, chunks in documents:
            doc_id = self.db["documents"].insert(
                {**document, "meta": json.dumps(document.get("meta") or {}), "file_id": file_id}
            ).last_pk
            self.db["chunks"].insert_all(({**c, "document_id": doc_id} for c in chunks))

    @_translated
    def add_run(self, started_at: float, summary: dict) -> None:
        self.db["runs"].insert(
            {"started_at": started_at, "finished_at": time.time(), "summary": json.dumps(summary)}
        )
