"""Where a chunk sits in its file: its page (PDF) and its lines (1-based, inclusive).

    >>> doc = Document(Path("a.py"), "", "", "import os\\n\\ndef f():\\n    pass\\n", file_lines=True)
    >>> locate(doc, [(11, 29)])
    [{'page': None, 'line_start': 3, 'line_end': 4}]

Lines are known where the document's text is the file's text (plain text, source code,
Markdown, reStructuredText: line endings normalised, so "\\r\\n" is one line end), and for a
JSONL record, which is one line of its file. They are None for text extracted from
another form (HTML, PDF), where the lines of the extracted text are not the file's; a PDF
chunk has its page instead: the page its first character is on.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence

from .documents import Document

__all__ = ["locate"]


def locate(doc: Document, spans: Sequence[tuple[int, int]]) -> list[dict]:
    """`{page, line_start, line_end}` for each `(start, end)` character span of `doc.text`."""
    newlines = _newlines(doc.text) if doc.file_lines and spans else None
    out = []
    for start, end in spans:
        page = bisect_right(doc.pages, start) if doc.pages else None
        if newlines is not None:
            # The line of a character: one more than the line ends before it. The span's
            # last character is end - 1 (a chunk never ends with a line end).
            first = bisect_left(newlines, start) + 1
            last = bisect_left(newlines, max(start, end - 1)) + 1
        elif doc.line is not None:
            first = last = doc.line
        else:
            first = last = None
        out.append({"page": page, "line_start": first, "line_end": last})
    return out


def _newlines(text: str) -> list[int]:
    """Offsets of every "\\n" in `text`, in order."""
    out, i = [], text.find("\n")
    while i >= 0:
        out.append(i)
        i = text.find("\n", i + 1)
    return out
