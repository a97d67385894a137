"""Which files an ingest takes: .gitignore/.ignore (git's rules through pathspec), hidden
names, --include/--exclude; what is counted as skipped; files that become ignored."""

import json
import os

import pytest
from index_helpers import fails_with, invoke, query

from searchkit import readers
from searchkit.errors import BadInput
from searchkit.readers import walk
from searchkit.selection import Selection


def write(root, name, content="x"):
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return path


def walked(root, given=None, **selection):
    """(path relative to root, reason) for everything the walk of `given` (default root) yields."""
    found = walk([given or root], selection=Selection(**selection))
    return [(os.path.relpath(p, root.resolve()), r) for p, r in found]


def taken(root, given=None, **selection):
    return [p for p, r in walked(root, given, **selection) if r is None]


def test_gitignore_patterns_follow_git(tmp_path):
    write(tmp_path, ".gitignore", "build/\n*.csv\n!keep.csv\n/top.txt\n# a comment\n")
    for name in ["build/out.py", "src/build/gen.py", "src/app.py", "a.csv", "keep.csv", "top.txt", "src/top.txt"]:
        write(tmp_path, name)
    assert walked(tmp_path) == [
        (".gitignore", "hidden"),
        ("a.csv", "ignored by .gitignore (*.csv)"),
        ("build", "ignored by .gitignore (build/)"),  # the folder, once: not entered
        ("keep.csv", None),
        ("src/app.py", None),
        ("src/build", "ignored by .gitignore (build/)"),  # no leading slash: at any depth
        ("src/top.txt", None),  # /top.txt is anchored to the .gitignore's folder
        ("top.txt", "ignored by .gitignore (/top.txt)"),
    ]


def test_a_nested_gitignore_applies_below_its_folder_and_overrides(tmp_path):
    write(tmp_path, ".gitignore", "*.csv\n")
    write(tmp_path, "data/.gitignore", "!wanted.csv\n/local.txt\n")
    for name in ["a.csv", "data/wanted.csv", "data/other.csv", "data/local.txt", "local.txt"]:
        write(tmp_path, name)
    assert taken(tmp_path) == ["data/wanted.csv", "local.txt"]
    reasons = dict(walked(tmp_path))
    assert reasons["data/local.txt"] == "ignored by data/.gitignore (/local.txt)"
    assert reasons["data/other.csv"] == "ignored by .gitignore (*.csv)"


def test_dot_ignore_wins_over_gitignore_beside_it(tmp_path):
    write(tmp_path, ".gitignore", "notes.md\ndraft.md\n")
    write(tmp_path, ".ignore", "!notes.md\n")
    write(tmp_path, "notes.md")
    write(tmp_path, "draft.md")
    assert taken(tmp_path) == ["notes.md"]


def test_ignore_files_above_the_given_folder_count_up_to_the_repository_top(tmp_path):
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    write(repo, ".gitignore", "build/\n")
    write(tmp_path, ".gitignore", "*.py\n")  # above the repository: not git's business
    write(repo, "pkg/build/gen.py")
    write(repo, "pkg/mod.py")
    assert walked(tmp_path, repo / "pkg") == [
        ("repo/pkg/build", "ignored by ../.gitignore (build/)"),
        ("repo/pkg/mod.py", None),
    ]
    # Not inside a repository: only the ignore files at and below the given folder count.
    os.rmdir(repo / ".git")
    assert taken(tmp_path, repo / "pkg") == ["repo/pkg/build/gen.py", "repo/pkg/mod.py"]


def test_a_path_given_explicitly_is_taken_even_if_ignored(tmp_path):
    (tmp_path / ".git").mkdir()
    write(tmp_path, ".gitignore", "build/\nsecret.md\n")
    write(tmp_path, "build/out.py")
    write(tmp_path, "secret.md")
    assert taken(tmp_path, tmp_path / "build") == ["build/out.py"]
    assert taken(tmp_path, tmp_path / "secret.md") == ["secret.md"]


def test_no_ignore_and_hidden(tmp_path):
    write(tmp_path, ".gitignore", "*.md\n")
    for name in ["a.md", "node_modules/pkg/index.js", "__pycache__/m.txt", ".config/app.toml", ".git/HEAD",
                 ".env"]:
        write(tmp_path, name)
    assert taken(tmp_path) == []
    assert taken(tmp_path, ignore_files=False) == ["__pycache__/m.txt", "a.md", "node_modules/pkg/index.js"]
    # Dot-files are files like any other then (.env, .gitignore: text without a suffix); .git never.
    assert taken(tmp_path, hidden=True) == [".config/app.toml", ".env", ".gitignore"]
    assert dict(walked(tmp_path, hidden=True, ignore_files=False))[".git"] == "version control folder"


def test_include_and_exclude(tmp_path):
    for name in ["src/app.py", "src/util.py", "docs/guide.md", "tests/test_app.py", "data/t.tsv"]:
        write(tmp_path, name)
    assert taken(tmp_path, include=["*.py"]) == ["src/app.py", "src/util.py", "tests/test_app.py"]
    assert dict(walked(tmp_path, include=["*.py"]))["docs/guide.md"] == "not matched by --include"
    assert taken(tmp_path, include=["*.py", "*.md"], exclude=["tests/"]) == ["docs/guide.md", "src/app.py",
                                                                             "src/util.py"]
    assert dict(walked(tmp_path, exclude=["tests/"]))["tests"] == "excluded by --exclude tests/"
    assert taken(tmp_path, exclude=["/src/util.py", "*.tsv"]) == ["docs/guide.md", "src/app.py",
                                                                  "tests/test_app.py"]


@pytest.mark.parametrize("bad", ["", "   "])
def test_a_blank_pattern_is_refused(bad):
    with pytest.raises(BadInput, match="include"):
        Selection(include=[bad])


def test_a_skipped_folder_is_never_entered(tmp_path, monkeypatch):
    write(tmp_path, ".gitignore", "vendor/\n")
    for i in range(5):
        write(tmp_path, f"vendor/lib{i}/x.py")
        write(tmp_path, f"node_modules/p{i}/i.js")
    write(tmp_path, "main.py")
    entered = []
    real = os.scandir

    def spy(path):
        entered.append(os.path.relpath(path, tmp_path.resolve()))
        return real(path)

    monkeypatch.setattr(readers.os, "scandir", spy)
    assert walked(tmp_path) == [(".gitignore", "hidden"), ("main.py", None),
                                ("node_modules", "ignored (built-in: node_modules)"),
                                ("vendor", "ignored by .gitignore (vendor/)")]
    assert entered == ["."]


# ---------------------------------------------------------------------------- ingest


def ingest(corpus, index, model, *extra):
    result = invoke("ingest", corpus, "--index", index, "--model", model, "--chunk-tokens", 32,
                    "--device", "cpu", "--json", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_file_that_becomes_ignored_loses_its_chunks_and_comes_back(tmp_path, small_bert):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write(corpus, "keep.md", "Lighthouses guide ships at night.")
    write(corpus, "notes/later.md", "Harbours shelter boats from storms.")
    first = ingest(corpus, index, small_bert)
    assert first["files_added"] == 2

    write(corpus, ".gitignore", "notes/\n")
    second = ingest(corpus, index, small_bert)
    assert second["files_removed"] == 1 and second["chunks_removed"] >= 1
    skipped = {os.path.basename(s["path"]): s["reason"] for s in second["skipped"]}
    assert skipped == {".gitignore": "hidden", "notes": "ignored by .gitignore (notes/)"}
    assert second["files_skipped"] == 2

    # Excluding a file by name on a later run does the same; dropping the rule brings both back.
    third = ingest(corpus, index, small_bert, "--exclude", "keep.md")
    assert third["files_removed"] == 1
    (corpus / ".gitignore").unlink()
    fourth = ingest(corpus, index, small_bert)
    assert fourth["files_added"] == 2 and fourth["files_removed"] == 0


def test_cli_selection_flags(tmp_path, small_bert):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write(corpus, ".gitignore", "gen/\n")
    write(corpus, "gen/made.py", "GENERATED = True\n")
    write(corpus, "src/app.py", "def main():\n    return 1\n")
    write(corpus, ".hidden/note.txt", "a hidden note")
    write(corpus, "README", "A readme without a suffix.\n")
    summary = ingest(corpus, index, small_bert, "--no-ignore", "--hidden", "--include", "*.py",
                     "--include", "*.txt", "--exclude", "src/")
    paths = sorted(os.path.relpath(p, corpus.resolve()) for (p,) in query(index, "SELECT path FROM files"))
    assert paths == [".hidden/note.txt", "gen/made.py"]
    assert summary["files_added"] == 2
    result = invoke("ingest", corpus, "--index", index, "--model", small_bert, "--include", "")
    fails_with(result, "--include")


@pytest.mark.parametrize("link, target, extra", [
    ("README", "README.md", ("--include", "*.md")),  # not matched by --include
    (".latest.md", "notes/x.md", ()),  # hidden
])
def test_a_left_out_link_leaves_its_target_alone(tmp_path, small_bert, link, target, extra):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write(corpus, target, "Lighthouses guide ships at night.")
    write(corpus, "other.md", "Harbours shelter boats from storms.")
    (corpus / link).symlink_to(target)
    target_path = str((corpus / target).resolve())

    def target_chunks():
        return query(index, "SELECT count(*) FROM chunks JOIN documents ON chunks.document_id = documents.id"
                            " JOIN files ON documents.file_id = files.id WHERE files.path = ?", (target_path,))[0][0]

    first = ingest(corpus, index, small_bert, *extra)
    assert first["files_added"] == 2 and target_chunks() >= 1
    chunks = query(index, "SELECT count(*) FROM chunks")[0][0]
    for _ in range(2):  # the link is left out each run; its target is still taken directly
        again = ingest(corpus, index, small_bert, *extra)
        assert again["files_removed"] == 0 and again["files_added"] == 0, again
        assert query(index, "SELECT count(*) FROM chunks")[0][0] == chunks
        assert target_chunks() >= 1
    assert str(corpus.resolve() / link) in [s["path"] for s in again["skipped"]]


def test_a_target_reached_only_through_a_link_that_is_now_left_out_is_removed(tmp_path, small_bert):
    corpus, index = tmp_path / "corpus", tmp_path / "index"
    write(tmp_path, "outside/x.md", "Lighthouses guide ships at night.")
    write(corpus, "other.md", "Harbours shelter boats from storms.")
    (corpus / "link.md").symlink_to(tmp_path / "outside" / "x.md")
    assert ingest(corpus, index, small_bert)["files_added"] == 2
    second = ingest(corpus, index, small_bert, "--exclude", "link.md")
    assert second["files_removed"] == 1
    paths = [p for (p,) in query(index, "SELECT path FROM files")]
    assert paths == [str((corpus / "other.md").resolve())]
