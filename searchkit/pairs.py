"""Sentence-pair files: read them, score every pair, and measure the scores against labels.

A pair file is tab-separated (comma-separated when its name ends in `.csv`), one pair a
line; blank lines are skipped. Columns are found this way:

- A first row that names both sentence columns is a header, and every column is taken by
  its name (case-insensitive; the spellings in `COLUMN_NAMES`, e.g. `sentence1`/`text1`,
  `sentence2`/`text2`, `label`/`score`, `id`); other columns are ignored.
- Otherwise columns go by position, by how many fields the first row has:
  2 = sentence1, sentence2 (no labels); 3 = sentence1, sentence2, label;
  4 = id, sentence1, sentence2, label. A first row whose label field is not a number is a
  header with other names, and is skipped. Any other width needs a header with the names.
- Every row must have each of those fields non-empty, and a number for the label: a file
  with bad rows is refused as a whole (one line naming the first bad line number and how
  many others there are), since metrics over the rows that happened to parse would
  silently describe another data set.

Labels that are all 0 or 1 are binary (1 = similar): the metrics are the accuracy at the
best threshold, that threshold, and ROC AUC. Other labels are graded scores: Spearman and
Pearson correlation. Distances (euclidean, manhattan) are negated for the metrics, so a
lower distance counts as more similar and a good model gets a positive correlation and an
AUC above 0.5 with every metric.

    >>> pairs = read_pairs("sick.tsv")
    >>> report = score_pairs(searchkit.load_encoder(), pairs, metric="cosine")
    >>> report.metrics["spearman"]
"""

from __future__ import annotations

import csv
import math
import re
import warnings
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import BadInput
from .lines import numbered_lines
from .similarity import DISTANCES, METRICS, paired

if TYPE_CHECKING:
    from .encoder import Encoder

__all__ = ["COLUMN_NAMES", "Pair", "PairFile", "PairReport", "best_threshold", "label_metrics", "parse_pairs",
           "read_pairs", "score_pairs"]

# The header spellings of each column (lower case): extend here to read another layout.
COLUMN_NAMES = {
    "sentence1": ("sentence1", "sentence_1", "sentence_a", "sentencea", "text1", "text_1", "text_a", "s1",
                  "question1", "sent1"),
    "sentence2": ("sentence2", "sentence_2", "sentence_b", "sentenceb", "text2", "text_2", "text_b", "s2",
                  "question2", "sent2"),
    "label": ("label", "score", "similarity", "gold", "gold_score", "relatedness_score", "is_duplicate"),
    "id": ("id", "pair_id", "pairid", "idx"),
}
# Columns by position, by the number of fields.
POSITIONS = {
    2: ("sentence1", "sentence2"),
    3: ("sentence1", "sentence2", "label"),
    4: ("id", "sentence1", "sentence2", "label"),
}


@dataclass(frozen=True)
class Pair:
    """One pair and where it came from (`line`: 1-based line of the file)."""

    line: int
    sentence1: str
    sentence2: str
    label: float | None = None
    id: str | None = None


@dataclass(frozen=True)
class PairFile:
    """The pairs of one file, and how its columns were found."""

    source: str
    pairs: list[Pair]
    columns: dict[str, int]  # column name -> 0-based field index
    header: bool  # the first row was a header (skipped)

    @property
    def labelled(self) -> bool:
        return "label" in self.columns


@dataclass
class PairReport:
    """Every pair's score and, for labelled pairs, the metrics (see `label_metrics`)."""

    model: str
    metric: str
    source: str
    pairs: list[Pair]
    scores: list[float]
    metrics: dict | None = None
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """For `--json`: per pair its line, id, sentences, label and score; then the metrics."""
        rows = []
        for pair, score in zip(self.pairs, self.scores):
            row = {k: v for k, v in asdict(pair).items() if v is not None}
            rows.append({**row, "score": score})
        return {"model": self.model, "metric": self.metric, "source": self.source, "pairs": rows,
                "metrics": self.metrics, "notes": self.notes}


def _fields(text: str, delimiter: str) -> list[str]:
    if delimiter == "\t":  # TSV: no quoting, since sentences hold unbalanced quotes
        cells = text.split("\t")
    else:
        cells = next(csv.reader([text], delimiter=delimiter))
    return [cell.strip() for cell in cells]


def _named_columns(cells: list[str]) -> dict[str, int]:
    """Column name -> index for the cells that are known header names."""
    out: dict[str, int] = {}
    for i, cell in enumerate(cells):
        for name, spellings in COLUMN_NAMES.items():
            if cell.lower() in spellings and name not in out:
                out[name] = i
    return out


# A label as people write numbers: Python's float() also takes "1_0" (as 10) and other
# scripts' digits, which in a label file are typos, not numbers.
_NUMBER = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*", re.ASCII)


def _is_number(text: str) -> bool:
    return bool(_NUMBER.fullmatch(text)) and math.isfinite(float(text))


def parse_pairs(lines: Iterable[tuple[int, str]], source: str, delimiter: str = "\t") -> PairFile:
    """Pairs from numbered lines of text (blank ones already left out); see the module
    docstring for how columns are found. Raises BadInput naming `source` and the line.

    >>> parse_pairs([(1, "id\\tsentence1\\tsentence2\\tlabel"), (2, "7\\ta cat\\ta dog\\t0")], "x.tsv").pairs
    [Pair(line=2, sentence1='a cat', sentence2='a dog', label=0.0, id='7')]
    """
    rows = [(number, _fields(text, delimiter)) for number, text in lines]
    if not rows:
        raise BadInput(f"{source}: no pairs (the file is empty)")
    first_line, first = rows[0]
    columns = _named_columns(first)
    header = "sentence1" in columns and "sentence2" in columns
    if not header:
        layout = POSITIONS.get(len(first))
        if layout is None:
            raise BadInput(f"{source} line {first_line}: {len(first)} field{'s' * (len(first) != 1)}; "
                           f"without a header naming the columns (sentence1, sentence2, label) a pair file has "
                           f"2 (sentence1, sentence2), 3 (…, label) or 4 (id, sentence1, sentence2, label)")
        columns = {name: i for i, name in enumerate(layout)}
        # a header with names of its own (e.g. "q1 q2 duplicate"): its label is no number
        header = "label" in columns and not _is_number(first[columns["label"]])
    body = rows[1:] if header else rows
    if not body:
        raise BadInput(f"{source}: no pairs (only a header row)")
    pairs, problems = [], []
    width = max(columns.values()) + 1
    for number, cells in body:
        why = _problem(cells, columns, width)
        if why:
            problems.append((number, why))
            continue
        label = float(cells[columns["label"]]) if "label" in columns else None
        pairs.append(Pair(number, cells[columns["sentence1"]], cells[columns["sentence2"]], label,
                          cells[columns["id"]] if "id" in columns else None))
    if problems:
        number, why = problems[0]
        more = f" ({len(problems) - 1} more bad line{'s' * (len(problems) > 2)}: " \
               f"{', '.join(str(n) for n, _ in problems[1:6])}{', …' if len(problems) > 6 else ''})" \
            if len(problems) > 1 else ""
        raise BadInput(f"{source} line {number}: {why}{more}")
    return PairFile(source, pairs, columns, header)


def _problem(cells: list[str], columns: dict[str, int], width: int) -> str | None:
    """Why a row is not a pair (None: it is one)."""
    names = sorted(columns, key=columns.get)
    if len(cells) < width:
        missing = [n for n in names if columns[n] >= len(cells)]
        return (f"missing {', '.join(missing)} ({len(cells)} field{'s' * (len(cells) != 1)}, "
                f"expected {width}: {', '.join(names)})")
    for name in ("sentence1", "sentence2", "label"):
        if name in columns and not cells[columns[name]]:
            return f"empty {name}"
    if "label" in columns and not _is_number(cells[columns["label"]]):
        return f"label {cells[columns['label']]!r} is not a number"
    return None


def read_pairs(path: str | Path, stream=None) -> PairFile:
    """The pairs in the file at `path` (UTF-8; `.csv` comma-separated, else tab-separated).
    `stream`: read this binary stream instead, naming it `path` in errors (stdin)."""
    source = str(path)
    delimiter = "," if source.lower().endswith(".csv") else "\t"
    if stream is not None:
        return parse_pairs(numbered_lines(stream, source), source, delimiter)
    p = Path(path).expanduser()
    if p.is_dir():
        raise BadInput(f"{source}: is a folder, not a pair file")
    try:
        with open(p, "rb") as fh:
            return parse_pairs(numbered_lines(fh, source), source, delimiter)
    except FileNotFoundError:
        raise BadInput(f"{source}: no such file") from None
    except PermissionError:
        raise BadInput(f"{source}: permission denied") from None
    except OSError as exc:
        raise BadInput(f"{source}: cannot read ({exc.strerror or exc})") from None


def score_pairs(encoder: Encoder, pairs: PairFile | list[Pair], metric: str = "cosine") -> PairReport:
    """Score every pair with `metric`: each distinct sentence embedded once, all in one
    batched call; with labels, the metrics too (`label_metrics`)."""
    if metric not in METRICS:
        raise BadInput(f"metric {metric!r}: expected one of {', '.join(METRICS)}")
    source = pairs.source if isinstance(pairs, PairFile) else "pairs"
    items = pairs.pairs if isinstance(pairs, PairFile) else list(pairs)
    texts = list(dict.fromkeys(t for p in items for t in (p.sentence1, p.sentence2)))
    vectors = encoder.encode(texts) if texts else np.zeros((0, encoder.dim), np.float32)
    row = {t: i for i, t in enumerate(texts)}
    a = vectors[[row[p.sentence1] for p in items]]
    b = vectors[[row[p.sentence2] for p in items]]
    scores = paired(a, b, metric) if items else np.zeros(0)
    report = PairReport(encoder.name, metric, source, items, [float(s) for s in scores])
    labels = [p.label for p in items]
    if items and all(label is not None for label in labels):
        report.metrics, report.notes = label_metrics(scores, np.array(labels, np.float64), metric)
    return report


def best_threshold(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(accuracy, threshold) of the best rule "similar when score >= threshold" for 0/1
    `labels`. The threshold lies halfway between the last score called similar and the
    next lower one (a margin on both sides); above every score when calling nothing
    similar is best.

    >>> best_threshold(np.array([0.9, 0.8, 0.3, 0.1]), np.array([1, 1, 0, 0]))
    (1.0, 0.55)
    """
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels, np.int64)
    n, positives = len(scores), int(labels.sum())
    order = np.argsort(-scores, kind="stable")
    ranked, truth = scores[order], labels[order]
    # A rule can only cut between distinct scores: keep the last of each run of ties.
    last = np.r_[ranked[1:] != ranked[:-1], True]
    cuts = ranked[last]
    true_pos, false_pos = np.cumsum(truth)[last], np.cumsum(1 - truth)[last]
    correct = np.r_[n - positives, true_pos + (n - positives - false_pos)]  # [0]: nothing similar
    best = int(np.argmax(correct))
    if best == 0:
        return float(correct[0] / n), float(np.nextafter(cuts[0], np.inf))
    cut = cuts[best - 1]
    threshold = cut
    if best < len(cuts):
        middle = (cut + cuts[best]) / 2.0
        if cuts[best] < middle <= cut:
            threshold = middle
    return float(correct[best] / n), float(threshold)


def label_metrics(scores: np.ndarray, labels: np.ndarray, metric: str = "cosine") -> tuple[dict, list[str]]:
    """The metrics of `scores` against `labels`, and notes on those that cannot be computed.

    Binary labels (all 0 or 1): accuracy at the best threshold, the threshold (a score:
    similar when >= it, or when <= it for a distance), ROC AUC. Graded: Spearman and
    Pearson. Distances are negated first, so lower = more similar."""
    from scipy.stats import pearsonr, spearmanr
    from sklearn.metrics import roc_auc_score

    distance = metric in DISTANCES
    oriented = -np.asarray(scores, np.float64) if distance else np.asarray(scores, np.float64)
    labels = np.asarray(labels, np.float64)
    notes: list[str] = []
    if set(np.unique(labels).tolist()) <= {0.0, 1.0}:
        y = labels.astype(np.int64)
        accuracy, threshold = best_threshold(oriented, y)
        auc = None
        if 0 < y.sum() < len(y):
            auc = float(roc_auc_score(y, oriented))
        else:
            notes.append("ROC AUC needs both labels, 0 and 1")
        return {"labels": "binary", "pairs": len(y), "similar": int(y.sum()), "different": int(len(y) - y.sum()),
                "accuracy": accuracy, "threshold": -threshold if distance else threshold,
                "rule": f"similar when {metric} {'<=' if distance else '>='} threshold",
                "roc_auc": auc}, notes
    out: dict = {"labels": "graded", "pairs": len(labels), "spearman": None, "pearson": None}
    if len(labels) < 2 or np.ptp(labels) == 0 or np.ptp(oriented) == 0:
        notes.append("correlations need at least two pairs and labels and scores that vary")
        return out, notes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out["spearman"] = float(spearmanr(labels, oriented).statistic)
        out["pearson"] = float(pearsonr(labels, oriented).statistic)
    if distance:
        notes.append(f"correlations are with -{metric} (lower distance = more similar)")
    return out, notes
