"""Checks on the texts a user hands in (queries, texts to embed), free of torch: a
lexical search checks its query as the encoder checks the texts it embeds."""

from __future__ import annotations

from collections.abc import Sequence

from .errors import BadInput

__all__ = ["check_texts"]


def _shown(text: str, at: int = 0, width: int = 30) -> str:
    """`text` quoted for a one-line message, around character `at`: undecodable bytes (the
    surrogate escapes Python gives them, as in a non-UTF-8 command line) as \\xNN, other
    lone surrogates as \\uNNNN, control characters and backslashes as repr() writes them."""
    start, end = max(0, at - width), min(len(text), at + width)
    out = []
    for ch in text[start:end]:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch if ch.isprintable() and ch != "\\" else repr(ch)[1:-1])
    return f"'{'…' if start else ''}{''.join(out)}{'…' if end < len(text) else ''}'"


def check_texts(texts: Sequence[str], what: str = "text") -> list[str]:
    """`texts` as a list, each checked to be a string the tokenizer can take: a str that is
    valid UTF-8 (no lone surrogates). Raises BadInput naming the first bad one."""
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            kind = type(text).__name__
            raise BadInput(f"{what} {i + 1} is {kind}, not str" + (": decode it first" if kind == "bytes" else ""))
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                o = ord(text[exc.start])
                bad = f"byte 0x{o - 0xDC00:02x}" if 0xDC80 <= o <= 0xDCFF else f"lone surrogate U+{o:04X}"
                raise BadInput(f"{what} {_shown(text, exc.start)} is not valid UTF-8 "
                               f"({bad} at character {exc.start + 1})") from None
    return texts
