"""The write path's structure: one `IndexWriter` owns the lock and returns counts, settings
are one typed record, `searchkit.index` starts without torch and imports no writer cycle."""

import subprocess
import sys

import numpy as np
import pytest
from index_helpers import verify_ok, write_corpus

import searchkit
from searchkit.errors import IndexCorrupt, IndexLocked, ModelMismatch
from searchkit.settings import FORMAT_VERSION, IndexOptions, IndexSettings

CHUNK_TOKENS = 24


def built(tmp_path, small_bert):
    corpus = write_corpus(tmp_path / "corpus")
    index = searchkit.open_index(tmp_path / "index", model=small_bert, device="cpu", chunk_tokens=CHUNK_TOKENS)
    index.ingest([corpus])
    return corpus, index


def test_the_writer_holds_the_lock_and_returns_what_a_commit_changed(tmp_path, small_bert):
    corpus, index = built(tmp_path, small_bert)
    files = index.catalog.files()
    first = next(iter(files.values()))
    chunks = index.catalog.chunk_ids_of_files([first["id"]])
    with index.writer() as writer:
        other = searchkit.open_index(tmp_path / "index")
        with pytest.raises(IndexLocked):  # a second writer, in this process or another
            with other.writer():
                pass
        writer.remove_files([first["id"]])
        counts = writer.commit()
        assert (counts.chunks_removed, counts.chunks_added, counts.files_added) == (len(chunks), 0, 0)
        assert counts.generation == index.catalog.generation
        assert writer.commit().chunks_removed == 0  # nothing pending: nothing written
        before = writer.bytes_written
        new_ids = writer.allocate(2)
        assert new_ids[0] >= max(index.catalog.chunk_ids()) + 1
    with other.writer():  # released on leaving
        pass
    assert not set(chunks) & set(index.vectors.ids().tolist())  # the Index searches what was committed
    assert before == 0  # removals write no segment
    assert index.search("anything", k=50)
    # the next ingest puts the file back, counting it as added
    summary = index.ingest([corpus])
    assert summary.files_added == 1 and summary.chunks_added == len(chunks)
    verify_ok(tmp_path / "index")


def test_a_failed_commit_leaves_the_last_one_whole(tmp_path, small_bert, monkeypatch):
    _, index = built(tmp_path, small_bert)
    generation, ids = index.catalog.generation, np.sort(index.vectors.ids())
    from searchkit import index_writer

    def broken_commit(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(index_writer, "commit", broken_commit)
    with index.writer() as writer:
        writer.remove_vectors(ids[:3])
        with pytest.raises(OSError):
            writer.commit()
        assert writer.vectors.count == len(ids) and not writer.vectors.changed  # back to the committed state
    assert index.catalog.generation == generation
    np.testing.assert_array_equal(np.sort(index.vectors.ids()), ids)


def test_settings_are_one_typed_record(tmp_path, small_bert):
    _, index = built(tmp_path, small_bert)
    settings = index.settings
    assert isinstance(settings, IndexSettings) and settings.format == FORMAT_VERSION
    assert settings.chunk_tokens == CHUNK_TOKENS and settings.dim == 32 and settings.built
    assert settings.missing() == []
    stored = {**settings.to_stored(), "a_later_key": [1, 2]}
    again = IndexSettings.from_stored(stored)
    assert again.extra == {"a_later_key": [1, 2]} and again.to_stored() == stored  # unknown keys are kept
    with pytest.raises(IndexCorrupt, match=r"format 3 by a newer searchkit"):
        IndexSettings.from_stored({**stored, "format": 3}, "idx")
    mine = index.encoder.settings()
    settings.check_encoder(mine, "idx")
    settings.check_encoder({**mine, "dtype": "bf16"}, "idx")  # dtype may differ
    with pytest.raises(ModelMismatch, match="pooling 'mean' vs 'cls'"):
        settings.check_encoder({**mine, "pooling": "cls"}, "idx")
    assert IndexSettings.from_stored({"index_type": "flat-ip"}).choice == "flat"  # before index types


def test_index_options_are_checked_when_made():
    with pytest.raises(Exception, match="chunking"):
        IndexOptions(chunking="sentences")
    with pytest.raises(Exception, match="index_type"):
        IndexOptions(index_type="annoy")
    options = IndexOptions(model="m", index_params={"efSearch": 64})
    stored = IndexSettings(model="built-with", pooling="cls", layer=3, index_choice="hnsw")
    rebuilt = options.for_rebuild(stored, own_model=True, home=None, numbering={"generation": 4})
    assert (rebuilt.model, rebuilt.pooling, rebuilt.layer, rebuilt.index_type) == ("built-with", "cls", 3, "hnsw")
    assert rebuilt.numbering == {"generation": 4} and rebuilt.index_params == {"efSearch": 64}


def test_the_index_module_loads_without_torch_and_the_writer_without_the_index():
    code = ("import sys, searchkit.index; torch = 'torch' in sys.modules; "
            "del sys.modules['searchkit.index']; [sys.modules.pop(m) for m in list(sys.modules) if m.startswith('searchkit')]; "
            "import searchkit.index_writer; print(torch, 'searchkit.index' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]
