"""Kill `searchkit ingest` at any moment, re-run it, and nothing is lost or mixed.

Each test runs `python -m searchkit ingest` as a child process and kills it: with SIGKILL
early (while the model loads), mid-embedding (after a few commits) and during the save,
deterministically at each point of a commit through the fault-injection hook
`SEARCHKIT_TEST_CRASH_AT` (see `searchkit.index._crash_point`); and with SIGINT (Ctrl-C).
After each: `searchkit verify` exits 0, the index opens and searches, a re-run completes,
and the chunks (and their vectors) equal those of a clean build of the same folder.

The model is a small BERT cut out of all-MiniLM-L6-v2 (same tokenizer, so the same chunks),
fast enough that each kill costs about the start-up of the child process.
"""

import signal
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from index_helpers import (
    CHUNK_TOKENS,
    CRASH_TOPICS,
    chunks_of,
    finish,
    generation,
    ingest_args,
    kill,
    search_ok,
    segment_files,
    start,
    vectors_of,
    verify_ok,
    wait_for,
    write_corpus,
)

import searchkit
from searchkit.cli import main


def clean_build(corpus: Path, folder: Path, model: Path):
    """A clean build of `corpus` in-process: its chunks and vectors, the reference."""
    index = searchkit.open_index(folder, model=model, chunk_tokens=CHUNK_TOKENS, device="cpu")
    index.ingest([corpus])
    index.close()
    return chunks_of(folder), vectors_of(folder)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, small_bert):
    folder = write_corpus(tmp_path_factory.mktemp("crash-corpus"))
    reference = clean_build(folder, tmp_path_factory.mktemp("clean") / "index", small_bert)
    assert len(reference[0]) > 150  # enough chunks for many commits
    return folder, reference


def assert_files_whole(index: Path, reference) -> None:
    """Whatever a killed run left: each file in it has all of its chunks, as a clean build
    has them, each with its own vector (no half-written file, no vector of another chunk)."""
    chunks, vectors = chunks_of(index), vectors_of(index)
    by_path: dict[str, list] = {}
    for row in reference[0]:
        by_path.setdefault(row[0], []).append(row)
    present = sorted({row[0] for row in chunks})
    assert chunks == sorted(row for p in present for row in by_path[p])
    for key, vector in vectors.items():
        np.testing.assert_allclose(vector, reference[1][key], atol=1e-5)


def assert_recovers(index: Path, corpus: Path, model: Path, reference, whole: bool = True) -> None:
    """verify ok and search works on what the kill left (and, with `whole`, each file in it
    is whole); a re-run completes and equals a clean build, chunk for chunk and vector for
    vector; only the live generation's files are left."""
    if (index / "catalog.db").exists():
        verify_ok(index)
        search_ok(index)
        if whole:
            assert_files_whole(index, reference)
    result = CliRunner().invoke(main, ingest_args(corpus, index, model))
    assert result.exit_code == 0, result.output
    assert chunks_of(index) == reference[0]
    vectors = vectors_of(index)
    assert vectors.keys() == reference[1].keys()
    for key, vector in vectors.items():
        np.testing.assert_allclose(vector, reference[1][key], atol=1e-5)
    report = verify_ok(index)
    assert report["counts"]["chunks"] == len(reference[0])
    leftovers = sorted(p.name for p in index.iterdir() if p.name.startswith(("vectors.", "segment.")) or ".new" in p.name)
    assert leftovers == segment_files(index)  # nothing but what the catalog lists
    assert len(search_ok(index, disk=True)) == 5


@pytest.mark.parametrize("sign", [pytest.param("write.lock", marks=pytest.mark.slow), "catalog.db"])
def test_kill_early(tmp_path, corpus, small_bert, sign):
    """SIGKILL as soon as the index folder appears (the model is loading), or the catalog
    (created, nothing committed yet)."""
    folder, reference = corpus
    index = tmp_path / "index"
    proc = start(ingest_args(folder, index, small_bert))
    wait_for(lambda: (index / sign).exists(), proc, step=0.002)
    rc, _, _ = kill(proc)
    assert rc == -signal.SIGKILL
    if sign == "catalog.db":
        assert generation(index) == 0
    assert_recovers(index, folder, small_bert, reference)


def test_kill_mid_embedding(tmp_path, corpus, small_bert):
    """SIGKILL after a few commits, wherever the process happens to be."""
    folder, reference = corpus
    index = tmp_path / "index"
    proc = start(ingest_args(folder, index, small_bert, "--commit-chunks", "8"))
    wait_for(lambda: generation(index) >= 3, proc)
    rc, _, _ = kill(proc)
    assert rc == -signal.SIGKILL, "the ingest ended before it was killed"
    assert 3 <= generation(index) and len(chunks_of(index)) < len(reference[0])
    assert_recovers(index, folder, small_bert, reference)


POINTS = ["after-vectors-save", "before-sqlite-commit", "after-sqlite-commit"]
# Each kill costs a child's start-up (torch) of a few seconds: one save point runs by default.
FAST_POINT = "before-sqlite-commit"


@pytest.mark.slow
@pytest.mark.parametrize("point", POINTS)
def test_kill_during_the_save_of_a_new_index(tmp_path, corpus, small_bert, point):
    """SIGKILL inside the second commit of a first ingest, at each point of the save."""
    folder, reference = corpus
    index = tmp_path / "index"
    proc = start(ingest_args(folder, index, small_bert, "--commit-chunks", "8"),
                 SEARCHKIT_TEST_CRASH_AT=f"{point}:2")
    rc, _, err = finish(proc)
    assert rc == -signal.SIGKILL, err
    assert generation(index) == (2 if point == "after-sqlite-commit" else 1)
    assert_recovers(index, folder, small_bert, reference)


@pytest.mark.parametrize(
    "point", [p if p == FAST_POINT else pytest.param(p, marks=pytest.mark.slow) for p in POINTS]
)
def test_kill_during_the_save_of_an_update(tmp_path, small_bert, point):
    """An index of 12 files; then 2 changed, 1 deleted, 2 added, 1 touched; SIGKILL inside the
    update's first commit (which also drops the deleted file): before the SQLite commit, the
    index is exactly as it was; after it, the commit is whole."""
    folder = write_corpus(tmp_path / "corpus", CRASH_TOPICS[10:22])
    index = tmp_path / "index"
    assert CliRunner().invoke(main, ingest_args(folder, index, small_bert)).exit_code == 0
    before, first_generation = chunks_of(index), generation(index)

    (folder / "while.txt").write_text("while\n\nA loop that runs while a condition holds. " * 40, encoding="utf-8")
    (folder / "if.txt").write_text("if\n\nChoose a branch by a condition.", encoding="utf-8")
    (folder / "yield.txt").unlink()
    write_corpus(folder, ["class", "for"])
    (folder / "truth.txt").touch()
    reference = clean_build(folder, tmp_path / "clean", small_bert)

    proc = start(ingest_args(folder, index, small_bert, "--commit-chunks", "8"),
                 SEARCHKIT_TEST_CRASH_AT=f"{point}:{first_generation + 1}")
    rc, _, err = finish(proc)
    assert rc == -signal.SIGKILL, err
    if point == "after-sqlite-commit":
        assert generation(index) == first_generation + 1
        assert not any(row[0].endswith("yield.txt") for row in chunks_of(index))
    else:
        assert generation(index) == first_generation
        assert chunks_of(index) == before
    assert_recovers(index, folder, small_bert, reference, whole=False)


def test_ctrl_c_mid_ingest(tmp_path, corpus, small_bert):
    """SIGINT after a few commits: one line, exit 130, the last commit kept. The ingest
    waits after its second commit (a test hook), so the signal always finds it running."""
    folder, reference = corpus
    index = tmp_path / "index"
    proc = start(ingest_args(folder, index, small_bert, "--commit-chunks", "8"),
                 SEARCHKIT_TEST_PAUSE_AT="after-sqlite-commit:2")
    wait_for(lambda: generation(index) >= 2, proc)
    rc, out, err = kill(proc, signal.SIGINT)
    assert rc == 130, err
    assert err.strip().splitlines() == [
        "searchkit: error: interrupted (nothing half-written: the index keeps its last committed state)"
    ]
    assert out == ""
    assert_recovers(index, folder, small_bert, reference)


def test_leftovers_of_a_crash_are_ignored_then_removed(tmp_path, small_bert):
    """Files a crash can leave (a temp vectors file, an uncommitted generation, a half-made
    catalog) change nothing for readers, and the next ingest removes them."""
    folder = write_corpus(tmp_path / "corpus", CRASH_TOPICS[:6])
    index = tmp_path / "index"
    assert CliRunner().invoke(main, ingest_args(folder, index, small_bert)).exit_code == 0
    reference = chunks_of(index), vectors_of(index)
    live = generation(index)
    junk = [f"segment.{live + 100:06d}.faiss", f"segment.{live + 100:06d}.faiss.tmp", f"vectors.{live + 1:06d}.faiss",
            "catalog.db.new"]
    for name in junk:
        (index / name).write_bytes(b"half-written" * 100)
    verify_ok(index)
    assert search_ok(index)
    assert_recovers(index, folder, small_bert, reference)
    assert not any((index / name).exists() for name in junk)


@pytest.mark.slow
def test_rebuild_killed_leaves_the_old_index(tmp_path, small_bert):
    """`--rebuild` with another model, SIGKILLed mid-way: the old index is untouched (same
    model, same chunks, still searches); a second --rebuild completes and keeps the
    folder's other files."""
    from tiny_models import make_small_bert

    other = make_small_bert(tmp_path / "models" / "other", hidden=48)
    folder = write_corpus(tmp_path / "corpus", CRASH_TOPICS[:12])
    index = tmp_path / "index"
    assert CliRunner().invoke(main, ingest_args(folder, index, small_bert)).exit_code == 0
    (index / "README.md").write_text("my notes", encoding="utf-8")
    before, settings_model = chunks_of(index), searchkit.open_index(index).settings.model

    args = ["ingest", str(folder), "--index", str(index), "--rebuild", "--model", str(other), "--device", "cpu",
            "--chunk-tokens", str(CHUNK_TOKENS), "--commit-chunks", "8", "--json"]
    proc = start(args, SEARCHKIT_TEST_CRASH_AT="after-sqlite-commit:2")
    rc, _, err = finish(proc)
    assert rc == -signal.SIGKILL, err
    assert chunks_of(index) == before
    assert searchkit.open_index(index).settings.model == settings_model
    verify_ok(index)
    search_ok(index)

    result = CliRunner().invoke(main, args[:-3] + ["--json"])
    assert result.exit_code == 0, result.output
    assert chunks_of(index) == before  # same files, same tokenizer: same chunks
    reopened = searchkit.open_index(index)
    assert reopened.settings.model == str(other) and reopened.settings.dim == 48
    verify_ok(index)
    assert (index / "README.md").read_text(encoding="utf-8") == "my notes"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus", "index", "models"]


def test_interrupt_just_after_the_sqlite_commit_keeps_that_generation(tmp_path, small_bert, monkeypatch):
    """Ctrl-C can land after SQLite's COMMIT but before the `with` block is left: the new
    generation stands, so its segment file must stay (in-process: the timing is forced)."""
    import contextlib

    from searchkit.store.catalog import Catalog

    corpus = write_corpus(tmp_path / "corpus", CRASH_TOPICS[:3])
    index = searchkit.open_index(tmp_path / "index", model=small_bert, device="cpu", chunk_tokens=CHUNK_TOKENS)
    armed = []
    real_put, real_write = Catalog.put_settings, Catalog.write

    def put_settings(self, values):
        real_put(self, values)
        if values.get("generation"):  # the transaction of a commit (creation writes generation 0)
            armed.append(values["generation"])

    @contextlib.contextmanager
    def write(self):
        with real_write(self):
            yield self
        if armed:  # committed; the interrupt lands on the way out
            raise KeyboardInterrupt

    monkeypatch.setattr(Catalog, "put_settings", put_settings)
    monkeypatch.setattr(Catalog, "write", write)
    with pytest.raises(KeyboardInterrupt):
        index.ingest([corpus])
    monkeypatch.undo()
    index.close()
    assert armed == [1] and generation(tmp_path / "index") == 1
    verify_ok(tmp_path / "index")
    reference = clean_build(corpus, tmp_path / "clean", small_bert)
    assert_recovers(tmp_path / "index", corpus, small_bert, reference)
