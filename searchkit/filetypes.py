"""The one table of file types searchkit reads: suffix -> type name, reader, line-oriented.

Everything that needs to know about suffixes asks here: the walk (which files to read),
`readers.read_file` (which reader), `ingest` (how to chunk, what to store in
`files.reader`), and the `type:` search filter (which suffixes a type name means).

    >>> type_of("src/app.py").name, type_of("src/app.py").reader, type_of("src/app.py").lines
    ('py', 'plain', True)
    >>> type_of("photo.png") is None
    True

Readers (implemented in readers.py and pdf.py):

    plain     the file's text as it is (UTF-8, line endings normalised)
    markdown  the same, titled by the first level-1 heading
    rst       the same, titled by the first section title
    html      the visible text, titled by <title>
    jsonl     one document per JSON Lines record
    pdf       the text of every page, extracted with pypdf

`lines=True` marks line-oriented types (code, configuration, tables): their chunks end at
line ends where a line end is near enough, and the next chunk starts at a line start.

To read another suffix with an existing reader, register it before ingesting:

    >>> register(FileType("org", (".org",), "plain", lines=False))
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from .errors import BadInput

__all__ = ["FILE_TYPES", "READERS", "FileType", "register", "suffix_of", "suffixes_of", "supported_suffixes",
           "type_names", "type_of"]

READERS = ("plain", "markdown", "rst", "html", "jsonl", "pdf")


@dataclass(frozen=True)
class FileType:
    """One row of the table."""

    name: str  # what `--where type:NAME` takes (each suffix without its dot works too)
    suffixes: tuple[str, ...]  # lower case with the dot; "" is a file without a suffix
    reader: str  # one of READERS
    lines: bool  # line-oriented: chunks are cut at line ends where possible


def _code(name: str, *suffixes: str) -> FileType:
    return FileType(name, suffixes or (f".{name}",), "plain", lines=True)


# Order matters only for help texts. A suffix belongs to exactly one type.
FILE_TYPES: list[FileType] = [
    # Prose: chunks prefer sentence and paragraph ends.
    FileType("txt", (".txt",), "plain", lines=False),
    FileType("md", (".md", ".markdown"), "markdown", lines=False),
    FileType("rst", (".rst",), "rst", lines=False),
    FileType("html", (".html", ".htm"), "html", lines=False),
    FileType("jsonl", (".jsonl",), "jsonl", lines=False),
    FileType("pdf", (".pdf",), "pdf", lines=False),
    FileType("tex", (".tex",), "plain", lines=False),
    # Files without a suffix (README, LICENSE, Makefile, Dockerfile) that decode as text.
    FileType("text", ("",), "plain", lines=True),
    # Source code.
    _code("py", ".py", ".pyi"),
    _code("js", ".js", ".mjs", ".cjs", ".jsx"),
    _code("ts", ".ts", ".tsx"),
    _code("go"),
    _code("rs"),
    _code("java"),
    _code("c"),
    _code("h"),
    _code("cpp", ".cpp", ".cc", ".cxx", ".hpp"),
    _code("rb"),
    _code("sh", ".sh", ".bash"),
    _code("sql"),
    # Configuration and tables.
    _code("toml"),
    _code("yaml", ".yaml", ".yml"),
    _code("json"),
    _code("csv"),
    _code("tsv"),
    _code("ini"),
    _code("cfg"),
    # Logs: line-oriented text, often the biggest files a folder holds (ingested in parts).
    _code("log"),
]

_BY_SUFFIX: dict[str, FileType] = {}
_BY_NAME: dict[str, FileType] = {}


def register(file_type: FileType) -> None:
    """Add a type to the table (or replace the one of the same name). Its suffixes must be
    lower case, start with a dot (or be "" for no suffix), and not belong to another type.

        >>> register(FileType("kt", (".kt", ".kts"), "plain", lines=True))
    """
    if file_type.reader not in READERS:
        raise BadInput(f"file type {file_type.name!r}: unknown reader {file_type.reader!r} "
                       f"(one of {', '.join(READERS)})")
    for suffix in file_type.suffixes:
        if suffix != suffix.lower() or (suffix and not suffix.startswith(".")):
            raise BadInput(f"file type {file_type.name!r}: suffix {suffix!r} must be lower case and start with '.'")
        owner = _BY_SUFFIX.get(suffix)
        if owner is not None and owner.name != file_type.name:
            raise BadInput(f"file type {file_type.name!r}: suffix {suffix!r} already belongs to {owner.name!r}")
    old = _BY_NAME.pop(file_type.name, None)
    if old is not None:
        FILE_TYPES.remove(old)
        for suffix in old.suffixes:
            _BY_SUFFIX.pop(suffix, None)
    if file_type not in FILE_TYPES:
        FILE_TYPES.append(file_type)
    _BY_NAME[file_type.name] = file_type
    for suffix in file_type.suffixes:
        _BY_SUFFIX[suffix] = file_type


for _type in list(FILE_TYPES):
    register(_type)


def suffix_of(path: str | os.PathLike) -> str:
    """The lower-case suffix the table is keyed by ("" for `Makefile`)."""
    return os.path.splitext(os.fspath(path))[1].lower()


def type_of(path: str | os.PathLike) -> FileType | None:
    """The type of a file by its name, or None when searchkit does not read it."""
    return _BY_SUFFIX.get(suffix_of(path))


def supported_suffixes() -> frozenset[str]:
    """Every suffix in the table ("" included: files without one)."""
    return frozenset(_BY_SUFFIX)


def type_names() -> list[str]:
    """The type names, in table order (what `type:` takes, besides bare suffixes)."""
    return [t.name for t in FILE_TYPES]


def suffixes_of(name: str) -> tuple[str, ...] | None:
    """The suffixes a `type:` name means: a type's name or any of its suffixes without the
    dot (`yml` is the yaml type). None when it names no type.

        >>> suffixes_of("yml")
        ('.yaml', '.yml')
    """
    name = name.strip().lower().lstrip(".")
    found = _BY_NAME.get(name) or (_BY_SUFFIX.get("." + name) if name else None)
    return found.suffixes if found else None
