"""`verify` finds disagreements between catalog and vectors; `repair` mends them from SQLite."""

import numpy as np
import pytest
from click.testing import CliRunner
from test_index import write_topics

import searchkit
from searchkit.cli import main
from searchkit.errors import IndexCorrupt
from searchkit.store.vectors import FaissVectors
from searchkit.verify import repair, verify


@pytest.fixture
def index(tmp_path, minilm):
    corpus = write_topics(tmp_path / "c", ["lambda", "del", "pass"])
    index = searchkit.open_index(tmp_path / "i", encoder=minilm)
    index.ingest([corpus])
    return index


def _current_vectors(index):
    """The index's one segment file (a small index after one ingest has one)."""
    [row] = index.load_vectors().rows.values()
    return index.folder / row.name


def test_clean_index_verifies(index):
    report = verify(index)
    assert report.ok and not report.problems
    assert report.counts["vectors"] == report.counts["chunks"]


def test_missing_vectors_found_and_re_embedded(index, minilm):
    path = _current_vectors(index)
    vectors = FaissVectors.load(path)
    victim = int(vectors.ids()[0])
    kept = vectors.reconstruct(np.array([victim]))[0]
    vectors.remove(np.array([victim]))
    vectors.save(path)
    fresh = searchkit.open_index(index.folder, encoder=minilm)
    report = verify(fresh)
    assert not report.ok and any("have no vector" in p for p in report.problems)
    fixed = repair(fresh)
    assert fixed.ok and fixed.repaired
    again = searchkit.open_index(index.folder, encoder=minilm)
    restored = again.vectors.reconstruct(np.array([victim]))[0]
    assert float(restored @ kept) > 0.99999


def test_stray_vector_found_and_dropped(index, minilm):
    path = _current_vectors(index)
    vectors = FaissVectors.load(path)
    vectors.add(np.array([10_000]), np.ones((1, vectors.dim), "float32") / vectors.dim**0.5)
    vectors.save(path)
    fresh = searchkit.open_index(index.folder, encoder=minilm)
    assert any("no chunk row" in p for p in verify(fresh).problems)
    assert repair(fresh).ok


def test_truncated_vectors_file(index, minilm):
    path = _current_vectors(index)
    path.write_bytes(path.read_bytes()[:100])
    fresh = searchkit.open_index(index.folder, encoder=minilm)
    report = verify(fresh)
    assert not report.ok and "not a readable FAISS index" in report.problems[0]
    with pytest.raises(IndexCorrupt):
        fresh.search("anything")
    assert repair(fresh).ok
    assert searchkit.open_index(index.folder, encoder=minilm).search("delete names", k=1)[0].path.endswith("del.txt")


def test_cli_verify_exit_codes(index):
    runner = CliRunner()
    ok = runner.invoke(main, ["verify", "--index", str(index.folder)])
    assert ok.exit_code == 0 and "consistent" in ok.stdout
    _current_vectors(index).unlink()
    bad = runner.invoke(main, ["verify", "--index", str(index.folder)])
    assert bad.exit_code == 1 and "missing" in bad.stderr


def test_catalog_that_is_not_sqlite(tmp_path):
    folder = tmp_path / "i"
    folder.mkdir()
    (folder / "catalog.db").write_bytes(b"this is not a database" * 100)
    result = CliRunner().invoke(main, ["search", "x", "--index", str(folder)])
    assert result.exit_code == 1
    assert "not a usable SQLite database" in result.stderr and len(result.stderr.strip().splitlines()) == 1
