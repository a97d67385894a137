"""A text file decoded a window at a time, so that reading a big file takes memory that
does not grow with it.

The encoding is told by the byte order mark: UTF-8 (with or without one), UTF-16 and
UTF-32 in either byte order. Line endings are normalised to "\\n" (a "\\r\\n" split
between two windows included), so the text is exactly what `readers.decode` makes of the
whole file, and every character offset means the same in both.

    >>> stream = TextStream(Path("big.log"), max_bytes=50 * 2**20)
    >>> for piece in stream.pieces(1 << 20):
    ...     ...
    >>> stream.sha256, stream.bytes_read
"""

from __future__ import annotations

import codecs
import hashlib
from collections.abc import Iterator
from pathlib import Path

from .errors import SkipFile

# A NUL byte in this much of the head of a file without a UTF-16/32 mark: binary.
BINARY_PROBE_BYTES = 8192

# (mark, codec, name in messages); UTF-32 LE's mark starts with UTF-16 LE's, so it goes first.
_MARKS = (
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32"),
    (codecs.BOM_UTF32_BE, "utf-32-be", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8", "UTF-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16"),
)


def sniff(head: bytes) -> tuple[str, int, str]:
    """(codec, length of the byte order mark, encoding's name) for a file starting `head`;
    `SkipFile`-free: a head with NUL bytes and no UTF-16/32 mark is left to `check_head`.

        >>> sniff(b"\\xff\\xfeh\\x00i\\x00")
        ('utf-16-le', 2, 'UTF-16')
    """
    for mark, codec, name in _MARKS:
        if head.startswith(mark):
            return codec, len(mark), name
    return "utf-8", 0, "UTF-8"


def is_binary(head: bytes, bom: int) -> bool:
    """A NUL byte near the start of a file that has no UTF-16/32 mark (where NULs are text)."""
    return bom == 0 and b"\x00" in head[:BINARY_PROBE_BYTES]


def decode_bytes(data: bytes, path) -> str:
    """A whole file's bytes as text with "\\n" line endings, or `SkipFile` (empty, binary,
    not valid in its encoding)."""
    if not data:
        raise SkipFile(path, "empty")
    codec, bom, name = sniff(data[:4])
    if is_binary(data, bom):
        raise SkipFile(path, "binary")
    try:
        text = data[bom:].decode(codec)
    except UnicodeDecodeError:
        raise SkipFile(path, f"invalid {name}") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


class TextStream:
    """One text file, read and decoded piece by piece (`pieces`). Afterwards `sha256` is
    the digest of every byte read and `bytes_read` their count; a file that grew past
    `max_bytes` meanwhile stops with `SkipFile`, as does a byte sequence its encoding
    forbids."""

    def __init__(self, path: Path, max_bytes: int):
        self.path, self.max_bytes = path, max_bytes
        self.bytes_read = 0
        self.chars_read = 0
        self._digest = hashlib.sha256()

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()

    def pieces(self, block_bytes: int) -> Iterator[str]:
        """The file's text, `block_bytes` of the file at a time (decoded; never empty)."""
        try:
            fh = open(self.path, "rb")
        except PermissionError:
            raise SkipFile(self.path, "permission denied") from None
        with fh:
            head = fh.read(max(block_bytes, BINARY_PROBE_BYTES))  # the mark and the probe in one
            if not head:
                raise SkipFile(self.path, "empty")
            codec, bom, name = sniff(head[:4])
            if is_binary(head, bom):
                raise SkipFile(self.path, "binary")
            decoder = codecs.getincrementaldecoder(codec)()
            carry = ""  # a final "\r" waits for the next piece: it may be half of "\r\n"
            block, start = head, bom
            while True:
                self._take(block)
                final = not block
                try:
                    text = decoder.decode(block[start:], final=final)
                except UnicodeDecodeError:
                    raise SkipFile(self.path, f"invalid {name}") from None
                text = carry + text
                carry = ""
                if not final and text.endswith("\r"):
                    text, carry = text[:-1], "\r"
                text = text.replace("\r\n", "\n").replace("\r", "\n")
                if text:
                    self.chars_read += len(text)
                    yield text
                if final:
                    return
                block, start = fh.read(block_bytes), 0

    def _take(self, block: bytes) -> None:
        self.bytes_read += len(block)
        if self.bytes_read > self.max_bytes:  # it grew since the scan
            raise SkipFile(self.path, f"over size limit ({self.bytes_read:,} bytes > {self.max_bytes:,})")
        self._digest.update(block)
