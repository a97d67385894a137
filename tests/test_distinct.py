"""`search(..., distinct=True)` and `searchkit search --distinct`: one hit per text, the
chunks that repeat it listed as its copies."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import searchkit
from searchkit.cli import main
from searchkit.distinct import fold, text_key
from searchkit.hits import Hit

EXCEPT = ('"except" clause\n{rule}\n\nThe "except" clause(s) specify one or more exception handlers. When no '
          'exception occurs in the "try" clause, no exception handler is executed.\n')
OTHER = {
    "raise.txt": "The raise statement throws an exception object; with no expression it re-raises the active one.",
    "finally.txt": "A finally clause always runs on the way out of a try statement, exception or not, to clean up.",
    "loops.txt": "A for loop walks over the items of a sequence, one at a time, in order.",
}


def test_rules_and_spacing_do_not_tell_texts_apart():
    assert text_key(EXCEPT.format(rule="-" * 15)) == text_key(EXCEPT.format(rule="=" * 15))
    assert text_key("one  two\n\tthree") == text_key("one two three")
    # Everything else counts: operators, single punctuation, case.
    assert text_key("a = b + c") != text_key("a = b - c")
    assert text_key("x -- y") != text_key("x y")  # two dashes are not a rule
    assert text_key("Exception") != text_key("exception")


def _hit(rank, text, path):
    return Hit(rank, 1.0 - rank / 100, path, rank, text, 0, len(text))


def test_fold_keeps_the_best_of_each_text_and_ranks_again():
    hits = [_hit(1, "alpha", "a1"), _hit(2, "alpha ", "a2"), _hit(3, "beta", "b"),
            _hit(4, "gamma", "g"), _hit(5, "alpha", "a3"), _hit(6, "beta", "b2")]
    out = fold(hits, 2)
    assert [(h.rank, h.path) for h in out] == [(1, "a1"), (2, "b")]
    # Copies found past the k-th distinct text still join the hit they repeat.
    assert [c.path for c in out[0].copies] == ["a2", "a3"]
    assert [c.path for c in out[1].copies] == ["b2"]
    assert out[0].copies[0].score == hits[1].score
    assert fold(hits, 10)[2].path == "g" and fold(hits, 10)[2].copies == ()


@pytest.fixture(scope="module")
def copies(tmp_path_factory, minilm):
    """The "except" section in five files (two underline styles), and three other files."""
    corpus = tmp_path_factory.mktemp("corpus")
    for i in range(5):
        (corpus / f"copy{i}.txt").write_text(EXCEPT.format(rule="-=" [i % 2] * 15))
    for name, text in OTHER.items():
        (corpus / name).write_text(text + "\n")
    index = searchkit.open_index(tmp_path_factory.mktemp("index"), encoder=minilm)
    index.ingest([corpus])
    return corpus, index


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_distinct_reaches_past_the_copies(copies, mode):
    _, index = copies
    query = "which except clause handles the exception"
    plain = index.search(query, k=3, mode=mode)
    assert all(Path(h.path).name.startswith("copy") for h in plain)  # the copies fill the page
    assert all(h.copies == () for h in plain)

    hits = index.search(query, k=3, mode=mode, distinct=True)
    names = [Path(h.path).name for h in hits]
    assert len(hits) == 3 and [h.rank for h in hits] == [1, 2, 3]
    assert names[0].startswith("copy") and not any(n.startswith("copy") for n in names[1:])
    assert len(set(names)) == 3
    # The four other copies are listed under the first, wherever they ranked.
    assert sorted(Path(c.path).name for c in hits[0].copies) == sorted(
        f"copy{i}.txt" for i in range(5) if f"copy{i}.txt" != names[0])
    # Ranking is kept: the distinct hits are the plain list's, in its order, less the copies.
    deep = [Path(h.path).name for h in index.search(query, k=8, mode=mode)]
    assert names == [n for n in deep if n == names[0] or not n.startswith("copy")][:3]


def test_distinct_with_fewer_texts_than_k(copies):
    _, index = copies
    hits = index.search("exception", k=20, distinct=True)
    assert len(hits) == 4  # one "except" text and three others, all 8 chunks seen
    assert sum(1 + len(h.copies) for h in hits) == 8


def test_cli_distinct_lists_the_copies(copies):
    _, index = copies
    runner = CliRunner()
    args = ["search", "which except clause handles the exception", "--index", str(index.folder), "-k", "2"]
    out = runner.invoke(main, [*args, "--distinct", "--json"])
    assert out.exit_code == 0, out.output
    hits = json.loads(out.stdout)
    assert len(hits) == 2 and len(hits[0]["copies"]) == 4
    assert {"path", "start", "end", "score", "line_start"} <= set(hits[0]["copies"][0])
    assert "text" not in hits[0]["copies"][0]

    plain = json.loads(runner.invoke(main, [*args, "--json"]).stdout)
    assert [h["copies"] for h in plain] == [[], []]

    text = runner.invoke(main, [*args, "--distinct"])
    assert text.exit_code == 0, text.output
    assert text.stdout.count("same text: ") == 4

    piped = runner.invoke(main, [*args[:1], "-", *args[2:], "--distinct", "--json"],
                          input="which except clause handles the exception\n")
    assert json.loads(piped.stdout.splitlines()[0])["hits"] == hits
