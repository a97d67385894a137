"""Where a picture (a parity plot, a corpus map) may be written, checked before the work,
and the writing itself, which replaces an existing picture only once the new one is whole."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import secrets
from pathlib import Path

from .errors import BadInput, MissingDependency


def check_image_path(path: str | Path, what: str) -> Path:
    """Fail now, in one line starting with `what` ("plot", "map"), where saving a matplotlib
    figure to `path` would fail after seconds of work: the path a folder, its folder missing
    or not writable, a read-only file, matplotlib absent, or a suffix it writes no format for.

    >>> check_image_path("map.png", "map")
    PosixPath('map.png')
    """
    path = Path(path).expanduser()
    folder = path.parent
    if path.is_dir():
        raise BadInput(f"{what} {path}: is a folder, not a file name")
    if not folder.is_dir():
        raise BadInput(f"{what} {path}: the folder {folder} {'is not a folder' if folder.exists() else 'does not exist'}")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise BadInput(f"{what} {path}: not writable (permission denied)")
    if importlib.util.find_spec("matplotlib") is None:
        raise MissingDependency(f"a {what} needs matplotlib: pip install matplotlib")
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    if path.suffix.lower().lstrip(".") not in formats:
        others = ", .".join(f for f in sorted(formats) if f != "png")
        raise BadInput(f"{what} {path}: expected a .png file name (or .{others})")
    return path


def save_figure(fig, path: Path, what: str, dpi: int) -> None:
    """Write a matplotlib figure to `path` (its format from the suffix) through a temporary
    file beside it, renamed over `path` once written: a failure half-way (a full disk, an
    interrupt) leaves an earlier picture at `path` as it was, and no partial file."""
    # A name of our own opened exclusively, not mkstemp: its 0600 would outlive the rename,
    # where a picture should get the umask's permissions as any new file does.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.partial")
    try:
        with open(tmp, "xb") as fh:
            fig.savefig(fh, format=path.suffix.lower().lstrip("."), dpi=dpi)
        os.replace(tmp, path)
    except OSError as exc:
        raise BadInput(f"{what} {path}: cannot write ({exc.strerror or exc})") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
