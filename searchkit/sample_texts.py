"""Sample texts that parity compares on and the `--dtype fastest` probe times: plain
data, importable from either without the other."""

from __future__ import annotations

__all__ = ["DEFAULT_TEXTS"]

# Texts of mixed lengths, so that padding is in play; the last one is longer than
# ModernBERT's 128-token local window.
DEFAULT_TEXTS = [
    "this is a test",
    "The cat sits outside",
    "A man is playing guitar",
    "The new movie is so great",
    "Do you like pizza?",
    (
        "Semantic search ranks documents by meaning rather than by shared words. A query and "
        "every passage are mapped into the same vector space by an encoder, and the passages "
        "whose vectors lie closest to the query's are returned first. The quality of the "
        "answer depends on the encoder, on how documents are split into passages, and on how "
        "faithfully the implementation reproduces the model it claims to run. Small numerical "
        "differences, such as padding tokens counted in a mean, or a position index shifted by "
        "left padding, change vectors silently, so a careful implementation compares itself, "
        "layer by layer, with a reference. Long inputs matter too: models with local attention "
        "only let each token see its neighbours within a window, and an implementation that "
        "treats every layer as global attention agrees with the reference on short texts and "
        "drifts apart on long ones. This paragraph is long enough to cross such a window, with "
        "a few more sentences about indexes, catalogs, chunking, tokenizers and the way a "
        "search engine keeps its vectors and its metadata consistent after a crash, so that a "
        "search never returns the wrong document with a perfect score."
    ),
]
