"""One writer at a time; readers in other processes keep working during an ingest and see
its last committed generation, never a half of one."""

import fcntl
import json
import os
import time

import pytest
from click.testing import CliRunner
from index_helpers import (
    fails_with,
    finish,
    generation,
    ingest_args,
    kill,
    query,
    start,
    wait_for,
    write_corpus,
)

import searchkit
from searchkit.cli import main
from searchkit.store.folder import FolderLock
from searchkit.store.vectors import FaissVectors


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"))


def test_second_writer_is_refused_at_once(tmp_path, corpus, small_bert):
    index = tmp_path / "index"
    # The writer waits after its first commit, so it is surely still running when refused.
    proc = start(ingest_args(corpus, index, small_bert, "--commit-chunks", "8"),
                 SEARCHKIT_TEST_PAUSE_AT="after-sqlite-commit:1")
    try:
        wait_for(lambda: generation(index) >= 1, proc)
        started = time.monotonic()
        result = CliRunner().invoke(main, ingest_args(corpus, index, small_bert))
        took = time.monotonic() - started
        assert proc.poll() is None, "the first ingest ended too soon for the test to mean anything"
    finally:
        kill(proc)
    assert result.exit_code == 1
    err = result.stderr.strip()
    assert err.splitlines() == [err] and err.startswith("searchkit: error: ")
    assert f"searchkit ingest (pid {proc.pid}) is writing to this index" in err
    assert took < 5  # refused before loading any model


@pytest.mark.parametrize("purpose", ["verify --repair", "optimize", "ingest --rebuild"])
def test_a_refused_writer_is_told_what_holds_the_lock(tmp_path, corpus, small_bert, purpose):
    index = tmp_path / "index"
    assert CliRunner().invoke(main, ingest_args(corpus / "pass.txt", index, small_bert)).exit_code == 0
    with FolderLock(index, purpose):  # a second open file: flock refuses it even in this process
        for args in (ingest_args(corpus, index, small_bert), ["optimize", "--index", str(index)]):
            fails_with(CliRunner().invoke(main, args),
                       f"searchkit {purpose} (pid {os.getpid()}) is writing to this index", "try again")


def test_the_lock_file_names_the_command(tmp_path, corpus, small_bert):
    index = tmp_path / "index"
    assert CliRunner().invoke(main, ingest_args(corpus / "pass.txt", index, small_bert)).exit_code == 0
    searchkit.open_index(index).optimize()
    assert (index / "write.lock").read_text() == f"searchkit optimize (pid {os.getpid()})"
    (index / "write.lock").write_text("pid 12")  # left by an older searchkit, and held
    with open(index / "write.lock") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fails_with(CliRunner().invoke(main, ["optimize", "--index", str(index)]),
                   "another process (pid 12) is writing to this index")


def test_searches_during_an_ingest_see_committed_states(tmp_path, corpus, small_bert):
    """Search again and again, from one long-lived Index (as the TUI holds one) and from
    fresh CLI invocations, and verify, while another process ingests and commits every 4
    chunks. The writer rests 0.2 s after each commit: unpaced, a CI machine once finished
    every commit before the first search returned, and the 10 searches left all saw the
    last generation."""
    index = tmp_path / "index"
    reader = searchkit.open_index(index, model=small_bert, device="cpu", chunk_tokens=64)
    first = reader.ingest([corpus / "pass.txt"])  # an index to start from, and the model loaded
    first_generation = reader.catalog.generation
    # Its single-query graph now, not at the second search, which would spend part of the
    # ingest's short window tracing (single_text_graph.py).
    reader.encoder.trace_single_texts()
    proc = start(ingest_args(corpus, index, small_bert, "--commit-chunks", "4"),
                 SEARCHKIT_TEST_PAUSE_AT="after-sqlite-commit", SEARCHKIT_TEST_PAUSE_SECONDS="0.2")
    generations, searches = set(), 0
    try:
        wait_for(lambda: generation(index) > first_generation, proc, step=0.05)  # it started
        while proc.poll() is None:
            batches = [[h.to_dict() for h in reader.search("exceptions", k=8)]]
            if searches % 20 == 0:
                result = CliRunner().invoke(main, ["search", "loop statement", "--index", str(index), "-k", "8", "--json"])
                assert result.exit_code == 0, result.output  # never "database is locked", never a missing file
                batches.append(json.loads(result.stdout))
            if searches % 5 == 2:  # verify too: consistent at every commit, so never a false alarm
                result = CliRunner().invoke(main, ["verify", "--index", str(index), "--json"])
                assert result.exit_code == 0, result.output
            committed = {row[0] for row in query(index, "SELECT path FROM files")}
            for hits in batches:
                assert hits and [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
                for hit in hits:
                    # Files only arrive in this ingest: a hit's file is committed by now.
                    assert hit["path"] in committed
                    assert open(hit["path"], encoding="utf-8").read()[hit["start"]:hit["end"]] == hit["text"]
            generations.add(reader.catalog.generation)
            searches += 1
            time.sleep(0.02)  # two cores: leave the writer some
        rc, out, err = finish(proc)
    finally:
        kill(proc)
    assert rc == 0, err
    assert len(generations) >= 3, (searches, generations)
    print(f"{searches} searches saw {len(generations)} generations")
    final = json.loads(out)
    assert reader.info()["chunks"] == final["chunks_added"] + first.chunks_added == reader.vectors.count


def test_reader_reloads_when_the_writer_removes_its_generation(tmp_path, small_bert, monkeypatch):
    """The reader reads generation g, listing two segments; before it loads them, a writer
    adds a file and merges every segment into one (`optimize`), deleting the files g lists.
    The reader must read the generation again, not fail."""
    corpus = write_corpus(tmp_path / "corpus", ["pass", "while"])
    writer = searchkit.open_index(tmp_path / "index", model=small_bert, device="cpu", chunk_tokens=64)
    writer.ingest([corpus])
    write_corpus(corpus, ["del"])
    writer.ingest([corpus])
    reader = searchkit.open_index(tmp_path / "index", device="cpu")
    first = reader.catalog.generation
    assert len(reader.load_vectors().rows) == 2
    write_corpus(corpus, ["for"])

    real_load = FaissVectors.load
    raced = []

    def load_after_a_merge(path, *args, **kwargs):
        if not raced:
            raced.append(path)
            writer.ingest([corpus])  # commits first + 1
            writer.optimize()  # commits first + 2, deleting the files being opened
        return real_load(path, *args, **kwargs)

    monkeypatch.setattr(FaissVectors, "load", staticmethod(load_after_a_merge))
    hits = reader.search("for loop over a sequence", k=3)
    assert raced and not raced[0].exists()
    assert reader.catalog.generation == first + 2
    assert len(reader.vectors.rows) == 1
    assert any(h.path.endswith("for.txt") for h in hits)
    assert reader.vectors.count == reader.info()["chunks"]
