"""Split a document's text into windows of tokens, with character offsets.

A window holds at most `max_tokens` tokens of the model's own tokenizer and shares about
`overlap` tokens with the one before it. Windows are cut between words, never between
the pieces of one word (unless one word is longer than a whole window), and in the last
fifth of a window a paragraph break or a sentence end is preferred to any other word
boundary. A chunk's `text` is always `document_text[start:end]`, from its first token's
first character to its last token's last character, so it never starts or ends with
whitespace.

Line-oriented text (source code, configuration, CSV/TSV: `line_oriented=True`) is cut at
line ends instead: a line end ranks with a sentence end (a '.' in code ends nothing), a
blank line still ranks above it, a line end is looked for in the last half of a window
rather than its last fifth, and an overlapping window starts at the beginning of a line.
Only a line longer than that half window is cut elsewhere (at a space, or between words).

    >>> from tokenizers import Tokenizer
    >>> tok = Tokenizer.from_file("tokenizer.json"); tok.no_padding(); tok.no_truncation()
    >>> chunk_text("  One. Two three.  ", tok, max_tokens=8, overlap=0)
    [Chunk(ordinal=0, start=2, end=17, text='One. Two three.')]

Offsets come from `tokenizers`' encodings of Python `str` input, which are character
offsets (not UTF-8 byte offsets), so they index the text directly.

Re-tokenizing a chunk's text gives at most `max_tokens` tokens. For WordPiece tokenizers
(BERT) cutting at word boundaries guarantees it; for the others (byte-level BPE, where a
word loses its leading space at the start of a chunk), and wherever a word had to be cut,
the chunks are re-tokenized in one batch and the few that come out too long are cut again.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from searchkit.errors import BadInput

__all__ = ["Chunk", "chunk_text", "chunk_texts", "whole_chunks"]

# Quality of a cut between two tokens; the higher, the better the place to end a window.
_INSIDE_CHAR = -1  # the tokens share characters (bytes of one character): last resort
_INSIDE_WORD = 0  # between pieces of one word: only when a word is longer than a window
_TOKENIZER_WORD = 1  # the tokenizer's words differ but no space between ("don" | "'")
_SPACE = 2  # whitespace at the cut
_SENTENCE = 3  # after . ! ? (maybe closing quotes) then whitespace, or after a CJK full stop
_PARAGRAPH = 4  # a blank line at the cut

TAIL_FRACTION = 0.2  # look for a sentence or paragraph end in this last part of a window
LINE_TAIL_FRACTION = 0.5  # the same for a line end, in line-oriented text

_SENTENCE_END = frozenset(".!?…。！？")
_CJK_SENTENCE_END = frozenset("。！？")  # these need no space after them
_CLOSERS = frozenset("\"')]}»’”")
_SENTENCE_OR_CLOSER = _SENTENCE_END | _CLOSERS
_SPACE_MARKERS = ("Ġ", "▁")  # byte-level BPE and SentencePiece: "this token starts a word"
_MAX_SCAN = 256  # characters of a whitespace run looked at around a cut


@dataclass(frozen=True)
class Chunk:
    """One window of a document: `text == document_text[start:end]`."""

    ordinal: int  # 0, 1, 2, ... within the document
    start: int  # character offset of the first character
    end: int  # character offset one past the last character
    text: str


def chunk_text(text: str, tokenizer, max_tokens: int, overlap: int) -> list[Chunk]:
    """Split `text` into chunks of at most `max_tokens` tokens sharing about `overlap` tokens.

    `tokenizer` is a `tokenizers.Tokenizer` with padding and truncation switched off.
    Whitespace-only text gives no chunks.

        >>> text = "First sentence here. " * 40
        >>> chunks = chunk_text(text, tok, max_tokens=32, overlap=4)
        >>> len(chunks), chunks[0].text[-20:], all(text[c.start:c.end] == c.text for c in chunks)
        (6, 'First sentence here.', True)
    """
    return chunk_texts([text], tokenizer, max_tokens, overlap)[0]


def chunk_texts(
    texts: Sequence[str], tokenizer, max_tokens: int, overlap: int, *, line_oriented: bool = False,
    ends_after: Sequence[int] | None = None,
) -> list[list[Chunk]]:
    """`chunk_text` for many texts at once; tokenization runs in parallel (`encode_batch`).
    `line_oriented`: cut at line ends (see the module docstring). `ends_after[i]`: text i
    continues a longer one whose previous chunk ended at that character of it (0: none),
    so its first chunk must end past there, as every chunk after the first must
    (chunk_stream.py makes a long text's chunks a window at a time).

        >>> [len(cs) for cs in chunk_texts(["A short one.", "  ", "word " * 100], tok, 32, 4)]
        [1, 0, 4]
    """
    _check_arguments(tokenizer, max_tokens, overlap)
    texts = list(texts)
    for i, t in enumerate(texts):
        if not isinstance(t, str):
            raise BadInput(f"texts[{i}] must be a str, got {type(t).__name__}")
    result: list[list[Chunk]] = [[] for _ in texts]
    todo = [i for i, t in enumerate(texts) if t and not t.isspace()]
    if not todo:
        return result
    encodings = tokenizer.encode_batch([texts[i] for i in todo], add_special_tokens=False)
    stable = _cuts_are_stable(tokenizer)
    to_check: list[int] = []
    for i, enc in zip(todo, encodings):
        after = ends_after[i] if ends_after else 0
        result[i], forced = _chunk_encoding(texts[i], enc, max_tokens, overlap, line_oriented=line_oriented,
                                            ends_after=after)
        if forced or not stable:
            to_check.append(i)
    if to_check:
        by_text = dict(zip(todo, encodings))
        _recut_overlong(texts, result, by_text, to_check, tokenizer, max_tokens, overlap, line_oriented,
                        ends_after)
    return result


def whole_chunks(texts: Sequence[str]) -> list[list[Chunk]]:
    """One chunk per text, the whole of it less surrounding whitespace (no chunk for a blank
    text): the "whole" chunking, where the encoder truncates at its maximum length.

        >>> whole_chunks(["  Title\n\nBody. ", " "])
        [[Chunk(ordinal=0, start=2, end=14, text='Title\n\nBody.')], []]
    """
    return [[chunk] if (chunk := _make_chunk(t, 0, 0, len(t))).text else [] for t in texts]


def _check_arguments(tokenizer, max_tokens: int, overlap: int) -> None:
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 8:
        raise BadInput(f"max_tokens must be an integer >= 8, got {max_tokens!r}")
    if (
        isinstance(overlap, bool)
        or not isinstance(overlap, int)
        or not 0 <= overlap < max_tokens // 2
    ):
        raise BadInput(
            f"overlap must be an integer with 0 <= overlap < max_tokens // 2 "
            f"(= {max_tokens // 2}), got {overlap!r}"
        )
    # Padding would add tokens that are not in the text; truncation would drop text silently.
    if getattr(tokenizer, "truncation", None) is not None:
        raise BadInput("the tokenizer truncates; call tokenizer.no_truncation() first")
    if getattr(tokenizer, "padding", None) is not None:
        raise BadInput("the tokenizer pads; call tokenizer.no_padding() first")


def _cuts_are_stable(tokenizer) -> bool:
    """True when a text cut between two pre-tokenized words re-tokenizes to the same tokens:
    WordPiece after BERT's pre-tokenizer works word by word, with no memory of spaces."""
    return (
        type(getattr(tokenizer, "model", None)).__name__ == "WordPiece"
        and type(getattr(tokenizer, "pre_tokenizer", None)).__name__ == "BertPreTokenizer"
    )


def _recut_overlong(texts, result, encodings, to_check, tokenizer, max_tokens, overlap, line_oriented,
                    ends_after=None) -> None:
    """Re-tokenize the chunks of the documents in `to_check`; chunk again, checking every
    window, the documents with a chunk over `max_tokens`."""
    flat = [(i, c.text) for i in to_check for c in result[i]]
    counts = tokenizer.encode_batch([t for _, t in flat], add_special_tokens=False)
    overlong = sorted({i for (i, _), enc in zip(flat, counts) if len(enc.ids) > max_tokens})

    def count(s: str) -> int:
        return len(tokenizer.encode(s, add_special_tokens=False).ids)

    for i in overlong:
        result[i], _ = _chunk_encoding(texts[i], encodings[i], max_tokens, overlap, count, line_oriented,
                                       ends_after[i] if ends_after else 0)


def _chunk_encoding(
    text: str, enc, max_tokens: int, overlap: int, count: Callable[[str], int] | None = None,
    line_oriented: bool = False, ends_after: int = 0,
) -> tuple[list[Chunk], bool]:
    """Chunks of one encoded text, and whether a cut fell inside a word.

    With `count` (a re-tokenizing token counter) every window is checked and shortened
    until its text fits in `max_tokens`. `ends_after`: see `chunk_texts`."""
    offsets = enc.offsets
    n = len(offsets)
    if n == 0:
        return [], False
    cuts = _Cuts(text, enc, line_oriented)
    tail = max(1, int(max_tokens * (LINE_TAIL_FRACTION if line_oriented else TAIL_FRACTION)))
    chunks: list[Chunk] = []
    forced = False
    start = 0
    # The token after the previous chunk (of the longer text this one continues): the
    # first token that starts at or past `ends_after`.
    prev_end = bisect_left([o[0] for o in offsets], ends_after) if ends_after > 0 else 0
    while True:
        limit = min(n, start + max_tokens)
        while True:
            end = n if limit == n else _choose_end(cuts, max(start, prev_end), limit, tail)
            chunk = _make_chunk(text, len(chunks), offsets[start][0], offsets[end - 1][1])
            excess = count(chunk.text) - max_tokens if count and chunk.text else 0
            if excess <= 0 or end - start <= 1:
                break
            if start < prev_end:
                # Give up the overlap first: shortening the window could force a worse cut.
                start = prev_end
                limit = min(n, start + max_tokens)
            else:
                limit = max(start + 1, end - excess)
        if end < n and cuts.quality(end) < _TOKENIZER_WORD:
            forced = True
        if chunk.text:  # empty only for a window of zero-width tokens
            chunks.append(chunk)
        if end >= n:
            return chunks, forced
        prev_end = end
        start = _choose_next_start(cuts, start, end, max_tokens, overlap)
        if cuts.quality(start) < _TOKENIZER_WORD:
            forced = True


def _choose_end(cuts: _Cuts, after: int, limit: int, tail: int) -> int:
    """Token index to end a window at: in (after, limit], where `after` is the window's start
    or, when later, the previous window's end (so that every window reaches further)."""
    # A paragraph break or sentence end in the tail of the window: the best, then the latest.
    best, best_quality = None, _SENTENCE - 1
    for i in range(limit, max(after, limit - tail), -1):
        if cuts.may_end_sentence(i) and not cuts.is_blank(i - 1):
            q = cuts.quality(i)
            if q > best_quality:
                best, best_quality = i, q
    if best is not None:
        return best
    # Otherwise the latest whitespace, then the latest place between two tokenizer words,
    # then (a word longer than the window) between two of its pieces, then anywhere.
    # Never just after a whitespace-only token (a newline in byte-level BPE): the cut
    # before it is as good, and the window would end no further on in the text.
    for floor in (_SPACE, _TOKENIZER_WORD, _INSIDE_WORD):
        for i in range(limit, after, -1):
            if cuts.quality(i) >= floor and not cuts.is_blank(i - 1):
                return i
    return limit


def _choose_next_start(cuts: _Cuts, start: int, end: int, max_tokens: int, overlap: int) -> int:
    """First token of the next window: about `overlap` tokens before `end`, at a word start."""
    lo = max(start + 1, end - overlap)
    if lo >= end or end - start < max_tokens // 2:
        # No overlap wanted, or the window ended less than half full because a very long
        # word follows (a URL, base64): repeating its few words would make near-duplicates.
        return end
    # Start no worse than the window ended: after whitespace, unless the text has none there
    # (line-oriented text: at a line start, when the window ended at a line end).
    floor = min(_SENTENCE if cuts.line_oriented else _SPACE, cuts.quality(end))
    for i in range(lo, end):
        if cuts.quality(i) >= floor and not cuts.is_blank(i):
            return i
    return end


def _make_chunk(text: str, ordinal: int, start: int, end: int) -> Chunk:
    # Tokens may carry whitespace (byte-level BPE without offset trimming, newline tokens):
    # keep the chunk's edges free of it all the same.
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return Chunk(ordinal, start, end, text[start:end])


class _Cuts:
    """Quality of the cut before each token of one encoding, computed when first asked."""

    def __init__(self, text: str, enc, line_oriented: bool = False) -> None:
        self.text = text
        self.line_oriented = line_oriented
        self.offsets = enc.offsets
        self._enc = enc
        self._word_ids: list | bool | None = None
        self._tokens: list[str] | None = None
        self._cache: dict[int, int] = {}

    def quality(self, i: int) -> int:
        """How good a place to cut is the boundary before token `i` (0 < i < len)."""
        q = self._cache.get(i)
        if q is None:
            q = self._cache[i] = self._quality(i)
        return q

    def may_end_sentence(self, i: int) -> bool:
        """A cheap test, true whenever `quality(i) >= _SENTENCE` may hold."""
        prev_end, start = self.offsets[i - 1][1], self.offsets[i][0]
        if prev_end == 0:
            return False
        last = self.text[prev_end - 1]
        if last in _SENTENCE_OR_CLOSER or last.isspace():
            return True
        return "\n" in self.text[prev_end : start + 1]

    def is_blank(self, i: int) -> bool:
        """Token `i` is whitespace only (a newline token of byte-level BPE)."""
        s, e = self.offsets[i]
        return e > s and self.text[s:e].isspace()

    def _quality(self, i: int) -> int:
        text = self.text
        prev_start, prev_end = self.offsets[i - 1]
        start, end = self.offsets[i]
        if start < prev_end or start < prev_start:
            return _INSIDE_CHAR
        between = text[prev_end:start]
        if (
            (prev_end > prev_start and text[prev_end - 1].isspace())
            or (end > start and text[start].isspace())
            or (between and any(c.isspace() for c in between))
        ):
            # Whitespace at the cut: measure the whole run around it, across tokens.
            lo, hi = prev_end, start
            while lo > 0 and prev_end - lo < _MAX_SCAN and text[lo - 1].isspace():
                lo -= 1
            while hi < len(text) and hi - start < _MAX_SCAN and text[hi].isspace():
                hi += 1
            if text.count("\n", lo, hi) >= 2:
                return _PARAGRAPH
            if self.line_oriented:  # a line end ranks as a sentence end; '.' ends nothing
                return _SENTENCE if "\n" in text[lo:hi] else _SPACE
            if lo > 0 and self._ends_sentence(lo):
                return _SENTENCE
            return _SPACE
        if prev_end > prev_start and text[prev_end - 1] in _CJK_SENTENCE_END:
            return _SENTENCE
        word_ids = self._words()
        if word_ids is not None:
            a, b = word_ids[i - 1], word_ids[i]
            return _TOKENIZER_WORD if a is None or b is None or a != b else _INSIDE_WORD
        # No word ids: a space marker starts a word; punctuation stands apart.
        if self._token(i).startswith(_SPACE_MARKERS):
            return _SPACE
        return _TOKENIZER_WORD if self._is_punct(i - 1) or self._is_punct(i) else _INSIDE_WORD

    def _ends_sentence(self, word_end: int) -> bool:
        """Whether the text just before `word_end` ends a sentence: 'end.', 'end."', 'end.)'."""
        k = word_end - 1
        while k > 0 and k > word_end - 4 and self.text[k] in _CLOSERS:
            k -= 1
        return self.text[k] in _SENTENCE_END

    def _words(self) -> list | None:
        if self._word_ids is None:
            ids = self._enc.word_ids
            # Without a pre-tokenizer there are no word ids, or one word for everything.
            self._word_ids = ids if len(set(ids)) > 1 else False
        return self._word_ids or None

    def _token(self, i: int) -> str:
        if self._tokens is None:
            self._tokens = self._enc.tokens
        return self._tokens[i]

    def _is_punct(self, i: int) -> bool:
        s, e = self.offsets[i]
        return e > s and not any(c.isalnum() for c in self.text[s:e])
