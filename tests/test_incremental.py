"""Re-runs embed only what changed; the index records its model and refuses another one
(or is rebuilt whole with --rebuild, never mixed)."""

import hashlib
import json
import os
import shutil

import pytest
from click.testing import CliRunner
from index_helpers import (
    chunks_of,
    generation,
    ingest_args,
    query,
    segment_files,
    verify_ok,
    write_corpus,
)

import searchkit.ingest as ingest_module
from searchkit.cli import main
from searchkit.encoder import Encoder

NAMES = ["pass", "while", "lambda", "del", "assert", "global", "break", "continue"]


@pytest.fixture
def encoded(monkeypatch):
    """Every text handed to Encoder.encode, in order."""
    texts: list[str] = []
    real = Encoder.encode

    def spy(self, batch, *args, **kwargs):
        texts.extend(batch)
        return real(self, batch, *args, **kwargs)

    monkeypatch.setattr(Encoder, "encode", spy)
    return texts


def ingest(*args) -> dict:
    result = CliRunner().invoke(main, [*map(str, args)])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture
def built(tmp_path, small_bert):
    corpus = write_corpus(tmp_path / "corpus", NAMES)
    index = tmp_path / "index"
    summary = ingest(*ingest_args(corpus, index, small_bert))
    assert summary["files_added"] == len(NAMES)
    return corpus, index


def chunk_ids_by_path(index) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for path, chunk_id in query(index, "SELECT files.path, chunks.id FROM chunks JOIN documents ON "
                                       "chunks.document_id = documents.id JOIN files ON documents.file_id = files.id "
                                       "ORDER BY chunks.id"):
        out.setdefault(path, []).append(chunk_id)
    return out


def test_rerun_with_nothing_changed_encodes_nothing(built, small_bert, encoded):
    corpus, index = built
    before, gen = chunk_ids_by_path(index), generation(index)
    summary = ingest(*ingest_args(corpus, index, small_bert))
    assert encoded == []
    assert summary["files_unchanged"] == summary["files_seen"] == len(NAMES)
    for key in ("files_added", "files_updated", "files_removed", "files_skipped", "chunks_added", "chunks_removed"):
        assert summary[key] == 0, key
    assert chunk_ids_by_path(index) == before and generation(index) == gen  # nothing rewritten


def test_touched_but_same_content_is_unchanged(built, small_bert, encoded, monkeypatch):
    corpus, index = built
    before = chunk_ids_by_path(index)
    for path in corpus.iterdir():
        os.utime(path, (1_000_000_000, 1_000_000_000))  # mtime moves; content does not
    (corpus / "while.txt").write_bytes((corpus / "while.txt").read_bytes())  # rewritten as it was
    summary = ingest(*ingest_args(corpus, index, small_bert))
    assert encoded == []
    assert summary["files_unchanged"] == len(NAMES) and summary["files_updated"] == 0
    assert chunk_ids_by_path(index) == before
    # the new mtimes are recorded: the next run decides by size and mtime, hashing nothing
    hashed = []
    monkeypatch.setattr(ingest_module, "sha256_file", lambda path: hashed.append(path))
    summary = ingest(*ingest_args(corpus, index, small_bert))
    assert summary["files_unchanged"] == len(NAMES) and hashed == []


def test_rerun_embeds_only_new_and_changed_and_drops_deleted(built, small_bert, encoded, tmp_path):
    corpus, index = built
    before = chunk_ids_by_path(index)
    (corpus / "while.txt").write_text("while\n\nA loop that runs as long as its condition holds.", encoding="utf-8")
    (corpus / "lambda.txt").unlink()
    write_corpus(corpus, ["for", "dict"])
    summary = ingest(*ingest_args(corpus, index, small_bert))
    assert (summary["files_added"], summary["files_updated"], summary["files_removed"],
            summary["files_unchanged"], summary["files_skipped"]) == (2, 1, 1, len(NAMES) - 2, 0)
    after = chunk_ids_by_path(index)
    new_paths = {str(corpus / n) for n in ("while.txt", "for.txt", "dict.txt")}
    # Exactly the chunks of new and changed files were encoded, nothing else.
    assert sorted(encoded) == sorted(row[5] for row in chunks_of(index) if row[0] in new_paths)
    assert summary["chunks_added"] == len(encoded) == sum(len(after[p]) for p in new_paths)
    assert summary["chunks_removed"] == len(before[str(corpus / "while.txt")]) + len(before[str(corpus / "lambda.txt")])
    # The rest untouched: same chunk ids (no re-embedding, no renumbering).
    for path, ids in before.items():
        if path not in new_paths and not path.endswith("lambda.txt"):
            assert after[path] == ids
    assert str(corpus / "lambda.txt") not in after
    # And the result is what a clean build of the folder gives.
    clean = tmp_path / "clean"
    ingest(*ingest_args(corpus, clean, small_bert))
    assert chunks_of(index) == chunks_of(clean)
    verify_ok(index)


def test_a_link_out_of_the_folder_is_indexed_where_it_was_found(tmp_path, small_bert, encoded):
    """A link to a file outside the folder was indexed under its target's path, out of reach
    of `--where path:links/*`; a link to a file inside was reported as its target's duplicate
    of itself. Both now go by the link's path, and re-runs follow the link."""
    outside = write_corpus(tmp_path / "outside", ["lambda"])
    corpus = tmp_path / "corpus"
    write_corpus(corpus / "docs", ["pass", "while"])
    (corpus / "links").mkdir()
    (corpus / "links" / "out.txt").symlink_to(outside / "lambda.txt")
    (corpus / "links" / "in.txt").symlink_to(corpus / "docs" / "pass.txt")  # docs/ comes first
    index = tmp_path / "index"
    first = ingest(*ingest_args(corpus, index, small_bert))
    link, real = corpus.resolve() / "links", corpus.resolve() / "docs"
    assert first["files_added"] == 3
    assert [(s["path"], s["reason"]) for s in first["skipped"]] == [
        (str(link / "in.txt"), f"duplicate of {real / 'pass.txt'}")]
    paths = sorted(p for (p,) in query(index, "SELECT path FROM files"))
    assert paths == [str(real / "pass.txt"), str(real / "while.txt"), str(link / "out.txt")]
    result = CliRunner().invoke(main, ["search", "anonymous function", "--index", str(index), "--where",
                                       "path:links/*", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert hits and {h["path"] for h in hits} == {str(link / "out.txt")} and "lambda" in hits[0]["text"]

    encoded.clear()
    again = ingest(*ingest_args(corpus, index, small_bert))
    assert (again["files_added"], again["files_updated"], again["files_removed"]) == (0, 0, 0) and encoded == []
    (outside / "lambda.txt").write_text("lambda\n\nA lambda makes a small anonymous function.", encoding="utf-8")
    changed = ingest(*ingest_args(corpus, index, small_bert))  # the target changed: so did the link
    assert changed["files_updated"] == 1 and any("small anonymous" in t for t in encoded)
    (corpus / "links" / "out.txt").unlink()
    gone = ingest(*ingest_args(corpus, index, small_bert))
    assert gone["files_removed"] == 1 and not [c for c in chunks_of(index) if c[0].endswith("out.txt")]
    assert (outside / "lambda.txt").exists()
    verify_ok(index)


def test_index_records_its_model(built, small_bert):
    _, index = built
    info = json.loads(CliRunner().invoke(main, ["info", "--index", str(index), "--json"]).stdout)
    settings = info["settings"]
    weights = hashlib.sha256((small_bert / "model.safetensors").read_bytes()).hexdigest()
    assert settings["model"] == str(small_bert) and settings["weights_sha256"] == weights
    assert (settings["model_type"], settings["dim"], settings["pooling"], settings["normalize"],
            settings["dtype"], settings["chunk_tokens"]) == ("bert", 32, "mean", True, "fp32", 64)


@pytest.fixture(scope="module")
def other_model(tmp_path_factory):
    from tiny_models import make_small_bert

    return make_small_bert(tmp_path_factory.mktemp("other") / "other-bert", hidden=48)


def test_another_model_is_refused_naming_both(built, small_bert, other_model):
    corpus, index = built
    before = chunks_of(index)
    result = CliRunner().invoke(main, ingest_args(corpus, index, other_model))
    assert result.exit_code == 1
    err = result.stderr.strip()
    assert err.splitlines() == [err] and "Traceback" not in err
    assert f"built with model {small_bert}, not {other_model}" in err and "--rebuild" in err
    assert chunks_of(index) == before
    verify_ok(index)


def test_rebuild_with_another_model_replaces_the_index(built, small_bert, other_model):
    corpus, index = built
    before = chunks_of(index)
    (index / "README.md").write_text("notes", encoding="utf-8")
    old_generation = generation(index)
    summary = ingest(*ingest_args(corpus, index, other_model, "--rebuild"))
    assert summary["files_added"] == len(NAMES) and summary["chunks_added"] == len(before)
    info = json.loads(CliRunner().invoke(main, ["info", "--index", str(index), "--json"]).stdout)
    assert info["settings"]["model"] == str(other_model) and info["settings"]["dim"] == 48
    assert info["chunks"] == info["vectors"] == len(before)
    assert chunks_of(index) == before  # same tokenizer and chunk size: the same chunks
    assert generation(index) > old_generation  # numbering goes on across the swap
    assert sorted(p.name for p in index.iterdir() if not p.name.endswith(("-wal", "-shm"))) == sorted(
        ["README.md", "catalog.db", "write.lock", *segment_files(index)])
    assert not (index.parent / ".index.rebuild").exists()
    verify_ok(index)
    result = CliRunner().invoke(main, ["search", "loop", "--index", str(index), "-k", "3", "--json"])
    assert result.exit_code == 0 and len(json.loads(result.stdout)) == 3
    # Without --model, a rebuild keeps the index's own model.
    ingest("ingest", corpus, "--index", index, "--rebuild", "--chunk-tokens", "64", "--device", "cpu", "--json")
    assert json.loads(CliRunner().invoke(main, ["info", "--index", str(index), "--json"]).stdout)[
        "settings"]["model"] == str(other_model)


def test_rebuild_of_an_unreadable_catalog(built, small_bert):
    """--rebuild is the way out of a catalog that is not SQLite any more."""
    corpus, index = built
    before = chunks_of(index)
    for path in index.glob("catalog.db*"):
        path.unlink()
    (index / "catalog.db").write_bytes(b"garbage" * 1000)
    assert CliRunner().invoke(main, ["search", "x", "--index", str(index)]).exit_code == 1
    ingest(*ingest_args(corpus, index, small_bert, "--rebuild"))
    assert chunks_of(index) == before
    verify_ok(index)


def test_failed_rebuild_leaves_the_old_index(built, small_bert, tmp_path):
    corpus, index = built
    before = chunks_of(index)
    broken = tmp_path / "broken-model"
    shutil.copytree(small_bert, broken)
    (broken / "tokenizer.json").unlink()
    result = CliRunner().invoke(main, ingest_args(corpus, index, broken, "--rebuild"))
    assert result.exit_code == 1 and "tokenizer.json: not found" in result.stderr
    assert chunks_of(index) == before and not (index.parent / ".index.rebuild").exists()
    verify_ok(index)
