"""Regression tests for what a new user ran into (issue 12): user files the index must never
delete, one bad file or value that must not stop everything, results that must not go stale."""

import contextlib
import gc
import json
import os
from pathlib import Path

import pytest
from index_helpers import (
    chunks_of,
    fails_with,
    ingest_args,
    invoke,
    search_ok,
    verify_ok,
    write_corpus,
)

from searchkit.store.folder import is_index_file

GOOD = ["pass", "while", "lambda", "del"]


def ingest(corpus, index, model, *extra):
    result = invoke(*ingest_args(corpus, index, model, *extra))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.mark.parametrize("name, own", [
    ("catalog.db", True), ("catalog.db-wal", True), ("catalog.db-shm", True), ("catalog.db.new", True),
    ("catalog.db.new-wal", True), ("write.lock", True), ("vectors.000003.faiss", True),
    ("vectors.000003.faiss.tmp", True), ("vectors.1000000.faiss", True),
    ("segment.000012.faiss", True), ("segment.000012.faiss.tmp", True), ("segment.md", False),
    ("segment.000012.faiss.bak", False),
    ("vectors.md", False), ("vectors.old.txt", False), ("vectors.000001.faiss.bak", False),
    ("catalog.db.bak", False), ("catalog.dbx", False), ("write.lock.txt", False), ("vectors.12.faiss", False),
])
def test_index_file_names_are_exact(name, own):
    assert is_index_file(name) is own


def test_a_folder_indexed_into_itself_keeps_the_users_files(tmp_path, small_bert):
    notes = write_corpus(tmp_path / "notes", GOOD)
    (notes / "vectors.md").write_text("calc: the vectors of a matrix and their norms\n")
    (notes / "vectors.old.txt").write_text("x\n")
    summary = ingest(notes, notes, small_bert)
    assert (notes / "vectors.md").read_text().startswith("calc")
    assert (notes / "vectors.old.txt").exists()
    # The index's own files are not documents: neither seen nor skipped.
    assert summary["files_seen"] == len(GOOD) + 2
    assert not [s for s in summary["skipped"] if is_index_file(Path(s["path"]).name)]
    paths = {Path(p).name for p, *_ in chunks_of(notes)}
    assert "vectors.md" in paths
    # A user's backup beside the live vectors survives a re-ingest and a rebuild.
    live = next(notes.glob("segment.0*.faiss"))
    backup = notes / (live.name + ".bak")
    backup.write_bytes(live.read_bytes())
    (notes / "catalog.db.bak").write_bytes((notes / "catalog.db").read_bytes())
    (notes / "while.txt").write_text("while\n\nchanged text about loops")
    ingest(notes, notes, small_bert)
    assert backup.exists() and (notes / "catalog.db.bak").exists()
    rebuilt = ingest(notes, notes, small_bert, "--rebuild")
    assert not [s for s in rebuilt["skipped"] if is_index_file(Path(s["path"]).name)]
    assert backup.exists() and (notes / "catalog.db.bak").exists() and (notes / "vectors.md").exists()
    verify_ok(notes)
    assert search_ok(notes)


def test_a_file_name_that_is_not_utf8_is_skipped_not_fatal(tmp_path, small_bert):
    corpus = write_corpus(tmp_path / "corpus", GOOD)
    bad = os.fsdecode(b"r\xe9sum\xe9.txt")
    (corpus / bad).write_text("a resume with a latin-1 name", encoding="utf-8")
    (corpus / os.fsdecode(b"caf\xe9")).mkdir()
    (corpus / os.fsdecode(b"caf\xe9") / "menu.txt").write_text("coffee", encoding="utf-8")
    index = tmp_path / "index"
    summary = ingest(corpus, index, small_bert)
    assert summary["files_added"] == len(GOOD)
    reasons = {Path(s["path"]).name: s["reason"] for s in summary["skipped"]}
    assert reasons == {"r\\xe9sum\\xe9.txt": "name is not valid UTF-8 (rename it to index it)",
                       "caf\\xe9": "name is not valid UTF-8 (rename it to index it)"}
    human = invoke(*ingest_args(corpus, index, small_bert)[:-1])
    assert human.exit_code == 0, human.output
    assert f"skipped {corpus}/r\\xe9sum\\xe9.txt: name is not valid UTF-8" in human.stderr
    # Given by name, too.
    direct = invoke("ingest", corpus / bad, "--index", index, "--model", small_bert, "--json")
    assert direct.exit_code == 0 and json.loads(direct.stdout)["files_skipped"] == 1
    verify_ok(index)


def moved(tmp_path, small_bert):
    docs_a = write_corpus(tmp_path / "docsA", GOOD)
    index = tmp_path / "index"
    ingest(docs_a, index, small_bert)
    docs_b = tmp_path / "docsB"
    docs_a.rename(docs_b)
    return docs_a, docs_b, index


def test_a_folder_moved_away_is_dropped_by_naming_it(tmp_path, small_bert):
    docs_a, docs_b, index = moved(tmp_path, small_bert)
    summary = ingest(docs_b, index, small_bert)
    assert summary["files_added"] == len(GOOD) and summary["files_removed"] == 0
    # The old folder no longer exists, but the index has files from it: they go.
    gone = ingest(docs_a, index, small_bert)
    assert gone["files_removed"] == len(GOOD) and gone["files_seen"] == 0
    assert {Path(p).parent for p, *_ in chunks_of(index)} == {docs_b}
    # A path the index never had is still a mistake.
    fails_with(invoke(*ingest_args(tmp_path / "docsC", index, small_bert)), "docsC: no such file or directory")
    verify_ok(index)


def test_prune_drops_what_is_gone_anywhere(tmp_path, small_bert):
    docs_a, docs_b, index = moved(tmp_path, small_bert)
    summary = ingest(docs_b, index, small_bert, "--prune")
    assert summary["files_added"] == len(GOOD) and summary["files_removed"] == len(GOOD)
    assert {Path(p).parent for p, *_ in chunks_of(index)} == {docs_b}
    # --prune alone, no PATHS: only drops.
    (docs_b / "del.txt").unlink()
    alone = invoke("ingest", "--prune", "--index", index, "--model", small_bert, "--json")
    assert alone.exit_code == 0, alone.output
    assert json.loads(alone.stdout)["files_removed"] == 1
    verify_ok(index)
    usage = invoke("ingest", "--index", index)
    assert usage.exit_code == 2 and "give at least one PATH" in usage.stderr


def test_a_removed_symlink_drops_the_file_it_led_to(tmp_path, small_bert):
    outside = write_corpus(tmp_path / "outside", ["lambda"])
    docs = write_corpus(tmp_path / "docs", ["pass", "while"])
    (docs / "linked.txt").symlink_to(outside / "lambda.txt")
    index = tmp_path / "index"
    assert ingest(docs, index, small_bert)["files_added"] == 3
    (docs / "linked.txt").unlink()
    summary = ingest(docs, index, small_bert)
    assert summary["files_removed"] == 1
    assert (outside / "lambda.txt").exists()
    # A link out of the folder is indexed at the link (readers.walk): its chunks went with it.
    assert not [c for c in chunks_of(index) if c[0].endswith(("lambda.txt", "linked.txt"))]
    # And through --prune alone: a removed link is a file gone.
    (docs / "linked.txt").symlink_to(outside / "lambda.txt")
    assert ingest(docs, index, small_bert)["files_added"] == 1
    (docs / "linked.txt").unlink()
    pruned = invoke("ingest", "--prune", "--index", index, "--model", small_bert, "--json")
    assert json.loads(pruned.stdout)["files_removed"] == 1
    assert not [c for c in chunks_of(index) if c[0].endswith("linked.txt")]
    # A link re-pointed into the folder: its file is taken once, and what it led to is dropped.
    (docs / "linked.txt").symlink_to(outside / "lambda.txt")
    ingest(docs, index, small_bert)
    (docs / "linked.txt").unlink()
    (docs / "linked.txt").symlink_to(docs / "pass.txt")
    again = ingest(docs, index, small_bert)
    assert again["files_removed"] == 1 and again["files_added"] == 0
    assert not [c for c in chunks_of(index) if c[0].endswith("linked.txt")]
    verify_ok(index)


def test_names_are_printed_literally_not_as_markup(tmp_path, small_bert):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "[red]alert.txt").write_text("alert: the red alarm rings when the loop fails", encoding="utf-8")
    (corpus / "[draft] plan.md").write_text("# Plan\n\nthe draft plan for the loop", encoding="utf-8")
    (corpus / "[bold]x.png").write_bytes(b"\x89PNG")
    index = tmp_path / "odd [/b] name"
    human = invoke(*ingest_args(corpus, index, small_bert)[:-1])
    assert human.exit_code == 0, (human.output, human.exception)
    assert f"-> {index}" in human.stdout
    assert "skipped " + str(corpus / "[bold]x.png") + ": unsupported type .png" in human.stderr
    hits = invoke("search", "the loop fails", "--index", index, "-k", "2")
    assert hits.exit_code == 0, hits.output
    assert "[red]alert.txt" in hits.stdout and "[draft] plan.md" in hits.stdout
    info = invoke("info", "--index", index)
    assert info.exit_code == 0 and "[/b]" in info.stdout
    verified = invoke("verify", "--index", index)
    assert verified.exit_code == 0 and "odd [/b] name is consistent" in verified.stdout


# -- a damaged catalog, a full disk, a read-only folder ----------------------------------------


def damage_pages(db: Path, table: str | None) -> None:
    """Overwrite the header of the root page of `table` (its rows become unreadable, the rest
    of the file stays sound), or of every page but the schema's (`table=None`)."""
    import sqlite3

    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # every page in the file itself, none in the WAL
    (root,) = conn.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", [table]).fetchone() if table else (0,)
    conn.close()
    pages = [root - 1] if table else range(1, db.stat().st_size // 4096)
    with open(db, "r+b") as fh:
        for page in pages:
            fh.seek(page * 4096)
            fh.write(b"\xde\xad\xbe\xef" * 16)


@pytest.fixture
def built(tmp_path, small_bert):
    corpus = write_corpus(tmp_path / "corpus", ["pass", "while", "lambda", "del", "for", "if", "try", "with"])
    index = tmp_path / "index"
    ingest(corpus, index, small_bert)
    return corpus, index


@pytest.mark.parametrize("table, says", [
    ("chunks", "catalog.db: damaged (database disk image is malformed)"),  # found when a hit is read
    (None, "catalog.db: not a usable SQLite database"),  # found on opening
])
def test_a_damaged_catalog_gives_one_line_everywhere(built, small_bert, table, says):
    corpus, index = built
    damage_pages(index / "catalog.db", table)
    for mode in ("dense", "lexical", "hybrid"):
        fails_with(invoke("search", "loop over a sequence", "--index", index, "--mode", mode), says, "--rebuild")
    for args in (["verify"], ["verify", "--repair"]):
        result = invoke(*args, "--index", index)
        assert result.exit_code == 1 and "Traceback" not in result.output, result.output
        lines = result.stderr.strip().splitlines()
        if table:
            assert lines == [f"searchkit: {index}: catalog.db: damaged SQLite file (database disk image is malformed)",
                             "searchkit: the catalog cannot be mended in place: rebuild it with "
                             f"`searchkit ingest PATH... --index {index} --rebuild`"], lines
        else:
            fails_with(result, says, "--rebuild")
    # The fix it names works.
    ingest(corpus, index, small_bert, "--rebuild")
    verify_ok(index)


def test_verify_names_the_fix(built):
    _, index = built
    from index_helpers import query

    (chunk_id,) = query(index, "SELECT min(id) FROM chunks")[0]
    import sqlite3

    db = sqlite3.connect(index / "catalog.db")
    db.execute("DELETE FROM chunks WHERE id = ?", [chunk_id])
    db.commit()
    db.close()
    result = invoke("verify", "--index", index)
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == (
        f"searchkit: `searchkit verify --repair --index {index}` re-embeds what disagrees (from the catalog's text)")
    assert json.loads(invoke("verify", "--index", index, "--json").stdout)["advice"]
    assert invoke("verify", "--repair", "--index", index).exit_code == 0
    verify_ok(index)


def test_a_damaged_vectors_file_is_refused_not_searched(built):
    _, index = built
    vectors = next(index.glob("segment.*.faiss"))
    data = bytearray(vectors.read_bytes())
    data[len(data) // 2 : len(data) // 2 + 200] = b"\x7f" * 200  # floats of about 3.4e38
    vectors.write_bytes(bytes(data))
    fails_with(invoke("search", "loop", "--index", index), "damaged since it was written", "verify --repair")
    assert invoke("verify", "--repair", "--index", index).exit_code == 0
    verify_ok(index)


def test_impossible_scores_are_caught_in_memory(built, small_bert):
    """Vectors damaged after loading (no file to hash): a score past the query's norm."""
    from searchkit import open_index
    from searchkit.errors import IndexCorrupt

    _, index = built
    idx = open_index(index, model=small_bert)
    assert idx.search("loop", k=3)
    [segment] = idx.vectors.loaded.values()
    flat = segment.index  # IDMap2 over a flat index: poke its raw floats
    import faiss

    raw = faiss.rev_swig_ptr(faiss.downcast_index(flat.index).get_xb(), flat.ntotal * flat.d)
    raw[:] = 3.8e37
    with pytest.raises(IndexCorrupt, match="impossible for unit vectors"):
        idx.search("loop", k=3)


def mount_or_skip(*args: str) -> None:
    import subprocess

    if os.geteuid() != 0:
        pytest.skip("needs root to mount")
    done = subprocess.run(["mount", *args], capture_output=True, text=True)
    if done.returncode:
        pytest.skip(f"mount {' '.join(args)}: {done.stderr.strip()}")


@contextlib.contextmanager
def read_only_view(folder: Path, where: Path):
    """`folder` bind-mounted read-only at `where` (a read-only mount, as root sees one)."""
    import subprocess

    where.mkdir()
    mount_or_skip("--bind", str(folder), str(where))
    try:
        done = subprocess.run(["mount", "-o", "remount,bind,ro", str(where)], capture_output=True, text=True)
        if done.returncode:
            pytest.skip(f"remount read-only: {done.stderr.strip()}")
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


@pytest.fixture
def small_disk(tmp_path):
    """A 6 MB tmpfs: room for a small index, and easy to fill."""
    import subprocess

    mnt = tmp_path / "disk"
    mnt.mkdir()
    mount_or_skip("-t", "tmpfs", "-o", "size=6M", "tmpfs", str(mnt))
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path, leave_kb: int) -> None:
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(disk / "filler", "wb") as fh:
        fh.write(b"\0" * max(0, free - leave_kb * 1024))


def test_disk_full_is_one_line_and_keeps_the_last_commit(small_disk, tmp_path, small_bert):
    corpus = write_corpus(tmp_path / "corpus", GOOD)
    index = small_disk / "index"
    # A new index on a full disk.
    fill(small_disk, 0)
    fails_with(invoke(*ingest_args(corpus, index, small_bert)), "disk full while writing")
    (small_disk / "filler").unlink()
    ingest(corpus, index, small_bert)
    before = chunks_of(index)
    # An update that cannot write its vectors file: the temporary file goes, the commit stays.
    write_corpus(corpus, ["for", "if", "try", "with", "class", "global"])
    fill(small_disk, 20)
    fails_with(invoke(*ingest_args(corpus, index, small_bert)), "disk full while writing")
    assert not list(index.glob("*.tmp")) and not list(index.glob("catalog.db.new*"))
    assert chunks_of(index) == before
    verify_ok(index)
    (small_disk / "filler").unlink()
    assert ingest(corpus, index, small_bert)["files_added"] == 6


READERS = (["search", "loop"], ["info"], ["verify"], ["verify", "--repair"], ["optimize"])


def test_a_full_disk_is_named_by_every_command_never_damage(small_disk, tmp_path, small_bert):
    """Opening a catalog in WAL mode writes its -shm: on a full disk SQLite says "disk I/O
    error", which must not read as a damaged catalog to rebuild (it is whole)."""
    corpus = write_corpus(tmp_path / "corpus", GOOD)
    index = small_disk / "index"
    ingest(corpus, index, small_bert)
    before = chunks_of(index)
    gc.collect()  # close the connections the in-process ingest left open
    for path in index.glob("catalog.db-*"):
        path.unlink()  # as after the last connection closed: the next open makes them anew
    fill(small_disk, 0)
    for args in [*READERS, ingest_args(corpus, index, small_bert)]:
        err = fails_with(invoke(*args, "--index", index), "disk full while writing", index / "catalog.db",
                         "free some space")
        assert "rebuild" not in err and "damaged" not in err, err
    (small_disk / "filler").unlink()
    assert chunks_of(index) == before
    verify_ok(index)
    search_ok(index)


def _failing_sqlite(monkeypatch, error: str, when=lambda sql: True):
    """Catalog connections whose statements raise OperationalError(`error`) where `when(sql)`."""
    import sqlite3

    from searchkit.store import catalog

    class Failing(sqlite3.Connection):
        def execute(self, sql, *args):
            if when(sql):
                raise sqlite3.OperationalError(error)
            return super().execute(sql, *args)

    connect = sqlite3.connect
    monkeypatch.setattr(catalog.sqlite3, "connect", lambda *a, **kw: connect(*a, factory=Failing, **kw))


def test_a_disk_io_error_on_opening_is_not_called_damage(built, small_bert, monkeypatch):
    corpus, index = built
    before = chunks_of(index)
    with monkeypatch.context() as patched:
        _failing_sqlite(patched, "disk I/O error")
        for args in [*READERS, ingest_args(corpus, index, small_bert)]:
            err = fails_with(invoke(*args, "--index", index), "disk full or I/O error while opening",
                             index / "catalog.db", "(disk I/O error)", "free some space")
            assert "rebuild" not in err and "not a usable" not in err, err
        patched.setattr("searchkit.store.catalog._no_room", lambda folder: True)  # the disk is full
        fails_with(invoke("search", "loop", "--index", index), "disk full while writing", index / "catalog.db")
    assert chunks_of(index) == before
    verify_ok(index)
    search_ok(index)


@pytest.mark.parametrize("error", ["database or disk is full", "disk I/O error"])
def test_a_disk_error_while_writing_keeps_the_last_commit(built, small_bert, monkeypatch, error):
    corpus, index = built
    before = chunks_of(index)
    write_corpus(corpus, ["class", "global"])
    with monkeypatch.context() as patched:
        _failing_sqlite(patched, error, when=lambda sql: sql.lstrip().upper().startswith("INSERT"))
        err = fails_with(invoke(*ingest_args(corpus, index, small_bert)), "disk full", index / "catalog.db",
                         "free some space")
        assert "rebuild" not in err, err
    assert chunks_of(index) == before
    verify_ok(index)
    assert ingest(corpus, index, small_bert)["files_added"] == 2


def test_a_read_only_index_searches_and_refuses_to_write(built, tmp_path, small_bert):
    corpus, index = built
    with read_only_view(index, tmp_path / "ro") as ro:
        for mode in ("dense", "lexical", "hybrid"):
            result = invoke("search", "loop over a sequence", "--index", ro, "--mode", mode, "--json")
            assert result.exit_code == 0 and json.loads(result.stdout), result.output
        assert invoke("info", "--index", ro).exit_code == 0
        checked = invoke("verify", "--index", ro)
        assert checked.exit_code == 0 and "is consistent" in checked.stdout, checked.output
        assert "the catalog is read-only" in checked.stderr
        fails_with(invoke(*ingest_args(corpus, ro, small_bert)), "read-only")
        assert invoke("verify", "--repair", "--index", ro).exit_code == 0  # nothing to mend: nothing written
    verify_ok(index)


def test_a_read_only_index_from_before_line_numbers_still_searches(built, tmp_path):
    """m005 (chunk page and lines) cannot be applied to a read-only catalog; its columns
    are read as NULL instead of the index refusing every search."""
    import sqlite3

    corpus, index = built
    db = sqlite3.connect(index / "catalog.db")  # as an index made before m005
    with db:
        for column in ("page", "line_start", "line_end"):
            db.execute(f"ALTER TABLE chunks DROP COLUMN {column}")
        db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm005_chunk_positions'")
    db.close()
    with read_only_view(index, tmp_path / "ro") as ro:
        for mode in ("dense", "lexical", "hybrid"):
            result = invoke("search", "loop over a sequence", "--index", ro, "--mode", mode, "--json")
            assert result.exit_code == 0, result.output
            hits = json.loads(result.stdout)
            assert hits and all((h["page"], h["line_start"], h["line_end"]) == (None, None, None) for h in hits)


def test_a_long_lived_reader_follows_a_rebuild(built, tmp_path, small_bert):
    """An `open_index` held across another process's `--rebuild` (as the TUI holds one)
    reopens the new index, with its model, instead of serving the old one forever."""
    from tiny_models import make_small_bert

    from searchkit import open_index

    corpus, index = built
    reader = open_index(index)
    assert reader.search("loop", k=1)
    assert reader.info()["chunks"] > 0
    other = make_small_bert(tmp_path / "other-model", hidden=48)
    new_corpus = write_corpus(tmp_path / "new-corpus", ["class", "global"])
    ingest(new_corpus, index, other, "--rebuild")
    hits = reader.search("a class definition", k=50)
    assert {Path(h.path).parent for h in hits} == {new_corpus}
    assert reader.encoder.dim == 48
    assert reader.info()["files"] == 2


# -- values: range errors, consistent refusals, the parameter the caller used -------------------


@pytest.mark.parametrize("args, says", [
    (["--ef-search", "1099511627776"], "index parameter efSearch=1099511627776: must be from 1 to 1,048,576"),
    (["-k", "1099511627776"], "-k 1099511627776: at most 1,000,000 hits a query"),
    (["-k", "99999999999999999999999", "--mode", "lexical"], "at most 1,000,000 hits a query"),
])
def test_huge_numbers_are_range_errors(built, args, says):
    _, index = built
    fails_with(invoke("search", "loop", "--index", index, *args), says)


def test_huge_index_params_are_range_errors(built, tmp_path, small_bert):
    corpus, index = built
    fails_with(invoke(*ingest_args(corpus, tmp_path / "h", small_bert, "--index-type", "hnsw",
                                       "--index-param", "M=1099511627776")), "M=1099511627776: must be from 2 to 256")
    assert not (tmp_path / "h").exists()  # a refused new index leaves no folder behind
    fails_with(invoke(*ingest_args(corpus, index, small_bert, "--index-param", "efSearch=1099511627776")),
                   "efSearch=1099511627776")


def test_chunk_settings_are_never_silently_ignored(built, tmp_path, small_bert):
    corpus, index = built
    fails_with(invoke(*ingest_args(corpus, tmp_path / "new", small_bert)[:-1], "--chunk-tokens", "0"),
                   "--chunk-tokens 0: must be a whole number from 8 to")
    assert not (tmp_path / "new").exists()
    # ingest_args asks for the 64 the index was built with: fine. Another value is refused.
    ingest(corpus, index, small_bert)
    for flag, value in (("--chunk-tokens", "32"), ("--chunk-overlap", "3"), ("--chunking", "whole")):
        fails_with(invoke("ingest", corpus, "--index", index, "--model", small_bert, flag, value),
                       f"{flag} ", "was built with", "--rebuild")


def test_python_callers_are_told_the_parameter_they_used(built, small_bert):
    from searchkit import load_encoder, open_index
    from searchkit.errors import BadInput

    _, index = built
    idx = open_index(index, model=small_bert)
    cases = [
        (lambda: idx.search("loop", k=0), "k=0: must be a positive integer"),
        (lambda: idx.search("loop", mode="fuzzy"), "mode='fuzzy': expected dense, lexical, hybrid"),
        (lambda: idx.search("loop", where="field.year=>2019"), "where='field.year=>2019': "),
        (lambda: idx.search(["a", "b"]), "query=['a', 'b']: expected a string (search_many takes a list"),
        (lambda: idx.search_many(["a", 3]), "queries=['a', 3]: query 2 is a int, not a string"),
        (lambda: idx.search_many(["a", " "]), "query 2 is empty"),
        (lambda: open_index(index, chunking="lines"), "chunking='lines': expected chunks or whole"),
        (lambda: open_index(index, model=small_bert, chunk_tokens=32).ingest([built[0]]), "chunk_tokens=32: "),
        (lambda: load_encoder(small_bert, dtype="fp8"), "dtype='fp8': expected"),
        (lambda: load_encoder(small_bert, pooling="median"), "pooling='median': expected"),
    ]
    for call, says in cases:
        with pytest.raises(BadInput) as info:
            call()
        assert str(info.value).startswith(says), (str(info.value), says)
        assert "--" not in str(info.value).split(":")[0]
    # ... and on the command line, the flag.
    fails_with(invoke("search", "loop", "--index", index, "-k", "0"), "-k 0: must be a positive integer")
    fails_with(invoke("search", "loop", "--index", index, "--where", "field.year=>2019"), "--where 'field.year=>2019'")
    fails_with(invoke("embed", "x", "--model", small_bert, "--dtype", "fp8"), "--dtype 'fp8': expected")


def test_a_jsonl_record_with_a_lone_surrogate_is_one_problem(tmp_path, small_bert):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "records.jsonl").write_text('{"_id": "a", "text": "caf\\udce9 au lait"}\n'
                                          '{"_id": "b", "text": "tea with milk"}\n'
                                          '{"_id": "c", "text": "ok", "note": "\\ud83d\\ude00"}\n', encoding="utf-8")
    summary = ingest(corpus, tmp_path / "index", small_bert)
    assert summary["problems"] == ["records.jsonl line 1: a string holds a lone surrogate escape (not valid Unicode)"]
    assert sorted(key for _, key, *_ in chunks_of(tmp_path / "index")) == ["b", "c"]  # a real pair is fine
