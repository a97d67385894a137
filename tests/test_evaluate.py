"""IR metrics against hand-computed values, the BEIR loader, and `eval` on a slice of SciFact."""

import json
import math
from pathlib import Path

import pytest
from click.testing import CliRunner

from searchkit.cli import main
from searchkit.errors import BadInput
from searchkit.evaluate import evaluate, load_beir, mrr_at_k, ndcg_at_k, recall_at_k, score_run

SCIFACT = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact"  # beside the checkout
L3 = math.log2(3)  # the discount at rank 2


@pytest.mark.parametrize(
    "ranked,rels,k,expected",
    [
        (["a", "b"], {"a": 1}, 10, 1.0),  # the one relevant document first
        (["x", "a"], {"a": 1}, 10, 1 / L3),  # second: 1/log2(3) over an ideal of 1
        (["x", "a"], {"a": 1}, 1, 0.0),  # cut off
        (["a", "b", "c"], {"b": 1, "c": 2}, 3, (1 / L3 + 2 / 2) / (2 + 1 / L3)),  # graded: ideal is c, b
        (["b", "a"], {"a": 2, "b": 1}, 10, (1 + 2 / L3) / (2 + 1 / L3)),
        (["a"], {"a": 1, "b": 1, "c": 1}, 1, 1.0),  # the ideal is cut at k too
        (["a"], {"a": 1, "b": 1, "c": 1}, 2, 1 / (1 + 1 / L3)),
        (["a", "a", "b"], {"b": 1}, 10, 1 / L3),  # a repeated document counts once
        (["x", "y"], {"a": 1}, 10, 0.0),
        (["a", "b"], {"a": 0, "b": 1}, 10, 1 / L3),  # score 0 is not relevant
    ],
)
def test_ndcg_by_hand(ranked, rels, k, expected):
    assert ndcg_at_k(ranked, rels, k) == pytest.approx(expected, abs=1e-12)


def test_ndcg_hand_value_in_digits():
    # DCG = 1/log2(3) + 2/log2(4) = 1.63093; IDCG = 2/log2(2) + 1/log2(3) = 2.63093.
    assert ndcg_at_k(["a", "b", "c"], {"b": 1, "c": 2}, 3) == pytest.approx(1.630930 / 2.630930, abs=1e-6)  # 0.619906


@pytest.mark.parametrize(
    "ranked,rels,k,expected",
    [
        (["a", "b", "c"], {"b": 1, "z": 1}, 2, 0.5),
        (["a", "b", "c"], {"b": 1, "z": 1}, 1, 0.0),
        (["b", "z"], {"b": 1, "z": 2}, 100, 1.0),
        (["b"], {"b": 0}, 10, 0.0),  # nothing relevant judged
    ],
)
def test_recall_by_hand(ranked, rels, k, expected):
    assert recall_at_k(ranked, rels, k) == expected


@pytest.mark.parametrize(
    "ranked,rels,k,expected",
    [(["a", "b", "c"], {"c": 1}, 10, 1 / 3), (["a", "b", "c"], {"c": 1}, 2, 0.0),
     (["c", "a"], {"c": 1, "a": 1}, 10, 1.0), ([], {"c": 1}, 10, 0.0)],
)
def test_mrr_by_hand(ranked, rels, k, expected):
    assert mrr_at_k(ranked, rels, k) == expected


def test_score_run_averages_over_judged_queries():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1}, "q3": {"c": 0}}  # q3 has nothing relevant: left out
    run = {"q1": ["x", "a"]}  # q2 got no results: counts 0
    out = score_run(run, qrels)
    assert out["mrr@10"] == pytest.approx(0.25)
    assert out["ndcg@10"] == pytest.approx((1 / L3) / 2)
    assert out["recall@100"] == pytest.approx(0.5)


def _beir(folder: Path, qrels="query-id\tcorpus-id\tscore\n1\td1\t1\n2\td3\t2\n2\td1\t0\n") -> Path:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "title": f"T{i}", "text": f"text {i}"}) + "\n"
                                                 for i in range(1, 5)))
    (folder / "queries.jsonl").write_text('{"_id": "1", "text": "one"}\n{"_id": "2", "text": "two"}\n{"_id": "3", "text": "x"}\n')
    (folder / "qrels" / "test.tsv").write_text(qrels)
    return folder


def test_load_beir_keeps_judged_queries_and_limits(tmp_path):
    ds = load_beir(_beir(tmp_path / "ds"))
    assert ds.doc_ids == ["d1", "d2", "d3", "d4"] and list(ds.queries) == ["1", "2"]
    assert ds.qrels["2"] == {"d3": 2, "d1": 0}
    cut = load_beir(tmp_path / "ds", limit_docs=2)  # d3 is out: query 2 keeps no relevant document
    assert cut.doc_ids == ["d1", "d2"] and list(cut.queries) == ["1"]
    assert list(load_beir(tmp_path / "ds", limit_queries=1).queries) == ["1"]


@pytest.mark.parametrize("qrels,message", [("q\td\ts\n", "header"), ("query-id\tcorpus-id\tscore\n1\td1\n", "line 2")])
def test_load_beir_bad_qrels(tmp_path, qrels, message):
    with pytest.raises(BadInput, match=message):
        load_beir(_beir(tmp_path / "ds", qrels))


def test_eval_cli_missing_folder_is_one_line(tmp_path):
    result = CliRunner().invoke(main, ["eval", str(tmp_path / "nope")])
    assert result.exit_code == 1 and "no such dataset folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


needs_scifact = pytest.mark.skipif(not (SCIFACT / "corpus.jsonl").is_file(), reason=f"SciFact not at {SCIFACT}")


@needs_scifact
def test_whole_record_text_tokenizes_like_the_reference(minilm):
    """Our documents are title + "\\n\\n" + text; sentence-transformers embeds title + " " + text."""
    records = [json.loads(line) for line in open(SCIFACT / "corpus.jsonl", encoding="utf-8")][:300]
    ours = minilm.tokenize([f"{r['title']}\n\n{r['text']}" for r in records])
    reference = minilm.tokenize([f"{r['title']} {r['text']}".strip() for r in records])
    assert ours == reference


@needs_scifact
def test_eval_on_a_scifact_slice_is_sane_and_repeatable(tmp_path, minilm):
    kwargs = dict(index_dir=tmp_path / "idx", modes=["dense", "lexical", "hybrid"], limit_docs=200, encoder=minilm)
    first = evaluate(SCIFACT, **kwargs)
    assert (first.documents, first.chunks, first.queries, first.chunking) == (200, 200, 9, "whole")
    for mode, r in first.results.items():
        assert 0.5 < r["ndcg@10"] <= 1 and 0.5 < r["mrr@10"] <= 1, (mode, r)
        assert r["recall@100"] >= 0.9, (mode, r)
        assert all(len(set(ranked)) == len(ranked) <= 100 for ranked in first.runs[mode].values())
    assert all(len(ranked) == 100 for ranked in first.runs["dense"].values())  # documents, not chunks
    again = evaluate(SCIFACT, **kwargs)  # same index: nothing to embed, same rankings
    assert again.chunks_embedded == 0
    assert again.runs == first.runs and again.results.keys() == first.results.keys()
    for mode in first.results:
        assert {k: v for k, v in again.results[mode].items() if k != "query_seconds"} == \
               {k: v for k, v in first.results[mode].items() if k != "query_seconds"}


def test_eval_cli_json_on_a_tiny_dataset(tmp_path):
    folder = _beir(tmp_path / "ds")
    result = CliRunner().invoke(main, ["eval", str(folder), "--mode", "all", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert (out["documents"], out["queries"], out["chunks"], out["chunking"]) == (4, 2, 4, "whole")
    assert out["index"] is None and out["chunks_embedded"] == 4 and out["ingest_seconds"] >= 0
    assert list(out["results"]) == ["dense", "lexical", "hybrid"]
    for mode, r in out["results"].items():
        assert set(r) == {"ndcg@10", "recall@100", "mrr@10", "query_seconds"}
        if mode != "lexical":  # ("one", "two" share no word with the texts)
            assert r["recall@100"] == 1.0  # four documents: every relevant one is in the top 100
    bad = CliRunner().invoke(main, ["eval", str(folder), "--mode", "dense,fuzzy"])
    assert bad.exit_code == 1 and "--mode 'fuzzy'" in bad.stderr
