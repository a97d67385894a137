"""Where a picture (a parity plot, a corpus map) may be written, checked before the work."""

from __future__ import annotations

import importlib.util
import os
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
