"""Pooling: a table from a name to the function that turns token states into one vector.

Every function takes
    hidden (B, T, C) float  the token states of one batch,
    mask   (B, T)    0/1    the tokens to pool: the attention mask, less the prompt's tokens
                            when the model's pooling config excludes them (`include_prompt`),
    start  (B,)      long   each row's first real position (> 0 under left padding),
and returns (B, C). A row's result depends on its own tokens only, so a text's vector is the
same alone and in any batch, under left or right padding.

The modes are sentence-transformers' own (`1_Pooling/config.json`, whose `pooling_mode_*`
keys name them); several modes are concatenated in the order given, as it does.

>>> pool_modes("cls+mean")
('cls', 'mean')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from .errors import ModelLoadError, bad_value
from .model_files import read_json, read_json_object

PoolFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _first(mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's first pooled token (argmax returns the first of equal maxima)."""
    return mask.to(torch.int32).argmax(1)


def _last(mask: torch.Tensor) -> torch.Tensor:
    """Index of each row's last pooled token, wherever the padding is."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    return (positions * mask.to(positions.dtype)).argmax(1)


def _gather(hidden: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), index]  # (B, C)


def cls_pool(hidden: torch.Tensor, mask: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """The first pooled token ([CLS] for BERT; the first after the prompt when it is excluded)."""
    return _gather(hidden, _first(mask))


def lasttoken_pool(hidden: torch.Tensor, mask: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """The last real token: the last position under left padding, the row's length - 1 under
    right padding (decoder embedders such as Qwen3-Embedding, which end texts with EOS)."""
    return _gather(hidden, _last(mask))


def max_pool(hidden: torch.Tensor, mask: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """The largest value of each channel over the pooled tokens."""
    return hidden.masked_fill(mask.unsqueeze(-1) == 0, float("-inf")).max(1).values


def _sum_count(hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    m = mask.to(hidden.dtype).unsqueeze(-1)  # (B, T, 1)
    return (hidden * m).sum(1), m.sum(1).clamp(min=1e-9)


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """The mean over the pooled tokens; padding counts for nothing."""
    total, count = _sum_count(hidden, mask)
    return total / count


def mean_sqrt_len_pool(hidden: torch.Tensor, mask: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """The sum over the pooled tokens divided by the square root of their number."""
    total, count = _sum_count(hidden, mask)
    return total / count.sqrt()


def weightedmean_pool(hidden: torch.Tensor, mask: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
    """A mean weighted by position (1 for the first real token, 2 for the next, ...), so later
    tokens weigh more: counted from the row's own start, so left padding shifts nothing, and
    tokens left out of the pool (an excluded prompt) keep their place in the count."""
    positions = torch.arange(1, hidden.shape[1] + 1, device=hidden.device, dtype=hidden.dtype)
    weights = (positions.unsqueeze(0) - start.to(hidden.dtype).unsqueeze(1)) * mask.to(hidden.dtype)  # (B, T)
    total = (hidden * weights.unsqueeze(-1)).sum(1)
    return total / weights.sum(1, keepdim=True).clamp(min=1e-9)


POOLINGS: dict[str, PoolFn] = {
    "mean": mean_pool,
    "cls": cls_pool,
    "max": max_pool,
    "lasttoken": lasttoken_pool,
    "mean_sqrt_len_tokens": mean_sqrt_len_pool,
    "weightedmean": weightedmean_pool,
}

# sentence-transformers' config keys, in the order it concatenates the modes they switch on.
CONFIG_KEYS = {
    "pooling_mode_cls_token": "cls",
    "pooling_mode_max_tokens": "max",
    "pooling_mode_mean_tokens": "mean",
    "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
    "pooling_mode_weightedmean_tokens": "weightedmean",
    "pooling_mode_lasttoken": "lasttoken",
}

JOIN = "+"  # "cls+mean": both, concatenated


def pool_modes(name: str) -> tuple[str, ...]:
    """The modes a pooling name stands for, checked: "mean" or several joined by "+".

    >>> pool_modes("MEAN")
    ('mean',)
    """
    if not isinstance(name, str) or not name.strip():
        raise bad_value("pooling", name, f"expected one of {', '.join(POOLINGS)} (or several joined by {JOIN})")
    modes = tuple(part.strip().lower() for part in name.split(JOIN))
    for mode in modes:
        if mode not in POOLINGS:
            raise bad_value("pooling", name, f"expected one of {', '.join(POOLINGS)} (or several joined by {JOIN})")
    if len(set(modes)) != len(modes):
        raise bad_value("pooling", name, "names a mode twice")
    return modes


def pool(hidden: torch.Tensor, attention_mask: torch.Tensor, modes: tuple[str, ...],
         prompt_tokens: int = 0) -> torch.Tensor:
    """(B, T, C) -> (B, C × len(modes)). `prompt_tokens`: how many tokens at each row's start
    (after any left padding) to leave out of the pool, for models whose pooling config says
    `include_prompt: false`; 0 pools every real token."""
    mask = attention_mask.to(hidden.device)
    start = _first(mask)
    if prompt_tokens:
        positions = torch.arange(mask.shape[1], device=mask.device).unsqueeze(0)
        mask = mask * (positions >= (start + prompt_tokens).unsqueeze(1)).to(mask.dtype)
    parts = [POOLINGS[mode](hidden, mask, start) for mode in modes]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


@dataclass(frozen=True)
class PoolingConfig:
    """What a sentence-transformers folder declares about pooling (None: it declares nothing)."""

    name: str | None = None  # e.g. "mean", "cls+mean"
    include_prompt: bool = True  # False: prompt tokens are left out of the pool (INSTRUCTOR-style)
    path: Path | None = None  # the config file read


def pooling_config_path(model_dir: Path) -> Path:
    """The Pooling module's config.json: where modules.json says it lives, else 1_Pooling/."""
    entries = read_json(model_dir / "modules.json")  # a list of modules; {} without the file
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and str(entry.get("type", "")).endswith("Pooling"):
            return model_dir / str(entry.get("path") or "") / "config.json"
    return model_dir / "1_Pooling" / "config.json"


def read_pooling_config(model_dir: Path) -> PoolingConfig:
    """The pooling a sentence-transformers folder declares: every `pooling_mode_*` key (true
    ones concatenated in sentence-transformers' order), or the newer `pooling_mode` (a name or
    a list). A true key this searchkit does not know is refused by name, not ignored."""
    path = pooling_config_path(Path(model_dir))
    if not path.is_file():
        return PoolingConfig()
    cfg = read_json_object(path)
    include_prompt = bool(cfg.get("include_prompt", True))
    declared = cfg.get("pooling_mode")
    if declared is not None:
        modes = [declared] if isinstance(declared, str) else list(declared)
    else:
        unknown = [k for k, v in cfg.items() if k.startswith("pooling_mode_") and v and k not in CONFIG_KEYS]
        if unknown:
            raise ModelLoadError(f"{path}: unknown pooling {', '.join(unknown)} (searchkit pools with "
                                 f"{', '.join(CONFIG_KEYS)})")
        modes = [mode for key, mode in CONFIG_KEYS.items() if cfg.get(key)]
    if not modes:
        return PoolingConfig(None, include_prompt, path)
    bad = [m for m in modes if not isinstance(m, str) or m.lower() not in POOLINGS]
    if bad:
        raise ModelLoadError(f"{path}: unknown pooling mode {', '.join(map(repr, bad))} "
                             f"(searchkit knows {', '.join(POOLINGS)})")
    return PoolingConfig(JOIN.join(m.lower() for m in modes), include_prompt, path)


def chosen_pooling(model_dir: Path, asked: str | None, fallback: str) -> PoolingConfig:
    """The pooling an encoder uses, from one read of the folder's pooling config: `asked`
    when given, else the folder's, else `fallback` (the model class's `default_pooling`).
    An `asked` pooling gets past a config this searchkit cannot read: the config then
    decides nothing, and prompt tokens are pooled (`include_prompt` True)."""
    if asked is None:
        declared = read_pooling_config(Path(model_dir))
        return declared if declared.name else replace(declared, name=fallback)
    try:
        declared = read_pooling_config(Path(model_dir))
    except ModelLoadError:
        declared = PoolingConfig()
    return replace(declared, name=asked)


def default_pooling(model_dir: Path, fallback: str = "mean") -> str:
    """The pooling a sentence-transformers folder declares, else `fallback` (the model
    class's `default_pooling`: "mean", or "lasttoken" for a decoder embedder)."""
    return chosen_pooling(model_dir, None, fallback).name
