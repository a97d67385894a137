"""Metadata filters, the FTS5 lexical index, hybrid fusion, and their CLI flags."""

import json
import os
import sqlite3
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_index import write_topics

import searchkit
from searchkit.cli import main
from searchkit.errors import BadInput
from searchkit.filters import compile_where, glob_escape
from searchkit.retrieval import fts_query, rrf
from searchkit.verify import repair, verify

OLD = 1577880000.0  # 2020-01-01 12:00 UTC
JOURNALS = ["Nature", "Science", "x' OR 1=1 --"]


def _records():
    """30 short records; `lang` is "de" for 12 of them, `year` 2010..2039."""
    rows = []
    for i in range(30):
        rows.append({"_id": f"r{i}", "title": f"Note {i}", "text": f"A note about garden plants number {i}.",
                     "year": 2010 + i, "lang": "de" if i % 5 < 2 else "en", "journal": JOURNALS[i % 3]})
    return rows


@pytest.fixture(scope="module")
def built(tmp_path_factory, minilm):
    corpus = write_topics(tmp_path_factory.mktemp("corpus"), ["lambda", "del", "with", "import"])
    (corpus / "sub").mkdir()
    (corpus / "sub" / "loops.md").write_text("# Loops\n\nA for loop walks over the items of a sequence.")
    (corpus / "notes.md").write_text("# Notes\n\nThe lambda keyword makes small anonymous functions.")
    (corpus / "recs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in _records()))
    for name in ("lambda.txt", "del.txt"):
        os.utime(corpus / name, (OLD, OLD))
    index = searchkit.open_index(tmp_path_factory.mktemp("index"), encoder=minilm)
    index.ingest([corpus])
    return corpus, index


def _names(hits):
    return [Path(h.path).name + (f"#{h.document}" if h.document else "") for h in hits]


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
@pytest.mark.parametrize(
    "where,allowed",
    [
        ("path:*.md", {"notes.md", "loops.md"}),
        ({"path": "sub/*.md"}, {"loops.md"}),
        ("type:md", {"notes.md", "loops.md"}),
        (["type:txt", "mtime<2021-01-01"], {"lambda.txt", "del.txt"}),
        ({"mtime>": "2021-01-01", "type": ["txt"]}, {"with.txt", "import.txt"}),
        ("field.lang=de", {"recs.jsonl"}),
    ],
)
def test_filters_restrict_hits(built, mode, where, allowed):
    _, index = built
    query = "lambda function note plants loop items sequence statement deletion import context manager"
    hits = index.search(query, k=50, mode=mode, where=where)
    assert hits and {Path(h.path).name for h in hits} <= allowed


def test_path_glob_absolute_and_escaped(built):
    corpus, index = built
    exact = index.search("anything", k=5, where=f"path:{glob_escape(str(corpus / 'del.txt'))}")
    assert _names(exact) == ["del.txt"]
    assert index.search("anything", k=5, where="path:del.txt")[0].path.endswith("/del.txt")
    assert index.search("anything", k=5, where="path:el.txt") == []  # a relative glob starts at a folder


def test_jsonl_field_comparisons(built):
    _, index = built
    hits = index.search("garden plants", k=50, where=["field.year>=2035"])
    assert sorted(h.document for h in hits) == sorted(f"r{i}" for i in range(25, 30))
    assert _names(index.search("plants", k=50, where={"field.year": 2012})) == ["recs.jsonl#r2"]
    assert {h.document for h in index.search("plants", k=50, where="field.journal=Nature")} == \
           {f"r{i}" for i in range(0, 30, 3)}
    assert index.search("plants", k=50, where="field.year>=abc") == []  # text never compares with numbers


def test_selective_filter_still_returns_k(built):
    """Only 12 of 40-odd chunks are lang=de, and dense top-10 over everything holds few of them."""
    _, index = built
    for mode in ("dense", "lexical", "hybrid"):
        hits = index.search("a note about garden plants", k=10, mode=mode, where="field.lang=de")
        assert len(hits) == 10, mode
        assert {int(h.document[1:]) % 5 for h in hits} <= {0, 1}
        assert [h.rank for h in hits] == list(range(1, 11))


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_everything_filtered_out_is_empty(built, mode):
    _, index = built
    assert index.search("lambda", k=5, mode=mode, where="path:*.rst") == []
    assert index.search("lambda", k=5, mode=mode, where=["type:md", "field.lang=de"]) == []


def test_filter_values_are_bound_not_pasted(built):
    _, index = built
    hits = index.search("plants", k=50, where="field.journal=x' OR 1=1 --")
    assert {h.document for h in hits} == {f"r{i}" for i in range(2, 30, 3)}  # the literal string
    for where in ["path:*' OR 1=1 --", "field.journal=Nature' OR '1'='1", {"field.lang": "de' --"},
                  "type:md') OR 1=1 --"]:
        try:
            assert index.search("plants", k=50, where=where) == []
        except BadInput:
            pass  # refused (an unknown type): fine too, as long as nothing leaks through


@pytest.mark.parametrize(
    "bad,message",
    [("year=2020", "expected path:GLOB"), ("type:docx", "unknown type 'docx'"), ("mtime>soon", "ISO date"),
     ("mtime=2020-01-01", "mtime takes"), ("path:", "no value"), ("field.a\"b=1", "field name")],
)
def test_bad_where_is_refused_by_name(bad, message):
    with pytest.raises(BadInput, match=message) as info:
        compile_where(bad)
    assert repr(bad) in str(info.value)


def test_cli_bad_where_is_one_line(built):
    _, index = built
    result = CliRunner().invoke(main, ["search", "x", "--index", str(index.folder), "--where", "colour=red"])
    assert result.exit_code == 1
    err = result.stderr.strip()
    assert "--where 'colour=red'" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("query", ['"unbalanced quote', "well-known - minus", "star*", "AND", "OR NOT",
                                   "(parenthesis", "NEAR(lambda del)", "text:lambda", "^lambda", "a\"b'c",
                                   "***", "lambda AND (del OR", "élan café"])
def test_lexical_queries_never_raise(built, query):
    _, index = built
    for mode in ("lexical", "hybrid"):
        hits = index.search(query, k=5, mode=mode)
        assert all(h.score > 0 for h in hits)


def test_fts_query_quotes_words():
    assert fts_query('say "hi" -- (AND) x*') == '"say" OR "hi" OR "x"'
    assert fts_query("the and of") == '"the" OR "and" OR "of"'  # only stopwords: keep them
    assert fts_query("!!! ---") is None


def test_rrf_by_hand():
    fused = rrf([[(7, 0.9), (3, 0.8)], [(3, 12.0), (5, 9.0)]], k=3)
    assert [i for i, _ in fused] == [3, 7, 5]
    assert fused[0][1] == pytest.approx(1 / 62 + 1 / 61)
    assert fused[1][1] == pytest.approx(1 / 61) and fused[2][1] == pytest.approx(1 / 62)


def test_lexical_scores_are_bm25_and_rank_exact_words(built):
    _, index = built
    hits = index.search("anonymous functions", k=3, mode="lexical")
    assert _names(hits)[0] in ("notes.md", "lambda.txt")
    assert all(a.score >= b.score > 0 for a, b in zip(hits, hits[1:]))


def test_fts_follows_update_and_delete(tmp_path, minilm):
    corpus = write_topics(tmp_path / "c", ["pass", "del"])
    (corpus / "x.txt").write_text("The zyzzyva weevil lives on palms.")
    index = searchkit.open_index(tmp_path / "i", encoder=minilm)
    index.ingest([corpus])
    assert _names(index.search("zyzzyva", k=5, mode="lexical")) == ["x.txt"]

    (corpus / "x.txt").write_text("The quokka smiles on Rottnest island.")
    index.ingest([corpus])
    assert index.search("zyzzyva", k=5, mode="lexical") == []
    assert _names(index.search("quokka", k=5, mode="lexical")) == ["x.txt"]

    (corpus / "x.txt").unlink()
    index.ingest([corpus])
    assert index.search("quokka", k=5, mode="lexical") == []
    report = verify(index)
    assert report.ok and report.counts["fts_rows"] == report.counts["chunks"]


def test_old_index_gets_its_fts_backfilled(tmp_path, minilm):
    corpus = write_topics(tmp_path / "c", ["pass", "del"])
    index = searchkit.open_index(tmp_path / "i", encoder=minilm)
    index.ingest([corpus])
    index.close()
    db = sqlite3.connect(tmp_path / "i" / "catalog.db")  # make it an index from before m002
    with db:
        for trigger in ("chunks_fts_insert", "chunks_fts_delete", "chunks_fts_update"):
            db.execute(f"DROP TRIGGER {trigger}")
        db.execute("DROP TABLE chunks_fts")
        db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm002_chunks_fts'")
    db.close()
    reopened = searchkit.open_index(tmp_path / "i", encoder=minilm)
    assert _names(reopened.search("pass statement null operation", k=1, mode="lexical")) == ["pass.txt"]
    assert verify(reopened).ok


def test_verify_finds_and_repairs_fts_drift(tmp_path, minilm):
    corpus = write_topics(tmp_path / "c", ["pass", "del"])
    index = searchkit.open_index(tmp_path / "i", encoder=minilm)
    index.ingest([corpus])
    db = index.catalog.db
    row = db.execute("SELECT id, text FROM chunks LIMIT 1").fetchone()
    with db.atomic():
        db.execute("INSERT INTO chunks_fts(chunks_fts, rowid, text) VALUES ('delete', ?, ?)", list(row))
    report = verify(index)
    assert not report.ok and any("full-text index" in p for p in report.problems)
    fixed = repair(index)
    assert fixed.ok and any("full-text" in r for r in fixed.repaired)


def test_whole_chunking_makes_one_chunk_per_document(tmp_path, minilm):
    corpus = write_topics(tmp_path / "c", ["class", "pass"])  # "class" is far longer than 256 tokens
    index = searchkit.open_index(tmp_path / "i", encoder=minilm, chunking="whole")
    summary = index.ingest([corpus])
    assert summary.chunks_added == 2 and index.settings.chunking == "whole"
    hit = index.search("class definition", k=1)[0]
    assert hit.path.endswith("class.txt") and hit.start == 0 and hit.text == Path(hit.path).read_text().strip()
    # The vector is the encoder's (truncated) embedding of the whole text.
    assert hit.score == pytest.approx(float(minilm.encode(["class definition"])[0] @ minilm.encode([hit.text])[0]), abs=1e-5)
    with pytest.raises(BadInput, match="chunking"):
        searchkit.open_index(tmp_path / "i", encoder=minilm, chunking="chunks").ingest([corpus])


@pytest.mark.parametrize("mode", ["lexical", "hybrid"])
def test_cli_search_modes_json(built, mode):
    _, index = built
    result = CliRunner().invoke(main, ["search", "delete a name binding", "--index", str(index.folder), "-k", "3",
                                       "--mode", mode, "--where", "type:txt", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 3 and Path(hits[0]["path"]).name == "del.txt"
    assert set(hits[0]) >= {"rank", "score", "path", "chunk_id", "text", "start", "end"}
    if mode == "hybrid":
        assert all(0 < h["score"] <= 2 / 61 for h in hits)
