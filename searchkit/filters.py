"""Metadata filters for search: a small syntax, parsed here, compiled to bound SQL.

One condition per string (the CLI's repeatable `--where`); several conditions are ANDed.

    path:GLOB              the file's path. `*` `?` `[abc]` as in SQLite GLOB (case-sensitive;
                           `*` also crosses folders). A pattern starting with `/` (or `~`,
                           `./`, `../`) is matched against the whole absolute path; any other
                           pattern against the path's end at a folder boundary, so `*.md`
                           is every Markdown file and `docs/*.md` those under a `docs` folder.
    type:NAME[,NAME...]    the file type, a name of filetypes.py's table (txt, md, rst, html,
                           jsonl, pdf, py, js, yaml, csv, text: files without a suffix, ...)
                           or any suffix of one (`markdown`, `yml`, `htm`). Several types
                           separated by commas match any of them.
    mtime>DATE             the file's modification time; also >=, <, <=. DATE is ISO 8601
                           (2024-01-01, 2024-01-01T12:30, optionally with a UTC offset; local
                           time when none) or seconds since the epoch.
    field.NAME=VALUE       a JSONL record's scalar field (not _id, title or text); also !=, >,
                           >=, <, <=. A VALUE that reads as a number, true or false compares
                           as that (and, for = and !=, as the same text); anything else as text.
                           <, <=, >, >= compare numbers only with numeric fields and text only
                           with text fields. A document without the field matches no
                           condition on it (not even !=). A VALUE may not start with
                           `=`, `<`, `>` or `!` (`field.year=>2019` is refused, not read as
                           the text ">2019"); the dict form takes any value.

    >>> compile_where(["path:*.md", "mtime>2024-01-01", "field.journal=Nature"]).sql
    'files.path GLOB ? AND files.mtime > ? AND json_extract(documents.meta, ?) = ?'

Python callers may also pass a dict, `{"path": "docs/*.md", "type": ["md", "txt"],
"mtime>": "2024-01-01", "field.year": 2020}` (key = the left side with its operator, `=`
when none; value a Python value: numbers and bools compare as such, strings as text, a
`datetime`/`date` for mtime), or a list mixing strings and such dicts.

Every value is bound as an SQL parameter; names and operators come from fixed tables, so
nothing a user types is ever pasted into SQL.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .errors import BadInput, bad_value
from .filetypes import suffixes_of, type_names

__all__ = ["Condition", "Where", "compile_where", "parse_where", "glob_escape", "WHERE_HELP"]

WHERE_HELP = "path:GLOB, type:NAME, mtime>DATE, mtime<DATE or field.NAME=VALUE"

# Operators longest first, so ">=" is not read as ">" followed by "=value".
_OPS = ("<=", ">=", "!=", "=", "<", ">")
_SQL_OPS = {"=": "=", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
# A value written after an operator may not start with one of these (`field.year=>2019`
# would compare with the text ">2019"); the operator meant, by the characters typed.
_OP_CHARS = frozenset("=<>!")
_MEANT = {frozenset(k): v for k, v in
          (("=", "="), (">=", ">="), ("<=", "<="), ("!=", "!="), ("<>", "!="), (">", ">"), ("<", "<"))}
_FIELD_NAME = re.compile(r"[\w\-.]+")
_CONDITION = re.compile(r"^\s*(path|type)\s*:(.*)$|^\s*(mtime|field\.[^\s<>=!:]+)\s*(<=|>=|!=|=|<|>)(.*)$", re.S)


@dataclass(frozen=True)
class Condition:
    """One parsed condition: `key` is path, type, mtime or field.NAME."""

    key: str
    op: str  # ':' for path and type, else one of _OPS
    value: object
    text: str  # as the user wrote it, for error messages


@dataclass(frozen=True)
class Where:
    """Conditions compiled to an SQL boolean over the `files` and `documents` tables."""

    conditions: tuple[Condition, ...]
    sql: str
    params: tuple

    def __bool__(self) -> bool:
        return bool(self.conditions)


def _bad(text: str, why: str) -> BadInput:
    return bad_value("where", text, why)


def parse_where(spec) -> list[Condition]:
    """Conditions from a string, a dict, or a list of strings and dicts (None: none).

        >>> [c.key for c in parse_where(["type:md", {"field.year>=": 2019}])]
        ['type', 'field.year']
    """
    if spec is None:
        return []
    if isinstance(spec, (str, Mapping)):
        spec = [spec]
    if not isinstance(spec, Sequence):
        raise BadInput(f"where: expected a string, a dict or a list of them, got {type(spec).__name__}")
    out: list[Condition] = []
    for item in spec:
        if isinstance(item, str):
            out.append(_parse_string(item))
        elif isinstance(item, Mapping):
            out += [_parse_pair(str(k), v) for k, v in item.items()]
        else:
            raise BadInput(f"where: expected a string or a dict, got {type(item).__name__}")
    return out


def _parse_string(text: str) -> Condition:
    m = _CONDITION.match(text)
    if not m:
        raise _bad(text, f"expected {WHERE_HELP}")
    if m.group(1):
        key, op, raw = m.group(1), ":", m.group(2).strip()
    else:
        key, op, raw = m.group(3), m.group(4), m.group(5).strip()
    if raw == "":
        raise _bad(text, "no value")
    if op != ":" and raw[0] in _OP_CHARS:
        raise _bad(text, _misspelt(key, op, raw))
    return _check(key, op, _typed(raw) if key.startswith("field.") else raw, text, from_text=True)


def _misspelt(key: str, op: str, raw: str) -> str:
    """Why `key op raw` (raw starting with an operator character) is refused, with the
    condition the user probably meant: `=>` for `>=`, `==` for `=`, `<>` for `!=`."""
    rest = raw.lstrip("".join(_OP_CHARS))
    typed = op + raw[: len(raw) - len(rest)]
    meant = _MEANT.get(frozenset(typed))
    hint = f"; did you mean {key}{meant}{rest.strip()}?" if meant and rest.strip() else ""
    return f"{typed!r} is not an operator (the value would start with {raw[0]!r}){hint}"


def _parse_pair(key: str, value) -> Condition:
    text = f"{key}: {value!r}"
    m = re.match(r"^\s*(path|type|mtime|field\.[^\s<>=!:]+)\s*(<=|>=|!=|=|<|>|:)?\s*$", key)
    if not m:
        raise _bad(text, f"expected a key like path, type, mtime> or field.NAME ({WHERE_HELP})")
    name, op = m.group(1), m.group(2)
    if name in ("path", "type"):
        if op not in (None, ":", "="):
            raise _bad(text, f"{name} takes no {op}")
        op = ":"
    else:
        op = "=" if op in (None, ":") else op
    return _check(name, op, value, text, from_text=False)


def _check(key: str, op: str, value, text: str, from_text: bool) -> Condition:
    if key == "path":
        if not isinstance(value, str) or not value.strip():
            raise _bad(text, "path needs a glob pattern")
        return Condition(key, op, value.strip(), text)
    if key == "type":
        names = value.split(",") if isinstance(value, str) else list(value)
        suffixes: list[str] = []
        for name in names:
            name = str(name).strip().lower().lstrip(".")
            found = suffixes_of(name)
            if found is None:
                raise _bad(text, f"unknown type {name!r} (searchkit reads {', '.join(type_names())})")
            suffixes += [s for s in found if s not in suffixes]
        return Condition(key, op, tuple(suffixes), text)
    if key == "mtime":
        if op in ("=", "!="):
            raise _bad(text, "mtime takes <, <=, > or >= (a date, not an instant)")
        return Condition(key, op, _timestamp(value, text), text)
    name = key[len("field."):]
    if not _FIELD_NAME.fullmatch(name):
        raise _bad(text, "a field name is letters, digits, '_', '-' and '.'")
    if isinstance(value, (dict, list, tuple, set)) or value is None:
        raise _bad(text, "a field compares with one number, bool or string")
    return Condition(key, op, value, text)


def _typed(raw: str):
    """A CLI value as the JSON scalar it reads as: int, float, bool, else the string."""
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    if re.fullmatch(r"[+-]?\d+", raw):
        return int(raw)
    try:
        number = float(raw)
    except ValueError:
        return raw
    return number if number == number and abs(number) != float("inf") else raw


def _timestamp(value, text: str) -> float:
    if isinstance(value, bool):
        raise _bad(text, "mtime needs a date or a number of seconds")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dt.datetime):
        return value.timestamp()
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day).timestamp()
    raw = str(value).strip()
    try:
        return float(raw)
    except ValueError:
        pass
    try:
        return dt.datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise _bad(text, "mtime needs an ISO date (2024-01-31, 2024-01-31T12:00) or seconds since the epoch") from None


def glob_escape(text: str) -> str:
    """`text` as a GLOB pattern matching only itself: `[`, `*` and `?` put in brackets.

        >>> glob_escape("a[1]*.md")
        'a[[]1][*].md'
    """
    return re.sub(r"([\[*?])", r"[\1]", text)


def _path_pattern(pattern: str) -> str:
    if pattern.startswith("~"):
        return os.path.expanduser(pattern)
    if pattern.startswith(("./", "../")) or pattern in (".", ".."):
        return os.path.join(os.path.abspath(os.path.dirname(pattern) or "."), os.path.basename(pattern))
    if pattern.startswith("/"):
        return pattern
    return pattern if pattern.startswith("*") else "*/" + pattern


def _sql(c: Condition) -> tuple[str, list]:
    if c.key == "path":
        return "files.path GLOB ?", [_path_pattern(c.value)]
    if c.key == "type":
        return f"files.reader IN ({','.join('?' * len(c.value))})", list(c.value)
    if c.key == "mtime":
        return f"files.mtime {_SQL_OPS[c.op]} ?", [c.value]
    # JSON path with the name quoted, so dots and dashes in it are literal.
    path = '$."' + c.key[len("field."):] + '"'
    value = c.value
    if c.op in ("=", "!=") and not isinstance(value, str):
        # 2020 matches the number 2020 and the string "2020"; true matches JSON true (1).
        alternatives = [int(value) if isinstance(value, bool) else value, str(value).lower() if isinstance(value, bool) else str(value)]
        neg = "NOT " if c.op == "!=" else ""
        return f"json_extract(documents.meta, ?) {neg}IN (?, ?)", [path, *alternatives]
    # An ordering compares like with like: a number with numeric fields, text with text
    # (SQLite would otherwise rank every text above every number).
    kinds = "('integer', 'real')" if isinstance(value, (int, float)) and not isinstance(value, bool) else "('text')"
    if isinstance(value, bool):
        kinds, value = "('true', 'false')", int(value)
    return (f"(json_type(documents.meta, ?) IN {kinds} AND json_extract(documents.meta, ?) {_SQL_OPS[c.op]} ?)",
            [path, path, value])


def compile_where(spec) -> Where:
    """Parse `spec` (see the module docstring) and compile it; an empty `Where` for None.

        >>> w = compile_where("field.journal=Nature")
        >>> w.sql, w.params
        ('json_extract(documents.meta, ?) = ?', ('$."journal"', 'Nature'))
    """
    if isinstance(spec, Where):
        return spec
    conditions = parse_where(spec)
    parts, params = [], []
    for c in conditions:
        sql, p = _sql(c)
        parts.append(sql)
        params += p
    return Where(tuple(conditions), " AND ".join(parts), tuple(params))
