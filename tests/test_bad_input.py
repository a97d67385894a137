"""Bad input through the CLI, end to end: one file among many is skipped with a counted
reason (exit 0); what stops a command is one line naming the thing (exit 1, no traceback);
and after each, the index that was there still verifies and searches, nothing lost.

(The readers' own handling of odd files is covered in test_readers.py; this is the
command's side of it.)
"""

import gc
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
from index_helpers import (
    chunks_of,
    fails_with,
    ingest_args,
    invoke,
    search_ok,
    segment_files,
    usage_fails,
    vectors_of,
    verify_ok,
    write_corpus,
)

GOOD = ["pass", "while", "lambda", "del"]


@pytest.fixture
def built(tmp_path, small_bert):
    """An index of four good files; `intact()` checks it is all still there."""
    corpus = write_corpus(tmp_path / "corpus", GOOD)
    index = tmp_path / "index"
    assert invoke(*ingest_args(corpus, index, small_bert)).exit_code == 0
    before = chunks_of(index)

    def intact():
        assert chunks_of(index) == before
        verify_ok(index)
        assert search_ok(index)

    return corpus, index, intact


# -- one bad file among many: skipped, counted, the rest ingested ------------------------


def test_bad_files_are_skipped_with_counted_reasons(built, small_bert):
    corpus, index, intact = built
    (corpus / "binary.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" * 20)
    (corpus / "latin1.txt").write_bytes("caf\xe9 cr\xe8me br\xfbl\xe9e".encode("latin-1"))
    (corpus / "empty.md").write_bytes(b"")
    with open(corpus / "huge.txt", "wb") as fh:  # sparse: 51 MB on paper, nothing on disk
        fh.truncate(51 * 2**20)
    os.symlink(corpus / "gone.txt", corpus / "broken.txt")
    os.symlink("self.txt", corpus / "self.txt")  # a link to itself
    (corpus / "sub").mkdir()
    os.symlink("..", corpus / "sub" / "up")  # a folder link back up the tree
    (corpus / "picture.png").write_bytes(b"\x89PNG")
    (corpus / "records.jsonl").write_text(
        '{"_id": "r1", "text": "Knead the dough and let it rise."}\n'
        "this line is not JSON\n"
        '{"_id": "r3", "title": "no text field"}\n', encoding="utf-8")
    result = invoke(*ingest_args(corpus, index, small_bert))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    reasons = {Path(s["path"]).name: s["reason"] for s in summary["skipped"]}
    assert reasons == {
        "binary.txt": "binary",
        "latin1.txt": "invalid UTF-8",
        "empty.md": "empty",
        "huge.txt": "over size limit (53,477,376 bytes > 52,428,800)",
        "broken.txt": "broken symlink",
        "self.txt": "symlink loop",
        "up": "symlink loop",
        "picture.png": "unsupported type .png",
    }
    assert summary["files_skipped"] == len(summary["skipped"]) == len(reasons)
    assert summary["files_added"] == 1 and summary["files_unchanged"] == len(GOOD)
    assert summary["problems"] == ["records.jsonl line 2: not valid JSON", 'records.jsonl line 3: no "text" field']
    assert any(row[1] == "r1" for row in chunks_of(index))
    verify_ok(index)
    # The human form says the same on stderr, one line per skip.
    human = invoke(*ingest_args(corpus, index, small_bert)[:-1])
    assert human.exit_code == 0
    assert "skipped " + str(corpus / "latin1.txt") + ": invalid UTF-8" in human.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their permissions")
def test_unreadable_file_is_skipped(built, small_bert):
    corpus, index, intact = built
    secret = corpus / "secret.txt"
    secret.write_text("private", encoding="utf-8")
    secret.chmod(0)
    try:
        summary = json.loads(invoke(*ingest_args(corpus, index, small_bert)).stdout)
    finally:
        secret.chmod(0o600)
    assert [(Path(s["path"]).name, s["reason"]) for s in summary["skipped"]] == [("secret.txt", "permission denied")]
    intact()


@pytest.mark.parametrize("content, reason", [
    (b"while \xff\xfe broken now", "invalid UTF-8"),
    (b"", "empty"),
    (b"while\x00\x01\x02 binary now", "binary"),
    (b"   \n\n  ", "empty"),
])
def test_a_file_gone_bad_loses_its_chunks(built, small_bert, content, reason):
    """A file indexed before that is now empty, binary or undecodable has changed: it is
    skipped with its reason and its old chunks go (searches no longer return its old text)."""
    corpus, index, _ = built
    old = [c for c in chunks_of(index) if c[0].endswith("while.txt")]
    (corpus / "while.txt").write_bytes(content)
    summary = json.loads(invoke(*ingest_args(corpus, index, small_bert)).stdout)
    assert [(Path(s["path"]).name, s["reason"]) for s in summary["skipped"]] == [("while.txt", reason)]
    assert summary["files_removed"] == 1 and summary["chunks_removed"] == len(old) > 0
    assert not [c for c in chunks_of(index) if c[0].endswith("while.txt")]
    verify_ok(index)
    assert not [h for h in search_ok(index) if h["path"].endswith("while.txt")]


def test_a_file_grown_past_the_size_limit_loses_its_chunks(built, small_bert):
    from searchkit import open_index

    corpus, index, _ = built
    (corpus / "while.txt").write_text("while loops " * 400, encoding="utf-8")
    summary = open_index(index, model=small_bert).ingest([corpus], max_file_bytes=4000)
    assert [(Path(s["path"]).name, s["reason"]) for s in summary.skipped] == [("while.txt", "over size limit (4,800 bytes > 4,000)")]
    assert summary.files_removed == 1 and summary.chunks_removed > 0
    assert not [c for c in chunks_of(index) if c[0].endswith("while.txt")]
    verify_ok(index)


# -- what stops the command: one line, exit 1, the index as it was -----------------------


def test_path_that_does_not_exist(built, small_bert, tmp_path):
    corpus, index, intact = built
    missing = tmp_path / "no" / "such"
    fails_with(invoke(*ingest_args(missing, index, small_bert)), missing, "no such file or directory")
    fails_with(invoke("ingest", corpus, missing, "--index", index, "--model", small_bert), missing)
    intact()
    fresh = tmp_path / "fresh"
    fails_with(invoke(*ingest_args(missing, fresh, small_bert)), missing)
    assert not (fresh / "catalog.db").exists()


def test_path_that_is_a_symlink_loop(built, small_bert, tmp_path):
    corpus, index, intact = built
    loop = tmp_path / "loop"
    os.symlink("loop", loop)
    fails_with(invoke(*ingest_args(loop, index, small_bert)), loop, "symlink loop")
    intact()


@pytest.mark.parametrize("case", ["symlink loop", "parent is a file", "a file", "a device", "in /proc",
                                  "an index's catalog"])
def test_index_folder_that_cannot_be(built, small_bert, tmp_path, case):
    """An --index that cannot be an index folder: one line naming it and why, from every
    command, and nothing written anywhere (an index's own file given as --index included)."""
    corpus, index, intact = built
    folder, why = {
        "symlink loop": (tmp_path / "loop", "symlink loop"),
        "parent is a file": (tmp_path / "afile" / "idx", f"{tmp_path / 'afile'} is not a folder"),
        "a file": (tmp_path / "afile", "is a file"),
        "a device": (Path("/dev/null"), "not a folder"),
        "in /proc": (Path("/proc/searchkit-idx"), "cannot create it"),
        "an index's catalog": (index / "catalog.db", "not a folder"),
    }[case]
    if case == "symlink loop":
        os.symlink("loop", folder)
    (tmp_path / "afile").write_text("a file, not a folder")
    commands = [["search", "loop"], ["info"], ["verify"], ["verify", "--repair"], ["optimize"]]
    if case in ("a file", "an index's catalog"):  # click's own check of --index: a usage error
        for command in [ingest_args(corpus, folder, small_bert), *commands]:
            usage_fails(invoke(*command, "--index", folder), "--index", folder, "is a file")
    else:
        fails_with(invoke(*ingest_args(corpus, folder, small_bert)), folder, "cannot be an index folder", why)
        fails_with(invoke(*ingest_args(corpus, folder, small_bert, "--rebuild")), folder, why)
        for command in commands:
            fails_with(invoke(*command, "--index", folder), folder, "no index here")
    assert (tmp_path / "afile").read_text() == "a file, not a folder"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["corpus", "index", "afile"] + ["loop"] * (case == "symlink loop"))
    intact()


def test_optimize_makes_no_folder(tmp_path):
    fails_with(invoke("optimize", "--index", tmp_path / "nothing"), "no index here")
    assert not (tmp_path / "nothing").exists()


def _model_variants(small_bert: Path, root: Path) -> dict[str, tuple[Path, list[str]]]:
    """Broken copies of a good model folder, each with what its error message must say."""
    out = {}

    def copy(name):
        folder = root / name
        shutil.copytree(small_bert, folder)
        return folder

    folder = copy("no-weights")
    (folder / "model.safetensors").unlink()
    out["no weights"] = folder, [folder, "no .safetensors weights"]

    folder = copy("pickle-only")
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    out["only a pickle"] = folder, [folder, "pytorch_model.bin", "pickled weights are never loaded"]

    folder = copy("unknown-arch")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "model_type": "mamba"}))
    out["unknown model_type"] = folder, [folder / "config.json", "model_type 'mamba' is not supported"]

    folder = copy("truncated")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    out["truncated safetensors"] = folder, [weights, "cannot read safetensors"]

    folder = copy("no-tokenizer")
    (folder / "tokenizer.json").unlink()
    out["no tokenizer.json"] = folder, [folder / "tokenizer.json", "not found"]

    folder = copy("bad-config")
    (folder / "config.json").write_text("{not json")
    out["config.json not JSON"] = folder, [folder / "config.json", "cannot read"]
    return out


MODEL_CASES = ["no weights", "only a pickle", "unknown model_type", "truncated safetensors",
               "no tokenizer.json", "config.json not JSON"]


@pytest.fixture(scope="module")
def broken_models(tmp_path_factory, small_bert):
    return _model_variants(small_bert, tmp_path_factory.mktemp("broken-models"))


@pytest.mark.parametrize("case", MODEL_CASES)
def test_broken_model_folder(built, broken_models, tmp_path, case):
    corpus, index, intact = built
    folder, needles = broken_models[case]
    fails_with(invoke(*ingest_args(corpus, index, folder)), *needles)
    fails_with(invoke(*ingest_args(corpus, index, folder, "--rebuild")), *needles)
    fails_with(invoke("embed", "some text", "--model", folder), *needles)
    intact()
    fresh = tmp_path / "fresh"
    fails_with(invoke(*ingest_args(corpus, fresh, folder)), *needles)
    assert not (fresh / "catalog.db").exists()


def test_index_whose_model_folder_is_gone(built, small_bert, tmp_path):
    corpus, index, intact = built
    moved = tmp_path / "moved"
    small_bert.rename(moved)
    try:
        fails_with(invoke("search", "loop", "--index", index), small_bert)
        verify_ok(index)  # verify needs no model
    finally:
        moved.rename(small_bert)
    intact()


class _Trap:
    """Unpickling this creates `marker`: proof that a pickle was loaded."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickles_are_never_loaded(built, small_bert, tmp_path, monkeypatch):
    """A model folder with safetensors *and* pickles beside them: the pickles are ignored,
    torch.load is never called, and the index takes it as the same model."""
    import torch

    corpus, index, intact = built
    marker = tmp_path / "unpickled"
    folder = tmp_path / "with-pickles"
    shutil.copytree(small_bert, folder)
    for name in ("pytorch_model.bin", "model.pt", "training_args.bin"):
        (folder / name).write_bytes(pickle.dumps(_Trap(marker)))

    def forbidden(*args, **kwargs):
        raise AssertionError("torch.load called")

    monkeypatch.setattr(torch, "load", forbidden)
    monkeypatch.setattr(pickle, "load", forbidden)
    monkeypatch.setattr(pickle, "loads", forbidden)
    write_corpus(corpus, ["for"])
    result = invoke(*ingest_args(corpus, index, folder))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["files_added"] == 1
    assert invoke("embed", "x", "--model", folder, "--json").exit_code == 0
    assert invoke("similarity", "a", "b", "--model", folder, "--json").exit_code == 0
    assert not marker.exists()
    verify_ok(index)


@pytest.mark.parametrize("damage", ["truncated", "garbage", "flipped bytes", "empty", "missing"])
def test_damaged_vectors_file(built, damage):
    """Found by search and verify (one line, exit 1); `verify --repair` re-embeds from the
    catalog, with every document kept."""
    corpus, index, intact = built
    [name] = segment_files(index)
    path = index / name
    data = path.read_bytes()
    before = vectors_of(index)
    if damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif damage == "flipped bytes":  # in the vectors themselves: FAISS reads it happily
        middle = len(data) // 2
        path.write_bytes(data[:middle] + bytes(b ^ 0x55 for b in data[middle:middle + 64]) + data[middle + 64:])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
    if damage == "missing":
        fails_with(invoke("search", "loop", "--index", index), path, "missing", "searchkit verify --repair")
    elif damage != "flipped bytes":
        fails_with(invoke("search", "loop", "--index", index), path)
    result = invoke("verify", "--index", index)
    assert result.exit_code == 1 and str(index) in result.stderr and "Traceback" not in result.output
    repaired = invoke("verify", "--index", index, "--repair", "--json")
    assert repaired.exit_code == 0, repaired.output
    assert json.loads(repaired.stdout)["repaired"]
    intact()
    after = vectors_of(index)
    assert after.keys() == before.keys()
    for key, vector in after.items():
        assert float(vector @ before[key]) > 0.9999


@pytest.mark.parametrize("damage", ["not sqlite", "empty file", "truncated"])
def test_catalog_that_is_not_a_database(built, small_bert, damage):
    corpus, index, _ = built
    catalog = index / "catalog.db"
    gc.collect()  # close the connections earlier in-process commands left open
    data = catalog.read_bytes()
    for path in index.glob("catalog.db*"):
        path.unlink()  # a new file, not one that open connections could still see
    if damage == "not sqlite":
        catalog.write_bytes(b"PK\x03\x04 this is a zip file, not a database" * 50)
    elif damage == "empty file":
        catalog.write_bytes(b"")
    else:
        catalog.write_bytes(data[: len(data) // 3])
    kept = catalog.read_bytes()
    for args in (["search", "loop", "--index", index], ["verify", "--index", index], ["info", "--index", index],
                 ingest_args(corpus, index, small_bert)):
        fails_with(invoke(*args), catalog)
    assert catalog.read_bytes() == kept  # never overwritten: --rebuild is the explicit way


# -- usage errors: one line, exit 2 ---------------------------------------------------------


@pytest.mark.parametrize("args, says", [
    (["search", "q", "-k", "abc"], ["search:", "'-k'", "'abc' is not a valid integer"]),
    (["search", "q", "-k", "1.5"], ["'-k'", "'1.5'"]),
    (["embed", "x", "--dim", "abc"], ["embed:", "'--dim'", "'abc'"]),
    (["map", "--max-points", "0"], ["map:", "'--max-points'", "0 is not in the range"]),
    (["search", "q", "--no-such-flag"], ["--no-such-flag"]),
    (["search"], ["search:", "QUERY"]),
    (["no-such-command"], ["no-such-command"]),
    (["ingest"], ["ingest:", "give at least one PATH"]),  # the commands' own usage errors too
])
def test_usage_errors_are_one_line_with_exit_2(args, says):
    usage_fails(invoke(*args), *says)


def test_help_still_shows_usage():
    result = invoke("search", "--help")
    assert result.exit_code == 0 and result.stdout.startswith("Usage: ")
    bare = invoke()  # a bare `searchkit` shows its help, as click does
    assert "Commands:" in bare.output and "searchkit: error" not in bare.output


@pytest.mark.parametrize("args, says", [
    (["embed", ""], "empty text"),
    (["embed", "  \t"], "empty text"),
    (["embed", "a text", ""], "text 2 is empty"),
    (["similarity", "--matrix", "a", " "], "text 2 is empty"),
    (["search", "", "--index", "no-index-needed"], "empty query"),  # as search does
])
def test_empty_texts_are_refused_like_empty_queries(args, says):
    fails_with(invoke(*args), says)
