"""Find files and read them into documents.

Two plain functions carry the work, free of global state so that ingest can run them
as batch stages (in-process today, as Ray tasks later):

- `walk(paths)` lists the files under some files and folders, in a stable order, with a
  skip reason for those that can be judged from the directory entry alone;
- `read_file(path)` turns one file into `Document`s, or raises `SkipFile` with a reason.

    >>> for path, reason in walk(["corpora/pydoc-topics"]):
    ...     if reason is None:
    ...         docs = read_file(path).documents

Which reader a file gets is the table in filetypes.py (plain text and source code, Markdown,
reStructuredText, HTML, JSON Lines, PDF in pdf.py); which files a walk takes is
selection.py's (ignore files, --include/--exclude, hidden names). Text is decoded as
UTF-8 (a BOM is tolerated) and line endings are normalised to "\\n"; every character
offset elsewhere in searchkit refers to `Document.text`, not to the bytes on disk.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
from collections.abc import Iterator, Sequence
from html.parser import HTMLParser
from pathlib import Path

from searchkit.documents import Document, ReadResult
from searchkit.errors import BadInput, SkipFile
from searchkit.filetypes import suffix_of, type_of
from searchkit.pdf import read_pdf  # pypdf itself is imported when a PDF is first read
from searchkit.selection import Rules, Selection
from searchkit.text_stream import decode_bytes

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Document",
    "ReadResult",
    "SkipFile",
    "html_to_text",
    "markdown_title",
    "parse_jsonl",
    "read_file",
    "rst_title",
    "is_utf8",
    "printable",
    "walk",
    "walk_found",
]

DEFAULT_MAX_BYTES = 10 * 2**20


# ---------------------------------------------------------------------------- walk


def walk(
    paths: Sequence[str | os.PathLike], max_bytes: int = DEFAULT_MAX_BYTES, selection: Selection | None = None
) -> Iterator[tuple[Path, str | None]]:
    """Yield `(path, None)` for every file to read under `paths`, `(path, reason)` for the rest.
    (`walk_found` also gives the path each was found at, before links were followed.)

    Folders are walked depth first with the entries of each sorted by name, so the order is
    stable; the given paths are taken in the order given. `selection` (default: ignore
    files on, hidden names off; see selection.py) decides which entries below a given path
    are left out: such a file is yielded with its reason ("hidden", "ignored by
    .gitignore (build/)", ...), such a folder too, once, without being entered.
    Symlinks are followed; a link back to a folder being walked is reported once as
    "symlink loop", and a file or folder reached a second time by another route is reported
    as a duplicate, at the path it was found at. Yielded paths are absolute and resolved,
    the same as `Document.path`, when they lie inside the given paths; an entry reached
    through a link to outside them is yielded at the path it was found at (the link's). A
    broken or looping link is yielded as the link itself, and so is a left-out entry: its
    folder resolved, the entry itself not followed. A file or folder whose name
    is not valid UTF-8 is skipped with that reason (the catalog and every output are UTF-8).
    Raises `BadInput` at call time, before anything is yielded, when a given path does not
    exist.

        >>> [(p.name, r) for p, r in walk(["notes/"])]
        [('.git', 'version control folder'), ('a.md', None), ('b.png', 'unsupported type .png')]
    """
    return ((path, reason) for path, reason, _ in walk_found(paths, max_bytes, selection))


def walk_found(
    paths: Sequence[str | os.PathLike], max_bytes: int = DEFAULT_MAX_BYTES, selection: Selection | None = None
) -> Iterator[tuple[Path, str | None, Path]]:
    """`walk`, with a third item: the absolute path the walk met each entry at, before
    symlinks were resolved (`link.md` for a link to `notes/target.md`).

        >>> [(p.name, via.name) for p, _, via in walk_found(["notes/"])]
        [('target.md', 'link.md')]
    """
    _check_max_bytes(max_bytes)
    if isinstance(paths, (str, os.PathLike)):  # one path, not a sequence of characters
        paths = [paths]
    roots = [Path(os.path.abspath(os.path.expanduser(os.fspath(p)))) for p in paths]
    for root in roots:
        if not os.path.lexists(root):
            raise BadInput(f"{root}: no such file or directory")
    if selection is None:
        selection = Selection()
    elif not isinstance(selection, Selection):
        raise BadInput(f"selection: expected a searchkit.selection.Selection, got {type(selection).__name__}")
    return _walk_roots(roots, max_bytes, selection)


def _walk_roots(roots: list[Path], max_bytes: int, selection: Selection) -> Iterator[tuple[Path, str | None, Path]]:
    seen_files: dict[tuple[int, int], Path] = {}  # (st_dev, st_ino) -> the path the first route found it at
    seen_dirs: dict[tuple[int, int], Path] = {}  # every folder entered so far
    homes = tuple(os.path.realpath(root) for root in roots)  # what counts as inside the given paths
    for root in roots:
        rules = Rules.for_root(selection, root) if os.path.isdir(root) else None
        yield from _walk_one(root, root, (), seen_files, seen_dirs, max_bytes, rules, "", homes)


def _walk_one(
    path: Path,
    via: Path,
    ancestors: tuple[tuple[int, int], ...],
    seen_files: dict[tuple[int, int], Path],
    seen_dirs: dict[tuple[int, int], Path],
    max_bytes: int,
    rules: Rules | None,
    rel: str,  # the entry's path below the given path, "/"-separated ("" for the given path)
    homes: tuple[str, ...],  # the given paths, resolved
) -> Iterator[tuple[Path, str | None, Path]]:
    if not is_utf8(os.fspath(path)):
        yield path, "name is not valid UTF-8 (rename it to index it)", via
        return
    try:
        st = os.stat(path)  # follows symlinks
    except OSError as e:
        yield path, _stat_error_reason(path, e), via
        return

    ident = (st.st_dev, st.st_ino)
    if stat.S_ISDIR(st.st_mode):
        if ident in ancestors:
            yield path, "symlink loop", via
            return
        if ident in seen_dirs:
            yield via, f"duplicate of {seen_dirs[ident]}", via
            return
        seen_dirs[ident] = path = _where(path, via, homes)
        try:
            with os.scandir(path) as it:
                entries = sorted(((e.name, _is_dir(e)) for e in it))
        except PermissionError:
            yield path, "permission denied", via
            return
        except OSError as e:
            yield path, f"unreadable ({e.strerror or e})", via
            return
        if rules is not None and rel:
            rules = rules.enter(path, rel)
        for name, is_dir in entries:
            child_rel = f"{rel}/{name}" if rel else name
            reason = rules.reason(child_rel, name, is_dir) if rules is not None else None
            if reason is not None:  # left out: reported, never entered
                # At its own path, not resolved: a left-out link must not stand for its
                # target, which the walk may well reach and take by another route.
                yield path / name, reason, via / name
                continue
            yield from _walk_one(
                path / name, via / name, ancestors + (ident,), seen_files, seen_dirs, max_bytes, rules, child_rel,
                homes,
            )
        return

    path = _where(path, via, homes)
    reason = _file_reason(path, st, max_bytes)
    if reason is None:
        if ident in seen_files:  # named at its own route, not the target both routes share
            yield via, f"duplicate of {seen_files[ident]}", via
            return
        seen_files[ident] = via
    yield path, reason, via


def _where(path: Path, via: Path, homes: tuple[str, ...]) -> Path:
    """The path to give an entry: resolved when it lies inside the given paths (so two routes
    to one file name it alike), else where the walk found it. A link out of the folder is
    indexed at the link: its target's path would match no `path:` filter on the folder."""
    real = os.path.realpath(path)
    inside = any(real == home or real.startswith(home.rstrip(os.sep) + os.sep) for home in homes)
    return Path(real) if inside else via


def _is_dir(entry: os.DirEntry) -> bool:
    """A folder, or a link to one (what the walk would enter)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def is_utf8(name: str) -> bool:
    """False for a name with bytes that are not UTF-8 (Python holds them as surrogates)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(path: str | os.PathLike) -> str:
    """A path as text that can always be printed and stored: bytes that are not UTF-8
    appear as `\\xe9` escapes.

        >>> printable("/notes/r\udce9sum\udce9.txt")
        '/notes/r\\xe9sum\\xe9.txt'
    """
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _file_reason(path: Path, st: os.stat_result, max_bytes: int) -> str | None:
    """The skip reason a file's name and stat give, or None when it is worth reading."""
    reason = _suffix_reason(path)
    if reason:
        return reason
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size == 0:
        return "empty"
    if st.st_size > max_bytes:
        return _size_reason(st.st_size, max_bytes)
    if not os.access(path, os.R_OK):
        return "permission denied"
    return None


def _stat_error_reason(path: Path, e: OSError) -> str:
    if e.errno == errno.ELOOP:
        return "symlink loop"
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return "broken symlink" if os.path.islink(path) else "no such file or directory"
    if isinstance(e, PermissionError):
        return "permission denied"
    return f"unreadable ({e.strerror or e})"


def _suffix_reason(path: Path) -> str | None:
    if type_of(path) is not None:
        return None
    return f"unsupported type {suffix_of(path)}"


def _size_reason(size: int, limit: int) -> str:
    # Exact bytes: rounded, a file one byte over read "50 MB > 50 MB".
    return f"over size limit ({size:,} bytes > {limit:,})"


def _check_max_bytes(max_bytes: int) -> None:
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes < 1:
        raise BadInput(f"max_bytes must be a positive integer, got {max_bytes!r}")


# ---------------------------------------------------------------------------- read


def read_file(path: str | os.PathLike, max_bytes: int = DEFAULT_MAX_BYTES) -> ReadResult:
    """Read one file into documents; raise `SkipFile` (with a short `reason`) when it can't be.

        >>> read_file("notes/intro.md").documents[0].title
        'Introduction'
        >>> read_file("photo.png")
        Traceback (most recent call last):
        searchkit.errors.SkipFile: photo.png: unsupported type .png
    """
    _check_max_bytes(max_bytes)
    path = Path(os.path.abspath(os.fspath(path)))
    reason = _suffix_reason(path)
    if reason:
        raise SkipFile(path, reason)
    try:
        st = os.stat(path)
    except OSError as e:
        raise SkipFile(path, _stat_error_reason(path, e)) from None
    if not stat.S_ISREG(st.st_mode):  # never open a FIFO or a device: it could block
        raise SkipFile(path, "not a regular file")
    if st.st_size > max_bytes:
        raise SkipFile(path, _size_reason(st.st_size, max_bytes))
    resolved = path.resolve()
    reader = type_of(path).reader
    if reader == "pdf":
        if st.st_size == 0:
            raise SkipFile(path, "empty")
        return read_pdf(path, resolved)
    try:
        with open(path, "rb") as f:
            data = f.read(max_bytes + 1)  # the file may have grown since the stat
    except PermissionError:
        raise SkipFile(path, "permission denied") from None
    except OSError as e:
        raise SkipFile(path, _stat_error_reason(path, e)) from None
    if len(data) > max_bytes:
        raise SkipFile(path, _size_reason(len(data), max_bytes))

    text = decode(data, path)
    if reader == "jsonl":
        result = parse_jsonl(text, resolved)
        if not result.documents and not result.problems:
            raise SkipFile(path, "empty")
        return result
    file_lines = True  # the document is the file's text: its lines are the file's
    if reader == "html":
        (title, text), file_lines = html_to_text(text), False
    elif reader == "markdown":
        title = markdown_title(text)
    elif reader == "rst":
        title = rst_title(text)
    else:
        title = ""
    if not text.strip():
        raise SkipFile(path, "empty")
    return ReadResult([Document(resolved, "", title, text, {}, file_lines=file_lines)])


def decode(data: bytes, path: str | os.PathLike = "<bytes>") -> str:
    """A file's bytes to text with "\\n" line endings; `SkipFile` otherwise. UTF-8 (a BOM
    tolerated), or UTF-16/UTF-32 told by their byte order mark (text_stream.py).

        >>> decode(b"\\xef\\xbb\\xbfcaf\\xc3\\xa9\\r\\n")
        'café\\n'
    """
    return decode_bytes(data, path)


# ---------------------------------------------------------------------------- Markdown, rst


def markdown_title(text: str) -> str:
    """The plain text of the first level-1 heading (`# Title` or setext `===`), else ''.

    Parsed with markdown-it-py (CommonMark), so a `# comment` inside a fenced code block
    is not taken for a heading.

        >>> markdown_title("```sh\\n# not this\\n```\\n\\n# Real *title*\\n")
        'Real title'
    """
    from markdown_it import MarkdownIt  # a dependency of textual and rich

    blocks = MarkdownIt("commonmark")
    blocks.core.ruler.disable("inline")  # block structure only: cheap on big files
    tokens = blocks.parse(text)
    for i, tok in enumerate(tokens):
        if tok.type == "heading_open" and tok.tag == "h1":
            return _inline_plain_text(tokens[i + 1].content)
    return ""


def _inline_plain_text(source: str) -> str:
    from markdown_it import MarkdownIt

    parts: list[str] = []

    def visit(children):
        for child in children or ():
            if child.type in ("text", "code_inline"):
                parts.append(child.content)
            elif child.type in ("softbreak", "hardbreak"):
                parts.append(" ")
            elif child.type == "image":
                visit(child.children)  # the alt text
    for tok in MarkdownIt("commonmark").parseInline(source):
        visit(tok.children)
    return " ".join("".join(parts).split())


# A line of one repeated punctuation character: a reStructuredText section adornment.
_RST_ADORNMENT = re.compile(r"""^([!-/:-@\[-`{-~])\1{2,}\s*$""")


def rst_title(text: str) -> str:
    """The first section title of a reStructuredText text (underlined, maybe overlined), else ''.

        >>> rst_title(":orphan:\\n\\n=====\\nUsage\\n=====\\n\\nBody.\\n")
        'Usage'
    """
    lines = text.split("\n")
    for i in range(len(lines) - 1):
        title, under = lines[i].strip(), lines[i + 1].rstrip()
        if not title or _RST_ADORNMENT.match(lines[i]) or not _RST_ADORNMENT.match(under):
            continue
        if lines[i].startswith((" ", "\t")):  # an indented title only goes with an overline
            if i == 0 or lines[i - 1].rstrip() != under:
                continue
        if len(under) >= len(title):
            return title
    return ""


# ---------------------------------------------------------------------------- HTML

# Elements whose contents are never shown.
_HIDDEN = frozenset({"script", "style", "head", "template", "noscript", "title"})
# Elements allowed inside <head>; any other start tag closes an unclosed <head>, as browsers do.
_HEAD_CONTENT = frozenset("title meta link style script base noscript template".split())
# Elements that start a paragraph (blank line around them) or a line.
_PARAGRAPH = frozenset(
    "p h1 h2 h3 h4 h5 h6 blockquote pre ul ol dl table section article header footer "
    "nav aside main figure form fieldset address details hr".split()
)
_LINE = frozenset("br div li dt dd tr caption figcaption summary option legend".split())
_CELL = frozenset({"td", "th"})
_BREAK_RANK = {"": 0, " ": 1, "\n": 2, "\n\n": 3}


class _TextExtractor(HTMLParser):
    """Collects visible text and the `<title>`; entities are decoded by HTMLParser itself."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title_parts: list[str] = []
        self.hidden: list[str] = []  # stack of open hidden elements
        self.in_title = False
        self.title_done = False
        self.pre = 0
        self.pending = ""  # the strongest break asked for since the last text: "", " ", "\n"...

    def handle_starttag(self, tag, attrs):
        if "head" in self.hidden and tag not in _HEAD_CONTENT:
            self.hidden = [t for t in self.hidden if t != "head"]  # an unclosed <head> ends here
        if tag in _HIDDEN:
            if tag == "title" and not self.title_done:
                self.in_title = True
            self.hidden.append(tag)
            return
        self._break(tag)
        if tag == "pre":
            self.pre += 1

    def handle_startendtag(self, tag, attrs):
        if tag not in _HIDDEN:
            self._break(tag)

    def handle_endtag(self, tag):
        if tag in _HIDDEN:
            if tag in self.hidden:  # close it and anything left open inside it
                del self.hidden[len(self.hidden) - 1 - self.hidden[::-1].index(tag) :]
            if tag == "title" and self.in_title:
                self.in_title = False
                self.title_done = True
            return
        if tag == "pre" and self.pre:
            self.pre -= 1
        self._break(tag)

    def handle_data(self, data):
        if self.in_title:
            self.title_parts.append(data)
            return
        if self.hidden:
            return
        if not self.pre:
            data = re.sub(r"\s+", " ", data)  # outside <pre>, line breaks are just spaces
        if data.strip() and self.pending:
            self.parts.append(self.pending)
            self.pending = ""
        self.parts.append(data)

    def _break(self, tag):
        """Breaks between blocks do not add up: "</li><li>" is one line break, not two."""
        if self.hidden:
            return
        if tag in _PARAGRAPH or (tag == "br" and self.pending == "\n"):  # <br><br>
            brk = "\n\n"
        elif tag in _LINE:
            brk = "\n"
        elif tag in _CELL:
            brk = " "
        else:
            return
        if _BREAK_RANK[brk] > _BREAK_RANK[self.pending]:
            self.pending = brk


def html_to_text(html: str) -> tuple[str, str]:
    """`(title, visible text)` of an HTML page: no script/style/head, block elements as
    line breaks (paragraph-like ones as blank lines), whitespace tidied, entities decoded.

        >>> html_to_text("<title>T</title><p>a&amp;b<script>x()</script></p><p>c</p>")
        ('T', 'a&b\\n\\nc')
    """
    parser = _TextExtractor()
    parser.feed(html)
    parser.close()
    lines = (" ".join(line.split()) for line in "".join(parser.parts).split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()
    title = " ".join("".join(parser.title_parts).split())
    return title, text


# ---------------------------------------------------------------------------- JSONL

_SCALARS = (str, int, float, bool)


def parse_jsonl(text: str, path: str | os.PathLike) -> ReadResult:
    """One document per JSON Lines record: `text` required, `title` and `_id` optional.

    Document text is `title + "\\n\\n" + text` when a title is there. Other scalar fields go
    to `meta`. Blank lines are ignored; bad records are left out with a one-line problem
    naming the file and the 1-based line number.

        >>> r = parse_jsonl('{"_id": "a", "text": "x", "year": 2020}\\n{"text": 3}\\n', "n.jsonl")
        >>> r.documents[0].key, r.documents[0].meta, r.problems
        ('a', {'year': 2020}, ['n.jsonl line 2: "text" is not a string'])
    """
    path = Path(path)
    documents: list[Document] = []
    problems: list[str] = []
    first_line: dict[str, int] = {}
    # split("\n"), not splitlines(): U+2028 and friends may sit raw inside JSON strings.
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        where = f"{path.name} line {n}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            problems.append(f"{where}: not valid JSON")
            continue
        if not isinstance(record, dict):
            problems.append(f"{where}: not a JSON object")
            continue
        # JSON can escape half a surrogate pair ("\udce9"): valid JSON, but not text that can
        # be tokenized or stored as UTF-8.
        if "\\ud" in line.lower() and not is_utf8(json.dumps(record, ensure_ascii=False)):
            problems.append(f"{where}: a string holds a lone surrogate escape (not valid Unicode)")
            continue
        if "text" not in record:
            problems.append(f'{where}: no "text" field')
            continue
        body = record["text"]
        if not isinstance(body, str):
            problems.append(f'{where}: "text" is not a string')
            continue
        title = record.get("title")
        title = "" if title is None else str(title).strip()
        full = f"{title}\n\n{body}" if title else body
        if not full.strip():
            problems.append(f'{where}: empty "text"')
            continue
        raw_id = record.get("_id")
        key = f"line-{n}" if raw_id is None or raw_id == "" else str(raw_id)
        if key in first_line:
            problems.append(f"{where}: duplicate _id {key!r} (first on line {first_line[key]})")
            continue
        first_line[key] = n
        meta = {
            k: v
            for k, v in record.items()
            if k not in ("text", "title", "_id") and (v is None or isinstance(v, _SCALARS))
        }
        documents.append(Document(path, key, title, full, meta, line=n))
    return ReadResult(documents, problems)

