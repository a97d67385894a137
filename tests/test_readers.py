"""Tests for searchkit.readers: each reader, every skip reason, and the walk."""

import os
import pickle

import pytest

from searchkit import readers
from searchkit.errors import BadInput, SkipFile
from searchkit.filetypes import supported_suffixes
from searchkit.readers import (
    Document,
    html_to_text,
    markdown_title,
    read_file,
    rst_title,
    walk,
)


def write(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode("utf-8")
    path.write_bytes(content)
    return path


def only_document(path, **kw):
    result = read_file(path, **kw)
    assert result.problems == []
    assert len(result.documents) == 1
    return result.documents[0]


def skip_reason(path, **kw):
    with pytest.raises(SkipFile) as info:
        read_file(path, **kw)
    return info.value.reason


def walked(*paths, **kw):
    return [(p.name, reason) for p, reason in walk(list(paths), **kw)]


# ---------------------------------------------------------------------------- readers


@pytest.mark.parametrize(
    "name, content, title, text",
    [
        ("a.txt", "plain text\nsecond line\n", "", "plain text\nsecond line\n"),
        ("a.md", "Intro\n\n# The *Title*\n\nBody.\n", "The Title", None),
        ("a.markdown", "## Only a subheading\n\nBody.\n", "", None),
        ("a.md", "```sh\n# a shell comment\n```\n\n# Real\n", "Real", None),
        ("a.md", "Setext title\n============\n\nBody.\n", "Setext title", None),
        ("a.rst", ":orphan:\n\n=====\nUsage\n=====\n\nBody text.\n", "Usage", None),
        ("a.rst", "Section\n-------\n\nBody text.\n", "Section", None),
        ("a.rst", "No title in here.\nJust lines.\n", "", None),
    ],
)
def test_text_readers_keep_text_and_find_title(tmp_path, name, content, title, text):
    doc = only_document(write(tmp_path / name, content))
    assert doc.title == title
    assert doc.text == (content if text is None else text)
    assert doc.key == "" and doc.meta == {}


def test_document_path_is_absolute_and_resolved(tmp_path, monkeypatch):
    write(tmp_path / "real" / "a.txt", "hello")
    os.symlink(tmp_path / "real", tmp_path / "link")
    monkeypatch.chdir(tmp_path)
    doc = only_document("link/a.txt")
    assert doc.path == (tmp_path / "real" / "a.txt").resolve()
    assert doc.path.is_absolute()


@pytest.mark.parametrize(
    "raw, text",
    [
        (b"\xef\xbb\xbfwith BOM\n", "with BOM\n"),
        (b"windows\r\nline ends\r\n", "windows\nline ends\n"),
        ("naïve café 日本語 🎉".encode(), "naïve café 日本語 🎉"),
    ],
)
def test_decoding(tmp_path, raw, text):
    assert only_document(write(tmp_path / "a.txt", raw)).text == text


HTML = """<!DOCTYPE html>
<html><head>
  <title> Fish &amp; Chips </title>
  <style>p { color: red; }</style>
  <script>var hidden = "<p>not text</p>";</script>
</head>
<body>
<h1>Menu&nbsp;today</h1>
<p>Cod   and
   chips &lt;hot&gt; &eacute;t&#233;</p>
<ul><li>one</li><li>two</li></ul>
<table><tr><td>a</td><td>b</td></tr></table>
<script>document.write("also hidden")</script>
<p>Last<br>line</p>
</body></html>
"""


@pytest.mark.parametrize("suffix", [".html", ".htm"])
def test_html_visible_text_only(tmp_path, suffix):
    doc = only_document(write(tmp_path / f"page{suffix}", HTML))
    assert doc.title == "Fish & Chips"
    assert doc.text == "Menu today\n\nCod and chips <hot> été\n\none\ntwo\n\na b\n\nLast\nline"
    for hidden in ("hidden", "color", "not text", "Fish"):
        assert hidden not in doc.text


@pytest.mark.parametrize(
    "html, title, text",
    [
        ("<p>no title</p>", "", "no title"),
        ("<head><title>T</title><p>unclosed head", "T", "unclosed head"),
        ("<pre>line 1\nline 2</pre>", "", "line 1\nline 2"),
        ("<p>a<br><br>b</p>", "", "a\n\nb"),
        ("x<noscript>enable JS</noscript><template><p>t</p></template>y", "", "xy"),
    ],
)
def test_html_to_text_cases(html, title, text):
    assert html_to_text(html) == (title, text)


def test_markdown_and_rst_titles_directly():
    assert markdown_title("no heading at all") == ""
    assert markdown_title("# `code` and ![alt text](x.png)") == "code and alt text"
    assert rst_title("Too short underline\n---\n") == ""
    assert rst_title("   Indented\n-----------\n") == ""


def test_jsonl_records_titles_ids_and_meta(tmp_path):
    path = write(
        tmp_path / "notes.jsonl",
        '{"_id": "d1", "title": "Cats", "text": "Cats purr.", "year": 2020, "tags": ["x"]}\n'
        "\n"
        '{"text": "No title, no id.", "score": 0.5, "ok": true, "none": null}\n'
        '{"_id": 7, "title": "", "text": "Numeric id."}\n',
    )
    result = read_file(path)
    assert result.problems == []
    d1, d2, d3 = result.documents
    assert (d1.key, d1.title, d1.text) == ("d1", "Cats", "Cats\n\nCats purr.")
    assert d1.meta == {"year": 2020}  # the list "tags" is not a scalar
    assert (d2.key, d2.title, d2.text) == ("line-3", "", "No title, no id.")
    assert d2.meta == {"score": 0.5, "ok": True, "none": None}
    assert (d3.key, d3.text) == ("7", "Numeric id.")
    assert all(d.path == path.resolve() for d in result.documents)


def test_jsonl_bad_lines_are_reported_with_line_numbers(tmp_path):
    path = write(
        tmp_path / "notes.jsonl",
        '{"_id": "a", "text": "good"}\n'  # 1
        "{not json\n"  # 2
        "[1, 2]\n"  # 3
        '{"title": "no text"}\n'  # 4
        '{"text": 42}\n'  # 5
        "\n"  # 6: blank, ignored
        '{"_id": "a", "text": "same id"}\n'  # 7
        '{"text": "  "}\n'  # 8
        '{"text": "also good"}\n',  # 9
    )
    result = read_file(path)
    assert [d.key for d in result.documents] == ["a", "line-9"]
    assert result.problems == [
        "notes.jsonl line 2: not valid JSON",
        "notes.jsonl line 3: not a JSON object",
        'notes.jsonl line 4: no "text" field',
        'notes.jsonl line 5: "text" is not a string',
        "notes.jsonl line 7: duplicate _id 'a' (first on line 1)",
        'notes.jsonl line 8: empty "text"',
    ]


def test_jsonl_line_separator_inside_a_string_is_not_a_line_break(tmp_path):
    path = write(tmp_path / "a.jsonl", '{"text": "one\u2028two"}\n{"text": "three"}\n')
    result = read_file(path)
    assert [d.text for d in result.documents] == ["one\u2028two", "three"]
    assert [d.key for d in result.documents] == ["line-1", "line-2"]


# ---------------------------------------------------------------------------- skip reasons


@pytest.mark.parametrize(
    "name, content, reason",
    [
        ("a.txt", b"", "empty"),
        ("a.md", b"  \n\t\n", "empty"),
        ("a.jsonl", b"\n\n", "empty"),
        ("a.html", b"<html><head><title>x</title></head><body> </body></html>", "empty"),
        ("a.txt", b"text\x00with a NUL", "binary"),
        ("a.txt", b"caf\xe9 in Latin-1", "invalid UTF-8"),
        ("a.png", b"\x89PNG", "unsupported type .png"),
        ("a.pdf", b"%PDF-1.4", "broken PDF"),
        ("README", b"\x7fELF\x00\x00", "binary"),
    ],
)
def test_read_file_skip_reasons(tmp_path, name, content, reason):
    assert skip_reason(write(tmp_path / name, content)).startswith(reason)


def test_nul_after_the_probe_is_not_binary_but_still_read(tmp_path):
    path = write(tmp_path / "a.txt", b"x" * 9000 + b"\x00")
    assert only_document(path).text.endswith("\x00")


def test_over_size_limit(tmp_path):
    path = write(tmp_path / "big.txt", b"x" * 2048)
    assert skip_reason(path, max_bytes=1024) == "over size limit (2,048 bytes > 1,024)"
    assert walked(path, max_bytes=1024) == [("big.txt", "over size limit (2,048 bytes > 1,024)")]
    assert only_document(path, max_bytes=2048).text == "x" * 2048
    big = write(tmp_path / "bigger.txt", b"x" * (12 * 2**20 + 300 * 2**10))
    assert skip_reason(big) == "over size limit (12,890,112 bytes > 10,485,760)"
    # One byte over: rounded, both sides read "50 MB" (sparse: nothing written on disk).
    with open(tmp_path / "limit.txt", "wb") as fh:
        fh.truncate(50 * 2**20 + 1)
    assert walked(tmp_path / "limit.txt", max_bytes=50 * 2**20) == [
        ("limit.txt", "over size limit (52,428,801 bytes > 52,428,800)")]


def test_skip_file_message_and_pickling(tmp_path):
    path = write(tmp_path / "a.docx", b"x")
    with pytest.raises(SkipFile) as info:
        read_file(path)
    assert str(info.value) == f"{path}: unsupported type .docx"
    copy = pickle.loads(pickle.dumps(info.value))
    assert (copy.path, copy.reason) == (info.value.path, "unsupported type .docx")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_permission_denied_for_real(tmp_path):
    path = write(tmp_path / "secret.txt", "hidden")
    path.chmod(0)
    try:
        assert skip_reason(path) == "permission denied"
        assert walked(path) == [("secret.txt", "permission denied")]
    finally:
        path.chmod(0o644)


def test_permission_denied_as_walk_and_read_file_see_it(tmp_path, monkeypatch):
    # Runs as root too: the same answers os.access and open give for a chmod 000 file.
    path = write(tmp_path / "secret.txt", "hidden")

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(readers.os, "access", lambda p, mode: False)
    assert walked(path) == [("secret.txt", "permission denied")]
    monkeypatch.setattr(readers, "open", refuse, raising=False)
    assert skip_reason(path) == "permission denied"


def test_broken_symlink(tmp_path):
    link = tmp_path / "gone.txt"
    os.symlink(tmp_path / "missing.txt", link)
    assert skip_reason(link) == "broken symlink"
    assert walked(tmp_path) == [("gone.txt", "broken symlink")]


def test_symlink_to_itself_is_a_loop(tmp_path):
    link = tmp_path / "self.txt"
    os.symlink(link, link)
    assert skip_reason(link) == "symlink loop"
    assert walked(tmp_path) == [("self.txt", "symlink loop")]


def test_folder_symlink_loop_is_reported_once(tmp_path):
    write(tmp_path / "a" / "doc.txt", "x")
    os.symlink(tmp_path / "a", tmp_path / "a" / "b_back")  # a/b_back -> a
    os.symlink(tmp_path, tmp_path / "a" / "c_up")  # a/c_up -> the root
    results = list(walk([tmp_path]))
    assert [(p.name, r) for p, r in results] == [
        ("b_back", "symlink loop"),
        ("c_up", "symlink loop"),
        ("doc.txt", None),
    ]


def test_symlinked_folder_and_file_are_followed(tmp_path):
    outside = tmp_path / "outside"
    write(outside / "x.md", "# X")
    root = tmp_path / "root"
    write(root / "own.txt", "own")
    os.symlink(outside, root / "linked")
    os.symlink(outside / "x.md", root / "z_link.md")
    results = list(walk([root]))
    assert [(str(p.relative_to(tmp_path)), r) for p, r in results] == [
        ("root/linked/x.md", None),  # outside the folder: yielded where it was found, not resolved
        ("root/own.txt", None),
        ("root/z_link.md", f"duplicate of {root / 'linked' / 'x.md'}"),  # named at its own route
    ]


def test_a_link_inside_the_folder_is_a_duplicate_named_where_it_was_found(tmp_path):
    """The skip entry named the real file as a duplicate of itself; the link never appeared."""
    root = tmp_path / "root"
    guide = write(root / "docs" / "guide.md", "# Guide")
    (root / "links").mkdir()
    os.symlink(guide, root / "links" / "guide_link.md")
    os.symlink(guide, root / "a_link.md")  # before docs/ in walk order: this route wins
    found = [(str(p.relative_to(root)), r, str(via.relative_to(root))) for p, r, via in readers.walk_found([root])]
    assert found == [
        ("docs/guide.md", None, "a_link.md"),  # inside the folder: resolved, as the direct route names it
        ("docs/guide.md", f"duplicate of {root / 'a_link.md'}", "docs/guide.md"),
        ("links/guide_link.md", f"duplicate of {root / 'a_link.md'}", "links/guide_link.md"),
    ]
    (root / "a_link.md").unlink()
    assert walked(root)[:2] == [("guide.md", None), ("guide_link.md", f"duplicate of {guide}")]


def test_not_a_regular_file(tmp_path):
    fifo = tmp_path / "pipe.txt"
    os.mkfifo(fifo)
    assert skip_reason(fifo) == "not a regular file"  # and did not block on open
    assert walked(fifo) == [("pipe.txt", "not a regular file")]


@pytest.mark.parametrize("walk_it", [True, False])
def test_nonexistent_path_is_bad_input(tmp_path, walk_it):
    write(tmp_path / "ok.txt", "fine")
    missing = tmp_path / "nope"
    with pytest.raises(BadInput, match=f"{missing}: no such file or directory"):
        it = walk([tmp_path, missing])  # raises on the call, before anything is yielded
        if walk_it:
            list(it)


def test_max_bytes_is_validated(tmp_path):
    with pytest.raises(BadInput, match="max_bytes"):
        walk([tmp_path], max_bytes=0)
    with pytest.raises(BadInput, match="max_bytes"):
        read_file(write(tmp_path / "a.txt", "x"), max_bytes=-5)


# ---------------------------------------------------------------------------- walk


def test_walk_order_is_sorted_and_stable(tmp_path):
    expected = [
        "10.txt", "9.txt", "C.txt", "a/a.html", "a/b/c.rst", "a/z.md", "a.txt", "b.txt", "é.txt"
    ]  # fmt: skip
    for name in [expected[i] for i in (4, 0, 8, 2, 6, 1, 5, 3, 7)]:  # created out of order
        write(tmp_path / name, "x")
    first = [str(p.relative_to(tmp_path)) for p, _ in walk([tmp_path])]
    assert first == expected
    assert [str(p.relative_to(tmp_path)) for p, _ in walk([tmp_path])] == first


def test_walk_yields_files_and_reasons(tmp_path):
    write(tmp_path / "doc.md", "# Doc")
    write(tmp_path / "photo.png", b"\x89PNG")
    write(tmp_path / "empty.txt", b"")
    assert walked(tmp_path) == [
        ("doc.md", None),
        ("empty.txt", "empty"),
        ("photo.png", "unsupported type .png"),
    ]


def test_hidden_and_junk_folders_are_not_entered_but_reported_once(tmp_path):
    names = [".git/config.txt", ".hidden/a.txt", "__pycache__/m.txt", "node_modules/p/r.md"]
    names += [".venv/lib/x.txt", ".dotfile.txt", "src/.secret.md", "src/keep.md"]
    for name in names:
        write(tmp_path / name, "x")
    assert [(str(p.relative_to(tmp_path)), r) for p, r in walk([tmp_path])] == [
        (".dotfile.txt", "hidden"),
        (".git", "version control folder"),
        (".hidden", "hidden"),
        (".venv", "hidden"),
        ("__pycache__", "ignored (built-in: __pycache__)"),
        ("node_modules", "ignored (built-in: node_modules)"),
        ("src/.secret.md", "hidden"),
        ("src/keep.md", None),
    ]


def test_walk_takes_one_path_too(tmp_path):
    write(tmp_path / "docs" / "a.txt", "x")
    assert walked(tmp_path / "docs") == [("a.txt", None)]
    assert [(p.name, r) for p, r in walk(str(tmp_path / "docs"))] == [("a.txt", None)]


def test_a_hidden_path_given_explicitly_is_walked(tmp_path):
    write(tmp_path / ".notes" / "a.txt", "x")
    assert walked(tmp_path / ".notes") == [("a.txt", None)]


def test_walk_paths_are_absolute_and_given_order_kept(tmp_path, monkeypatch):
    write(tmp_path / "b" / "1.txt", "x")
    write(tmp_path / "a" / "2.txt", "x")
    monkeypatch.chdir(tmp_path)
    results = list(walk(["b", "a"]))
    root = tmp_path.resolve()
    assert [p for p, _ in results] == [root / "b" / "1.txt", root / "a" / "2.txt"]


def test_walk_then_read_everything(tmp_path):
    write(tmp_path / "a.md", "# A\n\ntext")
    write(tmp_path / "b.jsonl", '{"text": "one"}\n{"text": "two"}\n')
    write(tmp_path / "c.txt", b"\xc3\x28")  # (b"\xff\xfe" was this once: a UTF-16 mark now)
    docs, skipped = [], []
    for path, reason in walk([tmp_path]):
        assert reason is None
        try:
            docs += read_file(path).documents
        except SkipFile as e:
            skipped.append((path.name, e.reason))
    assert [(d.path.name, d.key, d.title) for d in docs] == [
        ("a.md", "", "A"),
        ("b.jsonl", "line-1", ""),
        ("b.jsonl", "line-2", ""),
    ]
    assert skipped == [("c.txt", "invalid UTF-8")]
    assert all(isinstance(d, Document) for d in docs)


def test_supported_suffixes():
    prose = {".txt", ".md", ".markdown", ".rst", ".html", ".htm", ".jsonl", ".pdf", ".tex", ""}
    code = {".py", ".js", ".ts", ".go", ".rs", ".java", ".c", ".h", ".cpp", ".rb", ".sh", ".sql"}
    config = {".toml", ".yaml", ".yml", ".json", ".csv", ".tsv", ".ini", ".cfg"}
    assert prose | code | config <= supported_suffixes()
