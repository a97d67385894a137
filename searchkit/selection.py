"""Which files under a folder an ingest looks at: ignore files, --include/--exclude, hidden.

A `Selection` holds one run's choices; `Rules` applies them while `readers.walk` goes down
one given path. Every entry below a given path is judged by its path relative to that
path (`src/build`, `notes/a.md`), in this order; the first rule that speaks decides:

1. version control folders (`.git`, `.hg`, `.svn`) are never entered;
2. dot-names (`.venv`, `.cache`, `.env`) are "hidden", unless `hidden=True`;
3. with ignore files on (the default): `__pycache__`, `node_modules`, `.venv` and `.tox`
   folders, then the patterns of `.gitignore` and `.ignore` files, git's rules through
   `pathspec`'s `GitIgnoreSpec`: a file's patterns apply to paths relative to its folder, a
   deeper file overrides a shallower one, `.ignore` overrides `.gitignore` beside it, and
   `!pattern` re-includes. The ignore files of the folders above a given path count too, up
   to the enclosing git repository's top (the nearest folder above holding `.git`);
4. `--exclude GLOB` (files and folders), then `--include GLOB` (files only: when any is
   given, a file must match one), both gitignore-style patterns relative to the given path
   (`*.py` at any depth, `docs/` a folder anywhere, `/docs/*.md` anchored).

A path given to the walk itself is always taken, hidden or ignored (you asked for it).
A folder that is skipped is not entered: it is reported once, as one skip.

    >>> rules = Rules.for_root(Selection(exclude=("*.csv",)), Path("repo"))
    >>> rules.reason("data/x.csv", "x.csv", is_dir=False)
    'excluded by --exclude *.csv'
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import bad_value

__all__ = ["IGNORE_FILES", "SELECTION_REASONS", "Rules", "Selection"]

IGNORE_FILES = (".ignore", ".gitignore")  # beside each other, the first wins
VCS_DIRS = frozenset({".git", ".hg", ".svn"})
# Folders skipped with the ignore files (no repository lists them all in its .gitignore).
BUILTIN_IGNORED_DIRS = frozenset({"__pycache__", "node_modules", ".venv", ".tox"})

# Every skip reason below starts with one of these: a file skipped so was left out on
# purpose, and loses the chunks an earlier run gave it.
SELECTION_REASONS = ("version control folder", "hidden", "ignored", "excluded by --exclude",
                     "not matched by --include")


def _compile(patterns: Iterable[str], what: str):
    import pathspec

    patterns = tuple(patterns)
    for p in patterns:
        if not isinstance(p, str) or not p.strip():
            raise bad_value(what, p, "expected a non-empty glob pattern")
    try:
        return pathspec.GitIgnoreSpec.from_lines(patterns) if patterns else None
    except Exception as exc:  # pathspec's pattern errors
        raise bad_value(what, list(patterns), f"not a valid pattern ({exc})") from None


@dataclass(frozen=True)
class Selection:
    """One ingest's selection options (see the module docstring).

        >>> Selection(include=("*.py", "*.md"), exclude=("tests/",), ignore_files=True, hidden=False)
    """

    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    ignore_files: bool = True  # read .gitignore/.ignore and skip __pycache__, node_modules
    hidden: bool = False  # also walk dot-names (never .git, .hg, .svn)
    _specs: tuple = field(default=(None, None), init=False, repr=False, compare=False)

    def __post_init__(self):
        for name in ("include", "exclude"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value or ()))
        object.__setattr__(self, "_specs", (_compile(self.include, "include"), _compile(self.exclude, "exclude")))


@dataclass(frozen=True)
class _IgnoreFile:
    display: str  # the file's path as reasons show it, relative to the given path
    spec: object  # pathspec.GitIgnoreSpec
    strip: str  # this prefix (its folder below the given path, "a/b/") is taken off ...
    add: str  # ... and this one (the given path below its folder, "x/y/") put on


class Rules:
    """The selection as it stands in one folder of a walk: the ignore files met on the way
    down, deepest last."""

    def __init__(self, selection: Selection, root: Path, ignores: tuple[_IgnoreFile, ...]):
        self.selection, self.root, self.ignores = selection, root, ignores

    @classmethod
    def for_root(cls, selection: Selection | None, root: Path) -> Rules:
        """The rules for the folder `root`, given to the walk (absolute), with the ignore files
        above it up to its git repository's top, unless they would ignore `root` itself."""
        selection = selection or Selection()
        rules = cls(selection, root, ())
        if not selection.ignore_files:
            return rules
        above = _ancestor_ignores(root)
        if above:
            outer = cls(selection, root, above)
            if outer._ignored("", is_dir=True) is None:  # given explicitly: never ignored
                rules = outer
        return rules.enter(root, "")

    def enter(self, folder: Path, rel: str) -> Rules:
        """The rules inside `folder` (at `rel` below the root, "" for the root itself): these
        plus the folder's own ignore files."""
        if not self.selection.ignore_files:
            return self
        found = tuple(_read_ignore(folder / name, os.path.join(rel, name), rel + "/" if rel else "", "")
                      for name in reversed(IGNORE_FILES))  # .gitignore first, .ignore last: it wins
        found = tuple(f for f in found if f is not None)
        return Rules(self.selection, self.root, self.ignores + found) if found else self

    def reason(self, rel: str, name: str, is_dir: bool) -> str | None:
        """Why the entry `name` at `rel` (below the root, "/"-separated) is skipped, or None."""
        sel = self.selection
        if is_dir and name in VCS_DIRS:
            return "version control folder"
        if name.startswith(".") and not sel.hidden:
            return "hidden"
        if sel.ignore_files:
            if is_dir and name in BUILTIN_IGNORED_DIRS:
                return f"ignored (built-in: {name})"
            why = self._ignored(rel, is_dir)
            if why:
                return why
        include, exclude = sel._specs
        probe = rel + "/" if is_dir else rel
        if exclude is not None:
            hit = exclude.check_file(probe)
            if hit.include:
                return f"excluded by --exclude {exclude.patterns[hit.index].pattern}"
        if include is not None and not is_dir and not include.check_file(probe).include:
            return "not matched by --include"
        return None

    def _ignored(self, rel: str, is_dir: bool) -> str | None:
        for ignore in reversed(self.ignores):  # the deepest file that has a say decides
            if not rel.startswith(ignore.strip):
                continue
            path = (ignore.add + rel[len(ignore.strip):]).rstrip("/")
            if not path:
                continue
            hit = ignore.spec.check_file(path + "/" if is_dir else path)
            if hit.include is not None:
                return f"ignored by {ignore.display} ({ignore.spec.patterns[hit.index].pattern})" if hit.include else None
        return None


def _read_ignore(path: Path, display: str, strip: str, add: str) -> _IgnoreFile | None:
    """An ignore file's patterns; None when there is no such file, or it is unreadable or
    empty (an ignore file never stops an ingest)."""
    import pathspec

    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            lines = fh.read().splitlines()
    except OSError:  # none there (the usual case), a folder by that name, unreadable
        return None
    try:
        spec = pathspec.GitIgnoreSpec.from_lines(lines)
    except Exception:  # a bad pattern: keep the good lines, as git does
        good = []
        for line in lines:
            try:
                pathspec.GitIgnoreSpec.from_lines([line])
                good.append(line)
            except Exception:
                continue
        spec = pathspec.GitIgnoreSpec.from_lines(good)
    if not any(p.include is not None for p in spec.patterns):
        return None
    return _IgnoreFile(display, spec, strip, add)


def _ancestor_ignores(root: Path) -> tuple[_IgnoreFile, ...]:
    """The ignore files of the folders above `root`, outermost first, up to the top of the
    git repository holding it; none when `root` is not inside one (or is its top)."""
    if (root / ".git").exists():
        return ()
    chain: list[Path] = []
    for folder in root.parents:
        chain.append(folder)
        if (folder / ".git").exists():
            break
    else:
        return ()
    found = []
    for folder in reversed(chain):
        below = root.relative_to(folder).as_posix() + "/"
        for name in reversed(IGNORE_FILES):
            ignore = _read_ignore(folder / name, os.path.relpath(folder / name, root), "", below)
            if ignore is not None:
                found.append(ignore)
    return tuple(found)

