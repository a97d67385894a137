"""Search modes: dense (FAISS), lexical (SQLite FTS5 BM25) and their fusion.

Pure functions over ranked lists of `(chunk_id, score)`, best first; `Index.search` runs
the two retrievers and calls these.

- `fts_query(text)` makes any user text a safe FTS5 query: its words, each quoted, ORed
  (BM25 ranks documents matching some of them; FTS5's default AND would demand all).
- `rrf(lists, k)` is reciprocal rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009):
  score(d) = Σ_lists weight / (c + rank of d in that list), rank 1-based, c = 60.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .errors import BadInput, bad_value
from .text_checks import check_texts

MODES = ("dense", "lexical", "hybrid")
RRF_C = 60  # the constant of Cormack et al.; it damps the weight of the very top ranks
HYBRID_MIN_DEPTH = 100  # each list fed to the fusion is at least this deep

# Words unicode61 keeps together: letters, digits and marks (not '_', which it splits on).
_WORD = re.compile(r"[^\W_]+")

# Very common English function words, dropped from lexical queries (as Lucene's English
# analyzer does): they match nearly every chunk and add only noise and work to BM25.
STOPWORDS = frozenset(
    "a an and are as at be but by for if in into is it no not of on or such that the their "
    "then there these they this to was will with".split()
)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise bad_value("mode", mode, f"expected {', '.join(MODES)}")
    return mode


def query_terms(text: str, stopwords: frozenset[str] = STOPWORDS) -> list[str]:
    """The distinct words of `text` (case-folded), in order, stopwords left out unless
    nothing else is left.

        >>> query_terms('What is "BM25" -- and (why) NOT*?')
        ['what', 'bm25', 'why']
    """
    words = list(dict.fromkeys(w.casefold() for w in _WORD.findall(text)))
    kept = [w for w in words if w not in stopwords]
    return kept or words


def fts_query(text: str, stopwords: frozenset[str] = STOPWORDS) -> str | None:
    """An FTS5 MATCH expression for user text: its words as quoted strings joined by OR, so
    quotes, `-`, `*`, `AND`, parentheses and the like are only ever words or separators.
    None when the text has no words.

        >>> fts_query('error: "file" not found (AND*)')
        '"error" OR "file" OR "found"'
    """
    if not text.isascii():  # a query that is not valid UTF-8 is refused, not cut to its valid words
        check_texts([text], "query")
    terms = query_terms(text, stopwords)
    if not terms:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def hybrid_depth(k: int) -> int:
    """How deep each list fed to the fusion goes for k fused results."""
    return max(HYBRID_MIN_DEPTH, 2 * int(k))


def rrf(
    lists: Sequence[Sequence[tuple[int, float]]],
    k: int,
    c: float = RRF_C,
    weights: Sequence[float] | None = None,
) -> list[tuple[int, float]]:
    """Fuse ranked lists of (id, score) by reciprocal rank; the k best (id, fused score).
    Ties go to the id ranked higher in any list, then to the lower id.

        >>> rrf([[(7, 0.9), (3, 0.8)], [(3, 12.0), (5, 9.0)]], k=3)
        [(3, 0.032522...), (7, 0.016393...), (5, 0.016129...)]
    """
    weights = list(weights) if weights is not None else [1.0] * len(lists)
    if len(weights) != len(lists):
        raise BadInput(f"rrf: {len(weights)} weights for {len(lists)} lists")
    fused: dict[int, float] = {}
    best_rank: dict[int, int] = {}
    for weight, ranked in zip(weights, lists):
        for rank, (item, _) in enumerate(ranked, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (c + rank)
            best_rank[item] = min(best_rank.get(item, rank), rank)
    order = sorted(fused, key=lambda i: (-fused[i], best_rank[i], i))
    return [(i, fused[i]) for i in order[:k]]


def check_queries(queries) -> list[str]:
    """Queries as a list of non-empty strings (one string is one query)."""
    queries = [queries] if isinstance(queries, str) else list(queries)
    for n, query in enumerate(queries, 1):
        if not isinstance(query, str):
            raise bad_value("queries", queries, f"query {n} is a {type(query).__name__}, not a string")
        if not query.strip():
            raise BadInput("empty query" if len(queries) == 1 else f"query {n} is empty")
    return queries
