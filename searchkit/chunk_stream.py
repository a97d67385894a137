"""Chunk a document that arrives in pieces (text_stream.py), holding one window of it.

The text is gathered into a window of about `window_chars` characters and chunked; the
chunks that lie well inside the window are final, and the window moves on to start where
the first chunk that is not final starts, so that chunk is made again with the text after
it in view. Each chunk is a function of the text from the window's start onwards, which
is itself where an earlier chunk started: the same file always gives the same chunks,
and a file edited near its end gives the same chunks up to the windows around the edit
(what lets ingest re-embed only those).

    >>> for window in stream_chunks(pieces, lambda t: chunk_texts([t], tok, 256, 32)[0]):
    ...     window.start, window.text, [(c.start, c.end) for c in window.chunks]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from .chunking import Chunk

WINDOW_CHARS = 1 << 18  # 256 Ki characters: a few hundred chunks of a 256-token model

# The last chunks of a window may have been cut where the window ends rather than where
# the text would have them end: at least this many are made again with the next window.
UNSURE_CHUNKS = 2


@dataclass
class Window:
    """What one window settled: `text` is the document's text from `start` (consecutive
    windows' texts join up to the whole document), `chunks` the chunks made final here,
    with document offsets and ordinals, and `lines_before` the line ends before `start`.
    The last chunk may overlap the next window: `lookahead` is the text after `text` up to
    the end of the chunks (so `text + lookahead` holds them all)."""

    start: int
    text: str
    chunks: list[Chunk]
    lines_before: int
    lookahead: str = ""


def stream_chunks(pieces: Iterable[str], chunk: Callable[[str, int], list[Chunk]],
                  window_chars: int = WINDOW_CHARS) -> Iterator[Window]:
    """Windows of the text that `pieces` spell out, each with its final chunks.
    `chunk(text, ends_after)` chunks one window (offsets into it), its first chunk ending
    past character `ends_after` (where the chunk before it ended: `chunk_texts`)."""
    buf, start, lines_before, ordinal, after = "", 0, 0, 0, 0
    pieces = iter(pieces)
    done = False
    while not done:
        while len(buf) < window_chars:
            piece = next(pieces, None)
            if piece is None:
                done = True
                break
            buf += piece
        made = chunk(buf, after)
        if done:
            keep, advance = made, len(buf)
        elif len(made) > UNSURE_CHUNKS:
            # The last chunks, and any ending in the window's last eighth, are made again:
            # a token cut by the window's end can sway a cut a few chunks back (long runs
            # of one character, as in a table's rules, are few tokens but many characters).
            keep = made[: len(made) - UNSURE_CHUNKS]
            settled = [c for c in keep if c.end <= len(buf) - len(buf) // 8]
            keep = settled or keep
            advance = made[len(keep)].start
        elif not made:
            keep, advance = [], len(buf)  # only whitespace so far: nothing to make again
        else:
            # A chunk as long as the window (a "word" of a megabyte that the tokenizer
            # takes as one token): widen the window until it holds more than that.
            window_chars *= 2
            continue
        reach = max([advance, *(c.end for c in keep)])
        yield Window(start, buf[:advance], [Chunk(ordinal + i, start + c.start, start + c.end, c.text)
                                            for i, c in enumerate(keep)], lines_before, buf[advance:reach])
        ordinal += len(keep)
        after = max(0, keep[-1].end - advance) if keep else 0
        lines_before += buf.count("\n", 0, advance)
        buf, start = buf[advance:], start + advance
