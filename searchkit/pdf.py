"""PDF files: the text of every page, extracted with pypdf, as one document.

The document's text is the pages' texts joined by a blank line ("\\n\\n"), and
`Document.pages` holds the offset at which each page starts. Ingest cuts a paged document
into windows page by page (ingest._chunk_documents), so no chunk straddles two pages and
a hit's page is exact.

Memory: the file is read through an open file object, not loaded whole, and pages are
extracted one at a time; each page's parsed objects are let go once its text is taken,
so what stays is the text (and the file's cross-reference table).

Skipped, with a reason and never a traceback: encrypted files that an empty password
does not open, files pypdf cannot parse ("broken PDF"), and files whose pages hold no
text at all (scans, images: they would need OCR). A page whose text cannot be extracted
in an otherwise good file is left empty and reported as a problem naming the page.

    >>> doc = read_pdf(Path("paper.pdf")).documents[0]
    >>> doc.pages[:3], doc.text[doc.pages[1]:doc.pages[1] + 20]
    ((0, 2113, 4388), 'Section 2. Methods ')
"""

from __future__ import annotations

import logging
from pathlib import Path

from .documents import Document, ReadResult
from .errors import SkipFile

__all__ = ["PAGE_SEPARATOR", "read_pdf"]

PAGE_SEPARATOR = "\n\n"

# pypdf reports recoverable oddities of a file ("Ignoring wrong pointing object") through
# logging; with no handler anywhere Python would print them on stderr, over the progress
# bar. A handler of our own keeps them for applications that configure logging.
logging.getLogger("pypdf").addHandler(logging.NullHandler())


def read_pdf(path: Path, resolved: Path | None = None) -> ReadResult:
    """One `Document` holding the text of every page of the PDF at `path`; `SkipFile`
    with a reason when it cannot be read or holds no text."""
    from pypdf import PdfReader  # lazy: pypdf loads only when a PDF is read

    resolved = resolved or path.resolve()
    problems: list[str] = []
    texts: list[str] = []
    try:
        with open(path, "rb") as fh:
            # A malformed file can make pypdf raise nearly anything (its own errors, but
            # also ValueError, KeyError, RecursionError...): all of them mean "broken".
            try:
                reader = PdfReader(fh)
                if reader.is_encrypted:
                    try:
                        opened = bool(reader.decrypt(""))  # PasswordType.NOT_DECRYPTED is 0
                    except Exception as exc:  # an algorithm pypdf cannot do without extras
                        raise SkipFile(path, f"encrypted PDF ({_short(exc)})") from None
                    if not opened:
                        raise SkipFile(path, "encrypted PDF (needs a password)")
                count = len(reader.pages)
                title = _title(reader)
            except SkipFile:
                raise
            except Exception as exc:
                raise SkipFile(path, f"broken PDF ({_short(exc)})") from None
            if count == 0:
                raise SkipFile(path, "empty")
            for number in range(1, count + 1):
                texts.append(_page_text(reader, number, path, problems))
    except PermissionError:
        raise SkipFile(path, "permission denied") from None
    except OSError as exc:
        raise SkipFile(path, f"unreadable ({exc.strerror or exc})") from None

    if not any(t.strip() for t in texts):
        if len(problems) == len(texts):
            raise SkipFile(path, f"broken PDF (no page could be read: {problems[0].split(': ', 1)[-1]})")
        raise SkipFile(path, "no text (an image-only or scanned PDF: it would need OCR)")
    starts, offset = [], 0
    for t in texts:
        starts.append(offset)
        offset += len(t) + len(PAGE_SEPARATOR)
    text = PAGE_SEPARATOR.join(texts)
    return ReadResult([Document(resolved, "", title, text, {}, pages=tuple(starts))], problems)


def _page_text(reader, number: int, path: Path, problems: list[str]) -> str:
    """The text of page `number` (1-based), '' (and a problem) when pypdf fails on it."""
    try:
        page = reader.pages[number - 1]
        text = page.extract_text() or ""
    except Exception as exc:
        problems.append(f"{path.name} page {number}: text not extracted ({_short(exc)})")
        return ""
    finally:
        _forget_page(reader, number - 1)
    # Text for SQLite and the tokenizer: "\n" line ends, no NULs, no lone surrogates.
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    return text.encode("utf-8", "replace").decode("utf-8")


def _forget_page(reader, index: int) -> None:
    """Let go of the objects pypdf parsed for one page (its content streams, fonts), so a
    long file does not accumulate them all. pypdf has no public call for this: its cache of
    resolved objects is cleared instead, which it refills from the file on demand."""
    cache = getattr(reader, "resolved_objects", None)
    if isinstance(cache, dict):
        cache.clear()


def _title(reader) -> str:
    try:
        title = reader.metadata.title if reader.metadata else None
    except Exception:
        return ""
    return " ".join(str(title).split()) if title else ""


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 80 else text[:77] + "..."
