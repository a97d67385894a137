"""Pure helpers behind the widgets: the parity comparison and how hits are displayed.

Kept free of Textual so they can be tested and reused (by a CLI `--parity` some day).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..index import Hit

CONTEXT_CHARS = 300  # document text shown either side of a chunk in the preview


@dataclass(frozen=True)
class ParityResult:
    """One query embedded by us and by `transformers`, and what each retrieves."""

    query: str
    cosine: float  # between our query vector and the HF one
    max_abs: float  # largest |ours - HF| over the vector's components
    k: int  # how many hits we returned (overlap is out of this)
    overlap: int  # chunks in both top-k lists
    hf_hits: list[Hit] = field(default_factory=list)
    hf_rank: dict[int, int | None] = field(default_factory=dict)  # our chunk id -> HF rank
    our_rank: dict[int, int | None] = field(default_factory=dict)  # HF chunk id -> our rank

    @property
    def agrees(self) -> bool:
        """Same chunks in the same order."""
        same_order = all(self.our_rank.get(h.chunk_id) == h.rank for h in self.hf_hits)
        return same_order and self.overlap == self.k


def compare_query(
    query: str, ours: np.ndarray, hf: np.ndarray, our_hits: list[Hit], hf_hits: list[Hit]
) -> ParityResult:
    """Compare two query vectors (dim,) and the hit lists they retrieve."""
    a, b = np.asarray(ours, np.float64).ravel(), np.asarray(hf, np.float64).ravel()
    cosine = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-30))
    hf_rank = {h.chunk_id: h.rank for h in hf_hits}
    mine = {h.chunk_id: h.rank for h in our_hits}
    return ParityResult(
        query=query,
        cosine=cosine,
        max_abs=float(np.abs(a - b).max()) if a.size else 0.0,
        k=len(our_hits),
        overlap=len(hf_rank.keys() & mine.keys()),
        hf_hits=list(hf_hits),
        hf_rank={c: hf_rank.get(c) for c in mine},
        our_rank={c: mine.get(c) for c in hf_rank},
    )


def common_root(paths: list[str]) -> Path | None:
    """The folder all indexed files share, so the UI can show short, stable paths."""
    if not paths:
        return None
    try:
        root = Path(os.path.commonpath(paths))
    except ValueError:  # mixed absolute and relative paths
        return None
    return root.parent if root.as_posix() in paths else root  # one file: its folder


def display_path(path: str, root: Path | None) -> str:
    if root is None:
        return path
    try:
        return Path(path).relative_to(root).as_posix()
    except ValueError:
        return path


def snippet(text: str, width: int) -> str:
    """One line of a chunk: whitespace collapsed, cut at `width` with an ellipsis."""
    line = " ".join(text.split())
    return line if len(line) <= width else line[: width - 1] + "…"


def snippet_width(table_width: int, other_widths: list[int], cell_padding: int) -> int:
    """What a last 'snippet' column may take so that a table never scrolls sideways."""
    padding = 2 * cell_padding * (len(other_widths) + 1)
    return max(12, table_width - sum(other_widths) - padding)


def context(
    document: str, start: int, end: int, chars: int = CONTEXT_CHARS
) -> tuple[str, str, str, bool, bool]:
    """(before, chunk, after, cut_before, cut_after) around document[start:end]."""
    lo, hi = max(0, start - chars), min(len(document), end + chars)
    # Cut at whitespace so the context does not open or close mid-word.
    if lo > 0:
        space = document.find(" ", lo, start)
        lo = space + 1 if space != -1 else lo
    if hi < len(document):
        space = document.rfind(" ", end, hi)
        hi = space if space != -1 else hi
    before, after = document[lo:start], document[end:hi]
    return before, document[start:end], after, lo > 0, hi < len(document)
