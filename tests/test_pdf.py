"""PDF files: text page by page, page offsets, and every way a PDF can fail to be read
(skipped with a reason, never a traceback)."""

import json

import pytest
from index_helpers import invoke, query
from pdf_helpers import pdf_bytes, write_encrypted_pdf, write_pdf

from searchkit.errors import SkipFile
from searchkit.ingest import content_reason
from searchkit.pdf import PAGE_SEPARATOR
from searchkit.positions import locate
from searchkit.readers import read_file, walk

PAGES = [
    ["Chapter one: the lighthouse keeper.", "He climbed the stairs every evening."],
    ["Chapter two: a storm over the harbour.", "Waves broke against the pier (all night)."],
    ["Chapter three: the morning after."],
]


def test_every_page_is_read_in_order_with_its_offset(tmp_path):
    path = write_pdf(tmp_path / "book.pdf", PAGES, title="The  Keeper")
    result = read_file(path)
    assert result.problems == []
    [doc] = result.documents
    assert doc.title == "The Keeper" and doc.key == "" and not doc.file_lines
    assert len(doc.pages) == len(PAGES) and doc.pages[0] == 0
    ends = [*doc.pages[1:], len(doc.text) + len(PAGE_SEPARATOR)]
    for number, (start, end) in enumerate(zip(doc.pages, ends)):
        page_text = doc.text[start:end - len(PAGE_SEPARATOR)]
        assert [line.strip() for line in page_text.strip().split("\n")] == PAGES[number]
        if number:
            assert doc.text[start - len(PAGE_SEPARATOR):start] == PAGE_SEPARATOR


def test_a_chunk_knows_its_page(tmp_path):
    [doc] = read_file(write_pdf(tmp_path / "book.pdf", PAGES)).documents
    spans = [(doc.text.index(word), doc.text.index(word) + len(word)) for word in ("stairs", "storm", "morning")]
    assert [p["page"] for p in locate(doc, spans)] == [1, 2, 3]
    assert all(p["line_start"] is None and p["line_end"] is None for p in locate(doc, spans))


def test_an_empty_page_keeps_the_numbering(tmp_path):
    [doc] = read_file(write_pdf(tmp_path / "gap.pdf", [["first page"], [], ["third page"]])).documents
    start = doc.text.index("third")
    assert locate(doc, [(start, start + 5)])[0]["page"] == 3


@pytest.mark.parametrize(
    "name, make, reason",
    [
        ("locked.pdf", lambda p: write_encrypted_pdf(p, PAGES), "encrypted PDF (needs a password)"),
        ("scan.pdf", lambda p: write_pdf(p, [[], []], images=True), "no text (an image-only"),
        ("blank.pdf", lambda p: write_pdf(p, [[]]), "no text (an image-only"),
        ("garbage.pdf", lambda p: p.write_bytes(b"%PDF-1.4\nthis is not a pdf at all\n"), "broken PDF ("),
        ("cut.pdf", lambda p: p.write_bytes(pdf_bytes(PAGES)[:300]), "broken PDF ("),
        ("html.pdf", lambda p: p.write_bytes(b"<html><body>renamed</body></html>"), "broken PDF ("),
        ("empty.pdf", lambda p: p.write_bytes(b""), "empty"),
    ],
)
def test_unreadable_pdfs_are_skipped_with_a_reason(tmp_path, name, make, reason):
    path = tmp_path / name
    make(path)
    with pytest.raises(SkipFile) as info:
        read_file(path)
    assert info.value.reason.startswith(reason), info.value.reason
    assert "Traceback" not in info.value.reason and "\n" not in info.value.reason
    # A file that was indexed and now reads so loses its chunks, as an emptied one does.
    assert content_reason(info.value.reason)


def test_an_encrypted_pdf_with_an_empty_user_password_is_read(tmp_path):
    path = write_encrypted_pdf(tmp_path / "open.pdf", PAGES, password="")
    assert "lighthouse keeper" in read_file(path).documents[0].text


def test_over_the_size_limit_is_judged_on_the_file(tmp_path):
    path = write_pdf(tmp_path / "big.pdf", PAGES)
    size = path.stat().st_size
    assert [r for _, r in walk([path], max_bytes=size - 1)][0].startswith("over size limit")
    assert read_file(path, max_bytes=size).documents


def test_cli_ingest_of_bad_pdfs_lists_them_and_exits_0(tmp_path, small_bert):
    corpus = tmp_path / "docs"
    write_pdf(corpus / "good.pdf", PAGES)
    write_encrypted_pdf(corpus / "locked.pdf", PAGES)
    write_pdf(corpus / "scan.pdf", [[]], images=True)
    (corpus / "broken.pdf").write_bytes(pdf_bytes(PAGES)[:250])
    index = tmp_path / "index"
    result = invoke("ingest", corpus, "--index", index, "--model", small_bert, "--chunk-tokens", 32,
                    "--device", "cpu", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["files_added"] == 1 and summary["files_skipped"] == 3
    reasons = {item["path"].rsplit("/", 1)[-1]: item["reason"] for item in summary["skipped"]}
    assert reasons["locked.pdf"] == "encrypted PDF (needs a password)"
    assert reasons["scan.pdf"].startswith("no text")
    assert reasons["broken.pdf"].startswith("broken PDF")
    pages = query(index, "SELECT DISTINCT page FROM chunks ORDER BY page")
    assert [p for (p,) in pages] == [1, 2, 3]
    assert query(index, "SELECT count(*) FROM chunks WHERE line_start IS NOT NULL") == [(0,)]

    # Shown by search, in --json and on screen.
    result = invoke("search", "storm harbour", "--index", index, "--mode", "lexical", "-k", "1", "--json")
    [hit] = json.loads(result.stdout)
    assert hit["page"] == 2 and hit["line_start"] is None
    result = invoke("search", "storm harbour", "--index", index, "--mode", "lexical", "-k", "1")
    assert "good.pdf page 2" in result.stdout
