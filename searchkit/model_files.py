"""Reading the JSON files of a model folder (config.json, tokenizer_config.json,
modules.json, 1_Pooling/config.json, config_sentence_transformers.json, ...) in one way.

A missing optional file reads as {}; a file that is there but cannot be read or parsed is
a ModelLoadError naming it, never silently taken for an empty one.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ModelLoadError


def read_json(path: Path | str, *, required: bool = False):
    """The parsed JSON of `path` (any JSON value: callers check the shape they need).
    Missing: {} unless `required` (then ModelLoadError "not found"); unreadable or not
    JSON: ModelLoadError naming the file."""
    path = Path(path)
    if not path.is_file():
        if required:
            raise ModelLoadError(f"{path}: not found")
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise ModelLoadError(f"{path}: cannot read ({exc})") from None


def read_json_object(path: Path | str, *, required: bool = False) -> dict:
    """`read_json` for files that hold one JSON object; another value is a ModelLoadError."""
    data = read_json(path, required=required)
    if not isinstance(data, dict):
        raise ModelLoadError(f"{Path(path)}: expected a JSON object")
    return data
