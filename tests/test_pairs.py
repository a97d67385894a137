"""Sentence-pair files: parsing (header by name or position, bad rows by line number), the
metrics against scipy/sklearn and a brute force, and `similarity --pairs` against the
Python API."""

import itertools
import json

import numpy as np
import pytest
from index_helpers import fails_with, invoke
from scipy.stats import pearsonr, spearmanr
from sklearn.metrics import roc_auc_score

from searchkit.errors import BadInput
from searchkit.pairs import best_threshold, label_metrics, parse_pairs, read_pairs
from searchkit.similarity import compare, cosine, matrix, paired

# The layout: id, sentence1, sentence2, label (1 = similar, 0 = different).
BINARY = """id\tsentence1\tsentence2\tlabel
1\tThe cat sits outside\tThe cat plays in the garden\t1
2\tA man is playing guitar\tA woman watches TV\t0
3\tI love pasta\tDo you like pizza?\t1
4\tThe new movie is awesome\tThe new movie is so great\t1
5\tThe cat sits outside\tA woman watches TV\t0

6\tI love pasta\tThe new movie is awesome\t0
7\tA man is playing guitar\tA man plays the guitar\t1
8\tDo you like pizza?\tThe cat plays in the garden\t0
"""
GRADED = """sentence1\tsentence2\tscore
A man is playing guitar\tA man plays the guitar\t4.8
The cat sits outside\tThe cat plays in the garden\t3.2
I love pasta\tDo you like pizza?\t2.5
The new movie is awesome\tA woman watches TV\t0.2
A woman watches TV\tA woman is watching television\t4.6
"""
CLI_ENCODER = ("--device", "cpu", "--dtype", "fp32")


def lines(text):
    return [(n, t) for n, t in enumerate(text.splitlines(), 1) if t.strip()]


# -- parsing -------------------------------------------------------------------------------

def test_header_by_name_in_any_order():
    text = "label\tignored\tSentence2\tsentence1\nx\t0.5\tb\ta\n"
    with pytest.raises(BadInput, match="line 2: label 'x' is not a number"):
        parse_pairs(lines(text), "f.tsv")
    pf = parse_pairs(lines("label\tignored\tSentence2\tsentence1\n0.5\tzz\tb\ta\n"), "f.tsv")
    assert pf.header and pf.columns == {"label": 0, "sentence2": 2, "sentence1": 3}
    assert [(p.line, p.sentence1, p.sentence2, p.label) for p in pf.pairs] == [(2, "a", "b", 0.5)]


@pytest.mark.parametrize("label", ["1_0", "0_5", "١", "1e", "--1"])
def test_a_label_must_be_written_as_a_plain_number(label):
    """Python's float() reads "1_0" as 10 and Arabic-Indic digits as numbers: in a label file
    those are typos to report, not values to score against."""
    with pytest.raises(BadInput, match=f"line 2: label '{label}' is not a number"):
        parse_pairs(lines(f"a\tb\t1\nc\td\t{label}\n"), "f.tsv")
    pf = parse_pairs(lines("a\tb\t1\nc\td\t-0.5e1\ne\tf\t+.5\ng\th\t3.\n"), "f.tsv")
    assert [p.label for p in pf.pairs] == [1.0, -5.0, 0.5, 3.0]


@pytest.mark.parametrize("text,expected", [
    # 4 columns, no header: id, sentence1, sentence2, label
    ("7\ta\tb\t1\n8\tc\td\t0\n", [("7", "a", "b", 1.0), ("8", "c", "d", 0.0)]),
    # 4 columns, a header of other names (its label field is no number): by position
    ("pid\tq1\tq2\tdup\n7\ta\tb\t1\n", [("7", "a", "b", 1.0)]),
    # 3 columns: sentence1, sentence2, label
    ("a\tb\t3.5\n", [(None, "a", "b", 3.5)]),
    # 2 columns: sentence1, sentence2, no labels
    ("a\tb\nc\td\n", [(None, "a", "b", None), (None, "c", "d", None)]),
])
def test_columns_by_position(text, expected):
    pf = parse_pairs(lines(text), "f.tsv")
    assert [(p.id, p.sentence1, p.sentence2, p.label) for p in pf.pairs] == expected


@pytest.mark.parametrize("text,message", [
    (BINARY.replace("3\tI love pasta\tDo you like pizza?\t1", "3\tI love pasta\t1"),
     "f.tsv line 4: missing label (3 fields, expected 4: id, sentence1, sentence2, label)"),
    (BINARY.replace("Do you like pizza?\t1", "\t1"), "f.tsv line 4: empty sentence2"),
    (BINARY.replace("The cat plays in the garden\t0", "The cat plays in the garden\t"), "f.tsv line 10: empty label"),
    ("a\tb\t1\nc\n", "f.tsv line 2: missing sentence2, label"),
    ("a\tb\t1\tx\ty\n", "f.tsv line 1: 5 fields; without a header"),
    ("only one\n", "f.tsv line 1: 1 field;"),
    ("sentence1\tsentence2\n", "no pairs (only a header row)"),
])
def test_bad_rows_are_named_by_line(text, message):
    with pytest.raises(BadInput) as info:
        parse_pairs(lines(text), "f.tsv")
    assert message in str(info.value)


def test_every_bad_line_is_counted():
    text = "a\tb\t1\nc\t\t1\nd\te\t0\nf\n\ng\th\tno\n"
    with pytest.raises(BadInput, match=r"line 2: empty sentence2 \(2 more bad lines: 4, 6\)"):
        parse_pairs(lines(text), "f.tsv")


def test_read_pairs_csv_and_bad_utf8(tmp_path):
    path = tmp_path / "p.csv"
    path.write_text('sentence1,sentence2,label\n"a, with a comma",b,1\n', encoding="utf-8")
    assert [(p.sentence1, p.sentence2) for p in read_pairs(path).pairs] == [("a, with a comma", "b")]
    bad = tmp_path / "bad.tsv"
    bad.write_bytes(b"a\tb\t1\nc\td\xff\t0\n")
    with pytest.raises(BadInput, match=r"bad.tsv line 2: not valid UTF-8"):
        read_pairs(bad)
    with pytest.raises(BadInput, match="no such file"):
        read_pairs(tmp_path / "missing.tsv")


# -- metrics -------------------------------------------------------------------------------

def brute_force_accuracy(scores, labels):
    """The best accuracy of "similar when score >= t" over every t, and of calling nothing similar."""
    candidates = [np.inf, *scores]
    return max(float(np.mean((scores >= t) == (labels == 1))) for t in candidates)


@pytest.mark.parametrize("seed", range(6))
def test_best_threshold_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 40))
    labels = rng.integers(0, 2, n)
    scores = np.round(rng.normal(labels * rng.uniform(-1, 2), 1.0), 1)  # rounded: ties
    accuracy, threshold = best_threshold(scores, labels)
    assert accuracy == pytest.approx(brute_force_accuracy(scores, labels), abs=1e-12)
    assert float(np.mean((scores >= threshold) == (labels == 1))) == pytest.approx(accuracy, abs=1e-12)


def test_best_threshold_can_call_nothing_similar():
    scores, labels = np.array([0.9, 0.8, 0.1]), np.array([0, 0, 1])  # anti-correlated
    accuracy, threshold = best_threshold(scores, labels)
    assert accuracy == pytest.approx(2 / 3) and threshold > 0.9


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_label_metrics_agree_with_scipy_and_sklearn(metric):
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 30).astype(float)
    scores = rng.normal(labels, 0.8)
    if metric == "euclidean":
        scores = 3.0 - scores  # a distance: smaller = more similar
    oriented = -scores if metric == "euclidean" else scores
    m, _ = label_metrics(scores, labels, metric)
    assert m["labels"] == "binary" and m["similar"] == int(labels.sum())
    assert m["roc_auc"] == pytest.approx(roc_auc_score(labels, oriented), abs=1e-12)
    assert m["accuracy"] == pytest.approx(brute_force_accuracy(oriented, labels), abs=1e-12)
    called = scores <= m["threshold"] if metric == "euclidean" else scores >= m["threshold"]
    assert np.mean(called == (labels == 1)) == pytest.approx(m["accuracy"])

    graded = rng.uniform(0, 5, 30)
    g, _ = label_metrics(scores, graded, metric)
    assert g["labels"] == "graded"
    assert g["spearman"] == pytest.approx(spearmanr(graded, oriented).statistic, abs=1e-12)
    assert g["pearson"] == pytest.approx(pearsonr(graded, oriented).statistic, abs=1e-12)


def test_one_class_has_no_auc():
    m, notes = label_metrics(np.array([0.2, 0.5]), np.array([1.0, 1.0]))
    assert m["roc_auc"] is None and m["accuracy"] == 1.0 and "both labels" in notes[0]


def test_paired_cosine_is_cosine():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(5, 8)), rng.normal(size=(5, 8))
    a[2] = 0.0  # a zero vector: cosine 0
    b[3] = -2 * a[3]  # opposite: exactly -1
    assert paired(a, b).tolist() == pytest.approx([cosine(x, y) for x, y in zip(a, b)], abs=1e-15)
    assert paired(a, b)[3] == -1.0


@pytest.mark.parametrize("metric", ["cosine", "dot", "euclidean", "manhattan"])
def test_paired_and_matrix_equal_compare(metric):
    x = np.random.default_rng(2).normal(size=(4, 6))
    m = matrix(x, metric)
    for i, j in itertools.product(range(4), range(4)):
        assert m[i, j] == pytest.approx(compare(x[i], x[j], (metric,))[metric], abs=1e-12)
    assert paired(x[:3], x[1:], metric).tolist() == pytest.approx([m[i, i + 1] for i in range(3)], abs=1e-12)


# -- the command ---------------------------------------------------------------------------

def test_pairs_command_equals_the_python_api(tmp_path, minilm):
    path = tmp_path / "pairs.tsv"
    path.write_text(BINARY, encoding="utf-8")
    result = invoke("similarity", "--pairs", path, "--json", *CLI_ENCODER)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    pairs = read_pairs(path).pairs
    assert [p["line"] for p in out["pairs"]] == [2, 3, 4, 5, 6, 8, 9, 10]  # the blank line 7 skipped
    assert [p["id"] for p in out["pairs"]] == [str(i) for i in range(1, 9)]
    left = minilm.encode([p.sentence1 for p in pairs])
    right = minilm.encode([p.sentence2 for p in pairs])
    expected = [cosine(a, b) for a, b in zip(left, right)]
    assert max(abs(p["score"] - e) for p, e in zip(out["pairs"], expected)) < 1e-6

    scores = np.array([p["score"] for p in out["pairs"]])
    labels = np.array([p["label"] for p in out["pairs"]])
    m = out["metrics"]
    assert m["labels"] == "binary" and (m["similar"], m["different"]) == (4, 4)
    assert m["roc_auc"] == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    assert m["accuracy"] == pytest.approx(brute_force_accuracy(scores, labels), abs=1e-12)
    assert np.mean((scores >= m["threshold"]) == (labels == 1)) == pytest.approx(m["accuracy"])


def test_pairs_command_graded_distance_and_human_output(tmp_path):
    path = tmp_path / "sts.tsv"
    path.write_text(GRADED, encoding="utf-8")
    result = invoke("similarity", "--pairs", path, "--metric", "manhattan", "--json", *CLI_ENCODER)
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    scores = np.array([p["score"] for p in out["pairs"]])
    gold = np.array([p["label"] for p in out["pairs"]])
    assert out["metrics"]["spearman"] == pytest.approx(spearmanr(gold, -scores).statistic, abs=1e-12)
    assert out["metrics"]["pearson"] == pytest.approx(pearsonr(gold, -scores).statistic, abs=1e-12)
    assert out["metrics"]["spearman"] > 0.5  # lower distance = more similar

    human = invoke("similarity", "--pairs", path, *CLI_ENCODER)
    assert human.exit_code == 0, human.output
    assert "Spearman" in human.stdout and "Pearson" in human.stdout and "5 pairs" in human.stdout


def test_pairs_command_reports_a_missing_field(tmp_path):
    path = tmp_path / "pairs.tsv"
    path.write_text(BINARY.replace("4\tThe new movie is awesome\tThe new movie is so great\t1", "4\tThe new movie"),
                    encoding="utf-8")
    fails_with(invoke("similarity", "--pairs", path, *CLI_ENCODER), f"{path} line 5: missing sentence2, label")


@pytest.mark.parametrize("args,message", [
    (["--pairs", "{tmp}/nope.tsv"], "nope.tsv: no such file"),
    (["--pairs", "{tmp}"], "is a folder"),
])
def test_pairs_command_bad_file(tmp_path, args, message):
    fails_with(invoke("similarity", *[a.format(tmp=tmp_path) for a in args]), message)


@pytest.mark.parametrize("args", [["a", "--pairs", "x.tsv"], ["--pairs", "x", "--matrix", "a"],
                                  ["a", "b", "c"], ["--all-metrics", "--matrix", "a", "b"]])
def test_similarity_usage_errors(args):
    result = invoke("similarity", *args)
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_unique_sentences_are_embedded_once_in_one_call(minilm):
    from searchkit.pairs import score_pairs

    calls = []

    class Counting:
        name, dim = minilm.name, minilm.dim

        def encode(self, texts):
            calls.append(list(texts))
            return minilm.encode(texts)

    pf = parse_pairs(lines(BINARY), "f.tsv")
    report = score_pairs(Counting(), pf)
    texts = {t for p in pf.pairs for t in (p.sentence1, p.sentence2)}
    assert len(calls) == 1 and sorted(calls[0]) == sorted(texts)
    assert len(report.scores) == len(pf.pairs)
    assert report.pairs == pf.pairs
