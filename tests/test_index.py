"""End to end through the Python API: ingest a small real corpus, search, re-ingest."""

from pathlib import Path

import pytest

import searchkit
from searchkit.errors import BadInput, IndexNotFound, ModelMismatch

TOPICS = ["break", "continue", "lambda", "while", "del", "assert", "global", "for", "dict",
          "exceptions", "class", "with", "raise", "import"]

QUERIES = [
    ("define a new class with base classes", "class"),
    ("mapping of keys to values", "dict"),
    ("small anonymous function written as an expression", "lambda"),
    ("delete a name binding or a list item", "del"),
    ("context manager with enter and exit methods", "with"),
    ("debugging check that fails with AssertionError", "assert"),
    ("load a module from a package", "import"),
]


def write_topics(folder: Path, names=TOPICS) -> Path:
    from pydoc_data.topics import topics

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.txt").write_text(f"{name}\n\n{topics[name]}", encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def built(tmp_path_factory, minilm):
    corpus = write_topics(tmp_path_factory.mktemp("corpus"))
    index = searchkit.open_index(tmp_path_factory.mktemp("index"), encoder=minilm)
    summary = index.ingest([corpus])
    return corpus, index, summary


def test_first_ingest_adds_every_file(built):
    corpus, index, summary = built
    assert summary.files_seen == summary.files_added == len(TOPICS)
    assert summary.files_skipped == summary.files_removed == 0
    assert summary.chunks_added == index.info()["chunks"] == index.vectors.count


@pytest.mark.parametrize("query,topic", QUERIES)
def test_expected_document_comes_first(built, query, topic):
    _, index, _ = built
    hits = index.search(query, k=5)
    assert Path(hits[0].path).stem == topic, [(Path(h.path).stem, h.score) for h in hits]


def test_hits_are_ranked_and_text_is_the_document_slice(built):
    corpus, index, _ = built
    hits = index.search("iterate over the items of a sequence", k=8)
    assert [h.rank for h in hits] == list(range(1, 9))
    assert all(a.score >= b.score for a, b in zip(hits, hits[1:]))
    for hit in hits:
        document = Path(hit.path).read_text(encoding="utf-8")
        assert hit.text == document[hit.start:hit.end]


def test_scores_are_cosines_of_the_encoder(built, minilm):
    _, index, _ = built
    hit = index.search("while loop with an else clause", k=1)[0]
    q, c = minilm.encode(["while loop with an else clause", hit.text])
    assert hit.score == pytest.approx(float(q @ c), abs=1e-5)


def test_vector_ids_equal_chunk_ids(built):
    _, index, _ = built
    assert sorted(index.vectors.ids().tolist()) == index.catalog.chunk_ids()


def test_reingest_update_and_delete(tmp_path, minilm):
    corpus = write_topics(tmp_path / "corpus", ["break", "continue", "lambda"])
    index = searchkit.open_index(tmp_path / "index", encoder=minilm)
    first = index.ingest([corpus])
    assert first.files_added == 3

    again = index.ingest([corpus])
    assert (again.files_added, again.files_updated, again.chunks_added) == (0, 0, 0)
    assert again.files_unchanged == 3

    (corpus / "break.txt").write_text("break\n\nA completely different text about gardening.", encoding="utf-8")
    (corpus / "lambda.txt").unlink()
    third = index.ingest([corpus])
    assert (third.files_updated, third.files_removed, third.files_unchanged) == (1, 1, 1)
    assert third.chunks_added == 1
    assert index.search("gardening", k=1)[0].path.endswith("break.txt")
    paths = {Path(h.path).name for h in index.search("anonymous function", k=50)}
    assert "lambda.txt" not in paths
    assert sorted(index.vectors.ids().tolist()) == index.catalog.chunk_ids()


def test_settings_are_read_once_per_generation(tmp_path, minilm, monkeypatch):
    """A search reads the stored settings only when a commit has moved the generation on;
    what another process committed is seen at the next search."""
    corpus = write_topics(tmp_path / "corpus", ["break", "continue"])
    index = searchkit.open_index(tmp_path / "index", encoder=minilm)
    index.ingest([corpus])
    reads = []
    real = type(index.catalog).settings
    monkeypatch.setattr(type(index.catalog), "settings", lambda self: reads.append(1) or real(self))
    index.search("loop", k=1)
    index.search("exit a loop early", k=1)
    assert len(reads) <= 1  # at most the first search's read
    generation = index.settings.generation
    writer = searchkit.open_index(index.folder, encoder=minilm)  # another reader-writer
    (corpus / "lambda.txt").write_text("lambda\n\nAnonymous functions.", encoding="utf-8")
    writer.ingest([corpus])
    before = len(reads)
    assert index.settings.generation == generation + 1 and len(reads) == before + 1
    assert index.search("anonymous function", k=1)[0].path.endswith("lambda.txt")


def test_reopened_index_uses_its_recorded_model(built):
    _, index, _ = built
    fresh = searchkit.open_index(index.folder, device="cpu")
    assert fresh.search("small anonymous function", k=1)[0].path.endswith("lambda.txt")
    assert fresh.encoder.name == "all-MiniLM-L6-v2"


def test_other_model_settings_are_refused(built):
    _, index, _ = built
    other = searchkit.open_index(index.folder, pooling="cls", device="cpu")
    with pytest.raises(ModelMismatch, match="pooling"):
        other.search("anything")


@pytest.mark.parametrize("k", [0, -3])
def test_bad_k(built, k):
    """A Python caller is told of `k=`, the parameter it used (the CLI says `-k`)."""
    with pytest.raises(BadInput, match=f"^k={k}: must be a positive integer$"):
        built[1].search("loop", k=k)


def test_empty_query(built):
    with pytest.raises(BadInput, match="empty query"):
        built[1].search("   ")


def test_missing_index(tmp_path):
    with pytest.raises(IndexNotFound):
        searchkit.open_index(tmp_path / "nothing").search("x")


def test_k_larger_than_index(tmp_path, minilm):
    corpus = write_topics(tmp_path / "c", ["pass"])
    index = searchkit.open_index(tmp_path / "i", encoder=minilm)
    index.ingest([corpus])
    assert len(index.search("pass statement", k=50)) == index.vectors.count == 1


def test_jsonl_records_are_documents(tmp_path, minilm):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "notes.jsonl").write_text(
        '{"_id": "a1", "title": "Bread", "text": "Knead the dough and let it rise overnight."}\n'
        '{"_id": "b2", "title": "Bikes", "text": "Oil the chain and check the tyre pressure."}\n'
        'not json\n', encoding="utf-8")
    index = searchkit.open_index(tmp_path / "i", encoder=minilm)
    summary = index.ingest([corpus])
    assert summary.chunks_added == 2 and len(summary.problems) == 1
    hit = index.search("bicycle maintenance", k=1)[0]
    assert (hit.document, hit.title) == ("b2", "Bikes")
    assert hit.text.startswith("Bikes")


def test_interrupted_commit_leaves_last_state(tmp_path, minilm, monkeypatch):
    corpus = write_topics(tmp_path / "c", ["break"])
    index = searchkit.open_index(tmp_path / "i", encoder=minilm)
    index.ingest([corpus])
    before = (index.catalog.chunk_ids(), index.catalog.generation)
    write_topics(corpus, ["continue"])

    from searchkit.store import catalog as catalog_module

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(catalog_module.Catalog, "add_file", boom)
    with pytest.raises(KeyboardInterrupt):
        index.ingest([corpus])
    monkeypatch.undo()
    reopened = searchkit.open_index(index.folder, encoder=minilm)
    assert (reopened.catalog.chunk_ids(), reopened.catalog.generation) == before
    assert sorted(reopened.vectors.ids().tolist()) == before[0]
    assert len(list(Path(index.folder).glob("segment.*"))) == 1  # the interrupted commit's file is gone
    summary = reopened.ingest([corpus])
    assert summary.files_added == 1 and summary.files_unchanged == 1


def test_ingest_progress_gives_the_total_before_the_first_batch(tmp_path, small_bert):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(3):
        (corpus / f"f{i}.txt").write_text(f"File number {i} talks about topic {i}. " * 20)
    total = sum(p.stat().st_size for p in corpus.iterdir())
    calls = []
    index = searchkit.open_index(tmp_path / "index", model=str(small_bert), device="cpu")
    summary = index.ingest([corpus], progress=lambda *args: calls.append(args))
    assert calls[0] == (0, total, 0)  # a bar with its total while the first batch embeds
    assert calls[-1] == (total, total, summary.chunks_added)
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
