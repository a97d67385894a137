"""One hit per distinct text: `search(..., distinct=True)` folds a hit whose text repeats a
better hit's into that hit's `copies`.

Folders hold copies: a vendored library, a backup next to the original, one section of a
manual also shipped as a page of its own. Each copy's chunk embeds to the same vector, so
copies take consecutive ranks and push other answers out of the top k (the bundled corpus
answers "catch an exception" with the same "except" clause from compound.txt and try.txt).

Two texts count as the same when they are equal once whitespace runs are read as one space
and runs of three or more of one punctuation character are dropped: reStructuredText
underlines a heading with "---" in one file and "===" in another. Case and every other
character count, so `a = b + c` and `a = b - c` stay apart.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from .hits import Hit

_RULE = re.compile(r"([^\w\s])\1{2,}")  # ----, ====, ****: underlines and horizontal rules
_SPACE = re.compile(r"\s+")


@dataclass(frozen=True)
class Copy:
    """Where else a hit's text was found (a folded hit, less its text)."""

    path: str
    chunk_id: int
    score: float
    start: int
    end: int
    document: str = ""
    page: int | None = None
    line_start: int | None = None
    line_end: int | None = None

    @classmethod
    def of(cls, hit: Hit) -> Copy:
        return cls(hit.path, hit.chunk_id, hit.score, hit.start, hit.end, hit.document, hit.page,
                   hit.line_start, hit.line_end)


def text_key(text: str) -> str:
    """What two chunks must share to count as the same text."""
    return _SPACE.sub(" ", _RULE.sub(" ", text)).strip()


def fold(hits: list[Hit], k: int) -> list[Hit]:
    """The first `k` hits of distinct texts, best first and ranked 1..k, each with the later
    hits that repeat its text (among `hits`) as its `copies`."""
    kept: list[Hit] = []
    copies: list[list[Copy]] = []
    first: dict[str, int] = {}
    for hit in hits:
        key = text_key(hit.text)
        at = first.get(key)
        if at is not None:
            copies[at].append(Copy.of(hit))
        elif len(kept) < k:
            first[key] = len(kept)
            kept.append(hit)
            copies.append([])
    return [replace(hit, rank=rank, copies=tuple(found))
            for rank, (hit, found) in enumerate(zip(kept, copies), start=1)]
