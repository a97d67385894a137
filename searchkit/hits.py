"""Search results, and the checks between FAISS's answer and the hits a caller sees."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .errors import IndexCorrupt, bad_value

MAX_K = 1_000_000  # hits per query: past that it is a typo, and SQLite's LIMIT overflows first


@dataclass(frozen=True)
class Hit:
    """One search result; `text == document_text[start:end]`.

    `page`: the PDF page the chunk starts on (1-based), None for files without pages.
    `line_start`, `line_end`: the file lines the chunk spans (1-based, inclusive), for
    plain text, source code, Markdown and rst files and JSONL records (a record's line);
    None for text extracted from HTML or PDF, and in indexes built before searchkit
    recorded them.

    `copies`: with `search(..., distinct=True)`, the lower-ranked chunks whose text is this
    one's (searchkit/distinct.py), as `distinct.Copy` records; empty otherwise.

    `score` depends on the search mode: the cosine similarity (dense), the BM25 score
    (lexical; higher is better, not bounded) or the reciprocal-rank-fusion score (hybrid:
    the sum over the dense and lexical lists of 1 / (60 + rank)).
    """

    rank: int
    score: float
    path: str
    chunk_id: int
    text: str
    start: int
    end: int
    document: str = ""  # record key inside the file ('' for whole-file documents)
    title: str = ""
    page: int | None = None
    line_start: int | None = None
    line_end: int | None = None
    copies: tuple = ()

    def to_dict(self) -> dict:
        return asdict(self)


def check_k(k) -> None:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise bad_value("k", k, "must be a positive integer")
    if k > MAX_K:
        raise bad_value("k", k, f"at most {MAX_K:,} hits a query")


def check_scores(folder, queries: np.ndarray, scores: np.ndarray, ids: np.ndarray, approximate: bool) -> None:
    """Stored vectors are unit length, so no score can pass the query's norm: one that does
    (or a NaN) means the vectors in memory are not what was written. `approximate`: PQ
    codes, whose scores stray further."""
    slack = 0.5 if approximate else 1e-3
    bound = np.linalg.norm(np.atleast_2d(queries), axis=1, keepdims=True) * (1 + slack) + 1e-3
    bad = (ids >= 0) & ~(np.abs(scores) <= bound)  # NaN fails the comparison too
    if bad.any():
        value = float(scores[bad][0])
        raise IndexCorrupt(f"{folder}: the vectors gave a score of {value:.3g}, impossible for unit "
                           f"vectors: the vectors file is damaged; `searchkit verify --repair` re-embeds it")


def ranked(scores: np.ndarray, ids: np.ndarray) -> list[list[tuple[int, float]]]:
    """FAISS's (scores, ids) as lists of (chunk id, score), padding (-1) left out."""
    return [[(int(i), float(s)) for s, i in zip(srow, irow) if i >= 0] for srow, irow in zip(scores, ids)]


def to_hits(rows: dict, lists: list[list[tuple[int, float]]]) -> list[list[Hit]]:
    """Hits for ranked chunk ids; `rows`: the catalog's chunk rows by id. A chunk deleted
    since the vectors were loaded is left out, and the ranks close up."""
    results = []
    for lst in lists:
        hits: list[Hit] = []
        for chunk_id, score in lst:
            row = rows.get(chunk_id)
            if row is not None:
                hits.append(Hit(len(hits) + 1, float(score), row.path, row.chunk_id, row.text, row.start, row.end,
                                row.key, row.title, row.page, row.line_start, row.line_end))
        results.append(hits)
    return results
