"""An index folder on disk: its file names, the one-writer lock, and the atomic swap
that `--rebuild` uses to replace a whole index at once."""

from __future__ import annotations

import ctypes
import errno
import fcntl
import os
import re
import shutil
from pathlib import Path

from ..errors import BadInput, DiskFull, IndexLocked, ReadOnlyIndex
from .vectors import fsync_dir

CATALOG_FILE = "catalog.db"
LOCK_FILE = "write.lock"


# Exactly the names an index writes in its folder. Sweeps, --rebuild and the walk of a
# folder indexed into itself touch these and nothing else: a user's `vectors.md` or
# `catalog.db.bak` beside them is the user's.
_VECTORS_NAME = re.compile(r"(vectors|segment)\.(\d{6,})\.faiss(\.tmp)?")
_CATALOG_NAME = re.compile(re.escape(CATALOG_FILE) + r"(\.new)?(-wal|-shm|-journal)?")


def is_index_file(name: str) -> bool:
    """True for the names the index itself writes (catalog, its WAL, lock, vectors files)."""
    return name == LOCK_FILE or bool(_CATALOG_NAME.fullmatch(name) or _VECTORS_NAME.fullmatch(name))


def vectors_path(folder: Path, generation: int) -> Path:
    return folder / f"vectors.{generation:06d}.faiss"


def stale_files(folder: Path, keep: set[str]) -> list[Path]:
    """What a crash can leave in `folder`: vectors and segment files the catalog does not
    list (`keep` holds those it does), temporary ones, a catalog being created
    (`catalog.db.new` and its WAL)."""
    out = []
    for entry in os.scandir(folder):
        catalog = _CATALOG_NAME.fullmatch(entry.name)
        if (_VECTORS_NAME.fullmatch(entry.name) and entry.name not in keep) or (catalog and catalog.group(1)):
            out.append(Path(entry.path))
    return out


def remove_folder(folder: Path) -> None:
    """Remove a staging folder of --rebuild: a hidden sibling that is an index folder (it has
    a write.lock) or empty; anything else by that name is not ours to delete."""
    if folder.is_dir() and not folder.is_symlink():
        if (folder / LOCK_FILE).exists() or not any(folder.iterdir()):
            shutil.rmtree(folder)


def carry_over(folder: Path, staging: Path) -> None:
    """Give the new index folder the old one's other entries (a README): hard links, else copies,
    so that until the swap the originals stay where they are."""
    for entry in os.scandir(folder):
        if is_index_file(entry.name):
            continue
        target = staging / entry.name
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), target)
        elif entry.is_dir():
            shutil.copytree(entry.path, target, symlinks=True)
        else:
            try:
                os.link(entry.path, target)
            except OSError:
                shutil.copy2(entry.path, target)


_RENAME_EXCHANGE = 2  # linux/fs.h
_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> None:
    """Swap folders `a` and `b` in one atomic step: renameat2(RENAME_EXCHANGE) on Linux.
    Where that is missing, three renames: a crash between the first two leaves `b` absent,
    its old contents in `b.old` (to move back by hand); the lock keeps other writers out."""
    rename2 = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if rename2 is not None:
        if rename2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
            fsync_dir(b.parent)
            return
        err = ctypes.get_errno()
        if err not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(err, os.strerror(err), str(b))
    aside = b.with_name(b.name + ".old")
    os.rename(b, aside)
    os.rename(a, b)
    os.rename(aside, a)
    fsync_dir(b.parent)


def folder_error(folder: Path, exc: OSError) -> Exception:
    """The one-line error for an OSError met while writing an index folder (a full disk, a
    read-only folder); any other OSError is returned as it is."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DiskFull(f"disk full while writing {exc.filename or folder}; free some space and run the command again")
    if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return ReadOnlyIndex(f"{folder}: read-only ({exc.strerror}); searches work, writing to it needs write access")
    return exc


def make_folder(folder: Path) -> None:
    """Create an index folder and its parents. Where that cannot be done, one line naming the
    folder and why (a file in the way, a symlink loop, a folder the system makes), not an OSError."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return
    except FileExistsError:  # something else by that name, or a link that leads nowhere
        try:
            os.stat(folder)
            why = "it exists and is not a folder"
        except OSError as exc:
            why = _why_not(folder, exc)
    except OSError as exc:
        error = folder_error(folder, exc)  # a full disk, a read-only folder
        if error is not exc:
            raise error from None
        why = _why_not(folder, exc)
    raise BadInput(f"{folder}: cannot be an index folder ({why})")


def _why_not(folder: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop"
    if exc.errno == errno.ENOTDIR:  # name the file that stands where a folder must be
        blocking = next((p for p in folder.parents if os.path.lexists(p) and not p.is_dir()), None)
        return f"{blocking} is not a folder" if blocking else "a part of the path is not a folder"
    if exc.errno == errno.ENOENT and os.path.islink(folder):
        return "a symlink to nothing"
    return f"cannot create it: {exc.strerror}"


class FolderLock:
    """One writer per index folder (an advisory lock on a file inside it). `purpose`: the
    command that writes (`ingest`, `verify --repair`), kept in the file for the message a
    second writer gets."""

    def __init__(self, folder: Path, purpose: str = "ingest"):
        self.folder = folder
        self.purpose = purpose
        self.fh = None

    def __enter__(self):
        make_folder(self.folder)
        try:
            self.fh = open(self.folder / LOCK_FILE, "a+")
        except OSError as exc:
            raise folder_error(self.folder, exc) from None
        try:
            fcntl.flock(self.fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.fh.seek(0)
            holder = self.fh.read().strip()
            self.fh.close()
            if not holder or holder.startswith("pid "):  # written by a searchkit from before purposes
                holder = f"another process ({holder})" if holder else "another process"
            raise IndexLocked(f"{self.folder}: {holder} is writing to this index; try again when it ends") from None
        try:  # who holds it, for the message above (a full disk must not keep the lock)
            self.fh.seek(0)
            self.fh.truncate()
            self.fh.write(f"searchkit {self.purpose} (pid {os.getpid()})")
            self.fh.flush()
        except OSError as exc:
            self.__exit__()
            raise folder_error(self.folder, exc) from None
        return self

    def __exit__(self, *exc):
        fcntl.flock(self.fh, fcntl.LOCK_UN)
        self.fh.close()
