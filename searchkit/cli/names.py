"""File names as plain (non-JSON) output shows them: one line each, whatever the name holds."""

from __future__ import annotations

import unicodedata

_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def shown(text: str) -> str:
    r"""`text` with control characters (and line or paragraph separators) escaped, so that a
    name holding a newline or an escape code cannot split a line or drive the terminal.
    JSON output keeps the real name.

        >>> shown("notes/a\nb.txt")
        'notes/a\\nb.txt'
        >>> shown("x\x1b[31m.md")
        'x\\x1b[31m.md'
    """
    if text.isprintable():
        return text
    return "".join(_escaped(ch) for ch in text)


def _escaped(ch: str) -> str:
    if unicodedata.category(ch) not in ("Cc", "Zl", "Zp"):
        return ch
    return _SHORT.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")
