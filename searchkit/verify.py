"""Consistency checks of an index folder, and the repairs that SQLite makes possible.

The catalog is the source of truth: vectors can always be re-embedded from chunk text,
so `repair` rebuilds what disagrees with it and never drops a document.
"""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, dataclass, field

import numpy as np

from .errors import SearchkitError
from .hashing import sha256_file
from .index import Index
from .store.staging import Staging
from .store.vectors import DAMAGED

DAMAGED_CATALOG = "damaged SQLite file"
REBUILD_HINT = "the catalog cannot be mended in place: rebuild it with `searchkit ingest PATH... --index DIR --rebuild`"
REPAIR_HINT = "`searchkit verify --repair --index DIR` re-embeds what disagrees (from the catalog's text)"


@dataclass
class VerifyReport:
    index: str
    ok: bool = True
    problems: list[str] = field(default_factory=list)
    counts: dict = field(default_factory=dict)
    repaired: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # checks left out, and why
    advice: str = ""  # what to run about the problems, when there are any

    def fail(self, message: str) -> None:
        self.ok = False
        self.problems.append(message)

    def to_dict(self) -> dict:
        return asdict(self)


def verify(index: Index) -> VerifyReport:
    """Check settings, vectors file, id agreement and row links; never raises for what it finds.

    An ingest in another process may commit (and drop the old vectors file) while the checks
    read: when something looked wrong and the generation moved on meanwhile, check again."""
    for _ in range(3):
        generation = index.catalog.generation
        report = _verify_once(index)
        if report.ok or index.catalog.generation == generation:
            break
    if not report.ok and not report.advice:
        report.advice = REPAIR_HINT
    return report


def _verify_once(index: Index) -> VerifyReport:
    report = VerifyReport(str(index.folder))
    catalog = index.catalog  # IndexNotFound / IndexCorrupt for a missing or non-SQLite catalog
    damage = catalog.quick_check()
    if damage:
        report.fail(f"{catalog.path.name}: {DAMAGED_CATALOG} ({damage})")
        report.advice = REBUILD_HINT
        return report  # nothing else read from it can be trusted
    try:
        _check(index, catalog, report)
    except SearchkitError as exc:  # a damaged page quick_check did not reach, say
        report.fail(str(exc))
    return report


def _check(index: Index, catalog, report: VerifyReport) -> None:
    settings = index.settings  # IndexCorrupt for a format newer than this searchkit reads
    missing = settings.missing()
    if missing:
        report.fail(f"settings missing: {', '.join(missing)}")
    report.counts = {**catalog.counts(), "generation": catalog.generation}
    broken: list = []  # read anew, damaged or not: what is in the files is what is checked
    vectors = index.load_vectors(check_sha256=False, broken=broken)
    for _, why in broken:  # (missing: a commit elsewhere merged it away; `verify` retries)
        report.fail(why)
    for segment_id, loaded in vectors.loaded.items():
        row = vectors.rows[segment_id]
        digest = loaded.file_sha256 or sha256_file(index.folder / row.name)  # (a mapped one was not hashed)
        if row.sha256 and digest != row.sha256:
            report.fail(f"{index.folder / row.name}: {DAMAGED}")
    report.counts["vectors"] = vectors.count
    report.counts["segments"] = len(vectors.loaded)
    if settings.dim and vectors.dim != settings.dim:
        report.fail(f"vectors have dim {vectors.dim}, settings say {settings.dim}")
    held = vectors.ids()
    faiss_ids = set(held.tolist())
    chunk_ids = set(catalog.chunk_ids())
    if len(faiss_ids) != len(held):
        report.fail(f"segments hold duplicate live ids ({len(held)} vectors, {len(faiss_ids)} ids)")
    if chunk_ids - faiss_ids:
        report.fail(f"{len(chunk_ids - faiss_ids)} chunks have no vector (e.g. id {min(chunk_ids - faiss_ids)})")
    if faiss_ids - chunk_ids:
        report.fail(f"{len(faiss_ids - chunk_ids)} vectors have no chunk row (e.g. id {min(faiss_ids - chunk_ids)})")
    next_id = settings.next_chunk_id
    if "next_chunk_id" not in missing and chunk_ids and max(chunk_ids) >= next_id:
        report.fail(f"chunk id {max(chunk_ids)} is not below next_chunk_id {next_id}")
    db = catalog.db
    orphans = {
        "chunks without a document": "SELECT count(*) FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)",
        "documents without a file": "SELECT count(*) FROM documents WHERE file_id NOT IN (SELECT id FROM files)",
    }
    for what, sql in orphans.items():
        n = db.execute(sql).fetchone()[0]
        if n:
            report.fail(f"{n} {what}")
    n = _chunks_not_slices(db)
    if n:
        report.fail(f"{n} chunks whose text is not their document's slice")
    # A file is never half visible: each document's chunks are all of them, 0..n-1. A gap
    # can only be a row deleted by hand; searches stay right, so it is noted, not failed.
    gaps = db.execute("SELECT count(*) FROM (SELECT document_id FROM chunks GROUP BY document_id "
                      "HAVING count(*) != max(ordinal) + 1 OR min(ordinal) != 0)").fetchone()[0]
    if gaps:
        report.notes.append(f"{gaps} documents have chunks missing (ordinals with gaps): a file half "
                            "visible; ingesting it again after `touch`, or `ingest --rebuild`, restores it")
    _note_staged(catalog, report)
    _verify_fts(catalog, report)


def _chunks_not_slices(db) -> int:
    """Chunks whose text is not `document.text[start:end]`. Each document's text is read
    once: SQL's substr() walks a UTF-8 text from its start for every chunk, which for a
    50 MB file of 28,000 chunks took over a quarter of an hour."""
    bad = 0
    for doc_id, text in db.execute("SELECT id, text FROM documents"):
        text = text or ""
        for start, end, chunk in db.execute("SELECT start, end, text FROM chunks WHERE document_id = ?", [doc_id]):
            bad += text[start:end] != chunk
    return bad


def _note_staged(catalog, report: VerifyReport) -> None:
    """Files an ingest was stopped in the middle of: staged, never searched, resumed by the
    next ingest of their path (store/staging.py)."""
    if catalog.readonly and "staged_files" not in catalog.db.table_names():
        return  # made before staging existed
    staged = Staging(catalog).paths()
    if staged:
        report.counts["staged_chunks"] = sum(staged.values())
    for path, n in staged.items():
        report.notes.append(f"{path}: {n:,} chunks staged by an ingest that stopped part-way (not searched; "
                            "the next ingest of it resumes from them)")


def _verify_fts(catalog, report: VerifyReport) -> None:
    """The full-text index holds one row per chunk, and its terms match the chunks' text."""
    try:
        report.counts["fts_rows"] = fts = catalog.fts_count()
        if fts != report.counts["chunks"]:
            report.fail(f"full-text index holds {fts} rows for {report.counts['chunks']} chunks")
            return
        if catalog.readonly:  # FTS5's integrity check is written as an INSERT
            report.notes.append("full-text index terms not checked: the catalog is read-only")
            return
        catalog.db.execute("INSERT INTO chunks_fts(chunks_fts, rank) VALUES ('integrity-check', 1)")
    except sqlite3.DatabaseError as exc:
        report.fail(f"full-text index: {exc}")


def repair(index: Index) -> VerifyReport:
    """Make the vectors agree with the catalog: embed chunks that lack a vector, drop
    vectors without a chunk, drop orphan rows; commit it as a new generation."""
    before = verify(index)
    if before.ok or any(DAMAGED_CATALOG in p for p in before.problems):
        return before  # SQLite's own pages are beyond repair here: the report says --rebuild
    catalog = index.catalog
    with index.writer(repair=True) as writer:
        repaired = []
        db = catalog.db
        with catalog.write():
            n = db.execute("DELETE FROM chunks WHERE document_id NOT IN (SELECT id FROM documents)").rowcount
            if n:
                repaired.append(f"dropped {n} chunks without a document")
            if any(p.startswith("full-text index") for p in before.problems):
                db.execute("INSERT INTO chunks_fts(chunks_fts) VALUES ('rebuild')")
                repaired.append("rebuilt the full-text index from the chunks")
        # damaged or unreadable segments: dropped, their chunks re-embedded
        writer.drop_segments([row.id for row, _ in writer.broken])
        for row, _ in writer.broken:
            repaired.append(f"{row.name} unreadable or damaged: dropped, its chunks re-embedded")
        chunk_ids = set(catalog.chunk_ids())
        faiss_ids = set(writer.vectors.ids().tolist())
        stray = np.array(sorted(faiss_ids - chunk_ids), dtype=np.int64)
        if len(stray):
            writer.remove_vectors(stray)
            repaired.append(f"dropped {len(stray)} vectors without a chunk")
        lacking = sorted(chunk_ids - set(writer.vectors.ids().tolist()))
        if lacking:
            rows = catalog.chunks(lacking)
            # re-embedded from the text, never reconstructed (ivfpq's reconstructions are approximate)
            writer.add_vectors(np.array(lacking, dtype=np.int64), index.encoder.encode_documents([rows[i].text for i in lacking]))
            repaired.append(f"embedded {len(lacking)} chunks that had no vector")
        writer.next_id = max(max(chunk_ids, default=0) + 1, writer.next_id)
        writer.commit()
    after = verify(index)
    after.repaired = repaired
    if not after.ok:
        after.advice = REBUILD_HINT
    return after
