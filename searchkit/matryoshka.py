"""Matryoshka dimensions: a model trained so that the first N values of its vector, renormalised,
are a good vector on their own. `Encoder(dim=N)` keeps those N (truncate, then L2-normalise,
as sentence-transformers' `truncate_dim` with `normalize_embeddings=True` does).

Where a folder lists the dimensions it was trained for, they are offered: the key
`matryoshka_dims` (or `matryoshka_dimensions`) in `config_sentence_transformers.json`,
`config.json`, or the YAML front matter of the model card `README.md`.
"""

from __future__ import annotations

from pathlib import Path

from .errors import bad_value
from .model_files import read_json

KEYS = ("matryoshka_dims", "matryoshka_dimensions")


def _front_matter(readme: Path) -> dict:
    """The model card's YAML header (between the leading `---` lines), or {} without one."""
    try:
        text = readme.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return {}
    if not text.startswith("---"):
        return {}
    end = text.find("\n---", 3)
    if end < 0:
        return {}
    try:
        import yaml
    except ImportError:  # PyYAML is not a dependency: without it the card is not read
        return {}
    try:
        data = yaml.safe_load(text[3:end])
    except yaml.YAMLError:
        return {}
    return data if isinstance(data, dict) else {}


def _json(path: Path) -> dict:
    """The file's JSON object; {} when it is missing or holds another JSON value (a file that
    cannot be read is a ModelLoadError naming it, as everywhere else)."""
    data = read_json(path)
    return data if isinstance(data, dict) else {}


def matryoshka_dims(model_dir: Path) -> list[int]:
    """The dimensions the folder says its model was trained for, ascending ([] if none).

    >>> matryoshka_dims(Path("nomic-embed-text-v1.5"))
    [64, 128, 256, 512, 768]
    """
    model_dir = Path(model_dir)
    sources = [_json(model_dir / "config_sentence_transformers.json"), _json(model_dir / "config.json"),
               _front_matter(model_dir / "README.md")]
    for source in sources:
        for key in KEYS:
            dims = source.get(key)
            if isinstance(dims, list) and dims and all(isinstance(d, int) and d > 0 for d in dims):
                return sorted(set(dims))
    return []


def check_dim(dim, full: int, offered: list[int]) -> int | None:
    """`dim` checked against the model's `full` dimension: None when it keeps them all.
    Refuses, naming the value, anything but a whole number from 1 to `full`."""
    trained = f" (trained for {', '.join(map(str, offered))})" if offered else ""
    if isinstance(dim, bool) or not isinstance(dim, int) or not 1 <= dim <= full:
        raise bad_value("dim", dim, f"must be a whole number from 1 to {full}, this model's dimension{trained}")
    return None if dim == full else dim
