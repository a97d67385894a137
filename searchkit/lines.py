"""Texts one a line, from standard input or a file: decoded strictly, numbered for errors.

The CLI's `-` arguments (`embed -`, `search -`, `similarity --matrix -`) and the sentence-pair
reader (pairs.py) take their lines from here, so a bad byte is reported the same way
everywhere: the source and the 1-based line number, never a traceback or a replaced
character silently embedded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import BinaryIO, TypeVar

from .errors import BadInput

T = TypeVar("T")

_BOM = b"\xef\xbb\xbf"


def decode_line(raw: bytes, number: int, source: str) -> str:
    """One line's bytes as text, without its line ending (`\\n`, `\\r\\n`).

    >>> decode_line(b"caf\\xc3\\xa9\\r\\n", 1, "stdin")
    'café'
    """
    if number == 1 and raw.startswith(_BOM):
        raw = raw[len(_BOM):]  # Windows editors start UTF-8 files with one
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadInput(f"{source} line {number}: not valid UTF-8 (byte {exc.start + 1} of the line, "
                       f"{raw[exc.start:exc.start + 1]!r})") from None
    return text.rstrip("\r\n")


def numbered_lines(stream: BinaryIO | Iterable[bytes], source: str = "stdin", *,
                   keep_blank: bool = False) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line of a binary stream, lazily (so a pipe is answered
    as it flows); blank lines (only whitespace) are left out unless `keep_blank`.

    >>> list(numbered_lines([b"one\\n", b"\\n", b"three\\n"]))
    [(1, 'one'), (3, 'three')]
    """
    for number, raw in enumerate(stream, 1):
        text = decode_line(raw, number, source)
        if keep_blank or text.strip():
            yield number, text


def read_lines(stream: BinaryIO | Iterable[bytes], source: str = "stdin") -> list[str]:
    """Every non-blank line of `stream` as text (see `numbered_lines`).

    >>> read_lines([b"a\\n", b"  \\n", b"b"])
    ['a', 'b']
    """
    return [text for _, text in numbered_lines(stream, source)]


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """`items` in lists of `size` (the last may be shorter), without reading ahead further.

    >>> list(batches(range(5), 2))
    [[0, 1], [2, 3], [4]]
    """
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
