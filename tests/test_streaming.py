"""Big text files in parts: decoded a block at a time, chunked a window at a time, staged
durably batch by batch, made visible whole, resumed after a kill, and re-embedded only
around an edit (text_stream.py, chunk_stream.py, ingest_stream.py, store/staging.py).

Most tests make files "big" with the hidden `--stream-bytes` knob and use the small BERT
cut out of MiniLM (same tokenizer, so the same chunks), so that they run in seconds.
"""

import codecs
import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from index_helpers import (
    chunks_of,
    finish,
    ingest_args,
    query,
    start,
    vectors_of,
    verify_ok,
)

from searchkit.chunk_stream import stream_chunks
from searchkit.chunking import chunk_texts
from searchkit.cli import main
from searchkit.errors import SkipFile
from searchkit.text_stream import TextStream, decode_bytes

PYDOC = Path(__file__).resolve().parents[1] / "corpora" / "pydoc-topics"


def scifact_text(records: int) -> str:
    """Real prose: the first `records` SciFact abstracts, a title line and a paragraph each
    (the pydoc topics where shared/ is not beside the checkout)."""
    path = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact" / "corpus.jsonl"
    if not path.is_file():
        path = Path(__file__).resolve().parents[1] / "corpora" / "pydoc-topics"
        return "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(path.glob("*.txt"))[:records])
    with open(path, encoding="utf-8") as fh:
        rows = [json.loads(next(fh)) for _ in range(records)]
    return "\n\n".join(f"{r['title']}\n{r['text']}" for r in rows)


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


# ---------------------------------------------------------------------------- decoding


@pytest.mark.parametrize("codec, bom", [
    ("utf-8", b""), ("utf-8", codecs.BOM_UTF8), ("utf-16-le", codecs.BOM_UTF16_LE),
    ("utf-16-be", codecs.BOM_UTF16_BE), ("utf-32-le", codecs.BOM_UTF32_LE), ("utf-32-be", codecs.BOM_UTF32_BE),
])
def test_a_stream_decodes_as_the_whole_file_does(tmp_path, codec, bom):
    text = "héllo\r\nwörld 🙂\r\n" * 1500 + "last\r"  # over the 8 KiB first read, so blocks split
    data = bom + text.encode(codec)
    path = tmp_path / "f.txt"
    path.write_bytes(data)
    whole = decode_bytes(data, path)
    assert whole == text.replace("\r\n", "\n").replace("\r", "\n")
    for block in (1, 5, 4096):  # "\r\n" and multi-byte characters split between blocks
        stream = TextStream(path, max_bytes=len(data))
        pieces = list(stream.pieces(block))
        assert len(pieces) > 1 and "".join(pieces) == whole
        assert stream.sha256 == hashlib.sha256(data).hexdigest() and stream.bytes_read == len(data)


def test_a_stream_refuses_what_the_whole_read_refuses(tmp_path):
    cases = {"bin.txt": (b"ab\x00cd" * 10, "binary"), "latin.txt": (b"ok " * 5000 + b"caf\xe9", "invalid UTF-8"),
             "half.txt": (codecs.BOM_UTF16_LE + "ab".encode("utf-16-le") + b"\x00\xd8", "invalid UTF-16")}
    for name, (data, reason) in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SkipFile) as whole:
            decode_bytes(data, tmp_path / name)
        with pytest.raises(SkipFile) as streamed:
            "".join(TextStream(tmp_path / name, max_bytes=10**6).pieces(64))
        assert whole.value.reason == streamed.value.reason == reason
    (tmp_path / "grew.txt").write_bytes(b"x" * 100)
    with pytest.raises(SkipFile, match="over size limit"):
        "".join(TextStream(tmp_path / "grew.txt", max_bytes=99).pieces(10))


def test_utf16_and_utf32_files_are_ingested_not_skipped_as_binary(tmp_path, small_bert):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "le.txt").write_bytes(codecs.BOM_UTF16_LE + "Tea is brewed from leaves.\r\n".encode("utf-16-le"))
    (corpus / "be.md").write_bytes(codecs.BOM_UTF16_BE + "# Coffee\n\nRoasted beans.\n".encode("utf-16-be"))
    (corpus / "wide.txt").write_bytes(codecs.BOM_UTF32_LE + "Cocoa grows in pods.".encode("utf-32-le"))
    result = invoke(*ingest_args(corpus, tmp_path / "i", small_bert))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files_added"] == 3 and summary["skipped"] == []
    texts = {row[5] for row in chunks_of(tmp_path / "i")}
    assert texts == {"Tea is brewed from leaves.", "# Coffee\n\nRoasted beans.", "Cocoa grows in pods."}


# ---------------------------------------------------------------------------- chunking


@pytest.fixture(scope="module")
def tokenizer(minilm):
    return minilm.tokenizer


def test_streamed_chunks_are_the_document_s_and_do_not_depend_on_the_reads(tokenizer):
    text = scifact_text(120)

    def chunk(t, ends_after=0):
        return chunk_texts([t], tokenizer, 64, 8, ends_after=[ends_after])[0]

    def pieces(size):
        return (text[i:i + size] for i in range(0, len(text), size))

    windows = list(stream_chunks(pieces(5000), chunk, window_chars=20000))
    assert len(windows) > 3
    assert "".join(w.text for w in windows) == text  # the parts join up to the document
    chunks = [c for w in windows for c in w.chunks]
    assert [c.ordinal for c in chunks] == list(range(len(chunks)))
    assert all(text[c.start:c.end] == c.text for c in chunks)
    assert all(w.lines_before == text.count("\n", 0, w.start) for w in windows)
    # Windows start where a chunk starts, so the reads' sizes change nothing ...
    other = [c for w in stream_chunks(pieces(777), chunk, window_chars=20000) for c in w.chunks]
    assert other == chunks
    # ... nor does windowing: the chunks are the whole text's, here and with the
    # repository's own corpus (rst tables: long runs of one character at window ends).
    assert chunks == chunk(text)
    pydoc = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted(PYDOC.glob("*.txt")))
    assert [c for w in stream_chunks((pydoc[i:i + 5000] for i in range(0, len(pydoc), 5000)), chunk, 20000)
            for c in w.chunks] == chunk(pydoc)


# ---------------------------------------------------------------------------- ingest


def big_corpus(tmp_path, records=150):
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a-small.md").write_text("# Small\n\nA note about tea.\n", encoding="utf-8")
    (corpus / "big.txt").write_text(scifact_text(records), encoding="utf-8")
    (corpus / "z-small.txt").write_text("Another small note, about coffee.\n", encoding="utf-8")
    return corpus


def streamed(corpus, index, model, *extra):
    return ingest_args(corpus, index, model, "--stream-bytes", "10000", *extra)


def test_a_big_file_streamed_equals_the_same_file_read_whole(tmp_path, small_bert):
    corpus = big_corpus(tmp_path)
    result = invoke(*streamed(corpus, tmp_path / "s", small_bert))
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files_streamed"] == 1 and summary["files_added"] == 3
    assert summary["chunks_embedded"] == summary["chunks_added"] > 500  # several staged batches
    whole = invoke(*ingest_args(corpus, tmp_path / "w", small_bert))
    assert json.loads(whole.stdout)["files_streamed"] == 0
    assert chunks_of(tmp_path / "s") == chunks_of(tmp_path / "w")
    ours, theirs = vectors_of(tmp_path / "s"), vectors_of(tmp_path / "w")
    assert ours.keys() == theirs.keys()
    assert max(float(abs(ours[k] - theirs[k]).max()) for k in ours) < 1e-5
    positions = ("SELECT files.path, chunks.start, chunks.line_start, chunks.line_end FROM chunks "
                 "JOIN documents ON chunks.document_id = documents.id JOIN files ON documents.file_id = files.id")
    assert sorted(query(tmp_path / "s", positions)) == sorted(query(tmp_path / "w", positions))
    texts = "SELECT title, text FROM documents ORDER BY text"
    assert query(tmp_path / "s", texts) == query(tmp_path / "w", texts)
    assert query(tmp_path / "s", "SELECT count(*) FROM staged_chunks") == [(0,)]
    verify_ok(tmp_path / "s")


def test_line_numbers_hold_across_windows_where_chunks_overlap_them(tmp_path, small_bert, monkeypatch):
    """Short lines, overlapping chunks and windows of a few kB: the last chunk kept by a
    window reaches into the next, and its lines must count the line ends there too."""
    import searchkit

    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "app.csv").write_text("".join(f"event {i}: cache {'hit' if i % 3 else 'miss'} for key k{i}\n"
                                            for i in range(4000)), encoding="utf-8")
    index = searchkit.open_index(tmp_path / "i", model=str(small_bert), chunk_tokens=64, chunk_overlap=16,
                                 device="cpu")
    monkeypatch.setattr("searchkit.chunk_stream.WINDOW_CHARS", 4000)  # dozens of windows in this file
    summary = index.ingest([corpus], stream_bytes=10_000)
    assert summary.files_streamed == 1
    rows = query(tmp_path / "i", "SELECT start, end, text, line_start, line_end FROM chunks")
    text = (corpus / "app.csv").read_text(encoding="utf-8")
    for a, b, chunk, first, last in rows:
        assert text[a:b] == chunk
        assert (first, last) == (text.count("\n", 0, a) + 1, text.count("\n", 0, b - 1) + 1)


def test_staging_of_a_file_under_a_linked_path_is_dropped_once_it_no_longer_streams(tmp_path, small_bert):
    real = big_corpus(tmp_path)
    link = tmp_path / "link"
    link.symlink_to(real)
    index = tmp_path / "i"
    code, _, _ = finish(start(streamed(link, index, small_bert, "--embed-chunks", "128"),
                              SEARCHKIT_TEST_CRASH_AT="after-stage:3"))
    assert code == -9 and query(index, "SELECT count(*) FROM staged_files") == [(1,)]
    # The file shrinks below the streaming size: read whole, and what was staged goes.
    (real / "big.txt").write_text(scifact_text(3), encoding="utf-8")
    summary = json.loads(invoke(*ingest_args(link, index, small_bert, "--stream-bytes", "100000")).stdout)
    assert summary["files_streamed"] == 0 and summary["files_added"] == 1  # the small ones were in
    assert query(index, "SELECT count(*) FROM staged_files") == [(0,)]


@pytest.mark.parametrize("point", ["after-vectors-save", "before-sqlite-commit"])
def test_a_kill_while_a_streamed_file_commits_keeps_what_was_staged(tmp_path, small_bert, point):
    corpus = big_corpus(tmp_path)
    index = tmp_path / "i"
    invoke(*ingest_args(corpus / "a-small.md", index, small_bert))  # generation 1
    # Generation 2 commits the small files, 3 the big one: killed while committing it.
    code, _, _ = finish(start(streamed(corpus, index, small_bert), SEARCHKIT_TEST_CRASH_AT=f"{point}:3"))
    assert code == -9
    verify_ok(index)
    assert str(corpus / "big.txt") not in {row[0] for row in chunks_of(index)}
    summary = json.loads(invoke(*streamed(corpus, index, small_bert)).stdout)
    assert summary["files_added"] == 1 and summary["chunks_embedded"] == 0
    assert summary["chunks_reused"] == summary["chunks_added"]
    invoke(*ingest_args(corpus, tmp_path / "clean", small_bert))
    assert chunks_of(index) == chunks_of(tmp_path / "clean")
    verify_ok(index)


def test_progress_moves_during_a_big_file(tmp_path, small_bert):
    import searchkit

    corpus = big_corpus(tmp_path)
    seen = []
    index = searchkit.open_index(tmp_path / "i", model=str(small_bert), chunk_tokens=64, device="cpu")
    index.ingest([corpus], stream_bytes=10_000, embed_chunks=128, progress=lambda *a: seen.append(a))
    total = seen[0][1]
    during = [(b, c) for b, _, c in seen if 0 < c and b < total]
    assert len(during) > 5  # many updates before the end, bytes and chunks moving forward
    assert [b for b, _ in during] == sorted(b for b, _ in during)
    assert [c for _, c in during] == sorted(c for _, c in during)


def test_a_killed_big_file_resumes_and_small_files_were_not_held_back(tmp_path, small_bert):
    corpus = big_corpus(tmp_path)
    index = tmp_path / "i"
    # Killed after its 3rd staged batch of 128 chunks (stages 1 and 2 open the file): nothing of it searchable yet...
    proc = start(streamed(corpus, index, small_bert, "--embed-chunks", "128"), SEARCHKIT_TEST_CRASH_AT="after-stage:5")
    code, _, _ = finish(proc)
    assert code == -9
    report = verify_ok(index)
    assert {row[0] for row in chunks_of(index)} == {str(corpus / "a-small.md"), str(corpus / "z-small.txt")}
    assert report["counts"]["staged_chunks"] == 3 * 128
    # ... and the re-run embeds only what had not been staged.
    result = invoke(*streamed(corpus, index, small_bert, "--embed-chunks", "128"))
    summary = json.loads(result.stdout)
    # (at least: a text repeated later in the file takes its staged vector too)
    assert summary["files_added"] == 1 and summary["chunks_reused"] >= 3 * 128
    assert summary["chunks_embedded"] == summary["chunks_added"] - summary["chunks_reused"]
    invoke(*ingest_args(corpus, tmp_path / "clean", small_bert))
    assert chunks_of(index) == chunks_of(tmp_path / "clean")
    ours, clean = vectors_of(index), vectors_of(tmp_path / "clean")
    assert max(float(abs(ours[k] - clean[k]).max()) for k in clean) < 1e-5
    report = verify_ok(index)
    assert "staged_chunks" not in report["counts"]


def test_an_edit_near_the_end_re_embeds_only_the_chunks_around_it(tmp_path, small_bert):
    corpus = big_corpus(tmp_path)
    index = tmp_path / "i"
    first = json.loads(invoke(*streamed(corpus, index, small_bert)).stdout)
    with open(corpus / "big.txt", "a", encoding="utf-8") as fh:
        fh.write("\n\nA last paragraph, added later, about the tides of the Bay of Fundy.\n")
    again = json.loads(invoke(*streamed(corpus, index, small_bert)).stdout)
    assert again["files_updated"] == 1 and again["chunks_removed"] == first["chunks_added"] - 2
    assert 1 <= again["chunks_embedded"] <= 3
    assert again["chunks_reused"] == again["chunks_added"] - again["chunks_embedded"]
    invoke(*ingest_args(corpus, tmp_path / "clean", small_bert))
    assert chunks_of(index) == chunks_of(tmp_path / "clean")
    verify_ok(index)


def test_a_big_file_that_turns_out_not_to_be_text_is_skipped_and_its_staging_dropped(tmp_path, small_bert):
    corpus = big_corpus(tmp_path)
    index = tmp_path / "i"
    invoke(*streamed(corpus, index, small_bert))
    with open(corpus / "big.txt", "ab") as fh:
        fh.write(b"\n\ncaf\xe9 in Latin-1 at the very end\n")
    result = invoke(*streamed(corpus, index, small_bert))
    summary = json.loads(result.stdout)
    assert summary["skipped"] == [{"path": str(corpus / "big.txt"), "reason": "invalid UTF-8"}]
    assert summary["files_removed"] == 1  # its old chunks go, as for a file read whole
    assert {row[0] for row in chunks_of(index)} == {str(corpus / "a-small.md"), str(corpus / "z-small.txt")}
    assert query(index, "SELECT count(*) FROM staged_files") == [(0,)]
    verify_ok(index)


def test_verify_notes_a_document_with_chunks_missing(tmp_path, small_bert):
    corpus = big_corpus(tmp_path, records=20)
    index = tmp_path / "i"
    invoke(*ingest_args(corpus, index, small_bert))
    db_rows = query(index, "SELECT id FROM chunks WHERE ordinal = 3")
    import sqlite3

    db = sqlite3.connect(index / "catalog.db")
    with db:
        db.execute("DELETE FROM chunks WHERE id = ?", db_rows[0])
    db.close()
    report = json.loads(invoke("verify", "--index", index, "--json").stdout)
    assert any(note.startswith("1 documents have chunks missing (ordinals with gaps)") for note in report["notes"])


def test_a_small_file_edited_re_embeds_only_its_changed_chunks(tmp_path, small_bert):
    corpus = tmp_path / "c"
    corpus.mkdir()
    text = scifact_text(12)
    (corpus / "notes.md").write_text(text, encoding="utf-8")
    index = tmp_path / "i"
    first = json.loads(invoke(*ingest_args(corpus, index, small_bert)).stdout)
    assert first["files_streamed"] == 0 and first["chunks_reused"] == 0 and first["chunks_added"] > 20
    # An edit at the end of the last paragraph: the chunks before it are the same texts (an insertion
    # higher up would move every token window after it: chunks are not content-defined).
    (corpus / "notes.md").write_text(f"{text.rstrip()} Otters were seen too.\n", encoding="utf-8")
    again = json.loads(invoke(*ingest_args(corpus, index, small_bert)).stdout)
    assert again["files_updated"] == 1
    assert 1 <= again["chunks_embedded"] <= 3 and again["chunks_reused"] == again["chunks_added"] - again["chunks_embedded"]
    invoke(*ingest_args(corpus, tmp_path / "clean", small_bert))
    assert chunks_of(index) == chunks_of(tmp_path / "clean")
    ours, clean = vectors_of(index), vectors_of(tmp_path / "clean")
    assert max(float(abs(ours[k] - clean[k]).max()) for k in clean) < 1e-5
    verify_ok(index)
