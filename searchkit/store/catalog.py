"""The SQLite catalog: files, documents, chunks, the index's settings and its runs.

Written through sqlite-utils, schema changes as numbered migrations, every ingest step
committed in one transaction together with the vector generation it matches.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterable, Sequence
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
            if create or self.db.table_names():
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

    # -- writes (callers wrap them in `self.db.atomic()`) ----------------------------------

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
