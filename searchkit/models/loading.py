"""From a checkpoint folder to loaded weights: config.json and its fields, the safetensors
files, regex key renames (each architecture's `convert_checkpoint` holds its own table) and
a strict load that names every missing, unexpected or misshapen weight.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from ..errors import ModelLoadError
from ..model_files import read_json_object


def read_config(model_dir: str | Path) -> dict:
    """The parsed config.json of a checkpoint folder."""
    return read_json_object(Path(model_dir) / "config.json", required=True)


def weight_files(model_dir: str | Path) -> list[Path]:
    """The safetensors files of a checkpoint (single file or shards). Pickles are never read."""
    model_dir = Path(model_dir)
    files = sorted(model_dir.glob("*.safetensors"))
    if not files:
        pickles = [p.name for p in model_dir.glob("*.bin")] + [p.name for p in model_dir.glob("*.pt")]
        hint = f" (found {', '.join(pickles)}: pickled weights are never loaded; convert to safetensors)" if pickles else ""
        raise ModelLoadError(f"{model_dir}: no .safetensors weights{hint}")
    return files


def read_weights(model_dir: str | Path) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for path in weight_files(model_dir):
        try:
            state.update(load_file(str(path)))
        except (SafetensorError, OSError, ValueError) as exc:
            raise ModelLoadError(f"{path}: cannot read safetensors ({exc})") from None
    return state


def rename_keys(
    state: Mapping[str, torch.Tensor],
    renames: Iterable[tuple[str, str]],
    drop: Iterable[str] = (),
) -> dict[str, torch.Tensor]:
    """Apply regex renames (in order) to checkpoint keys and drop keys matching `drop`."""
    renames = [(re.compile(p), r) for p, r in renames]
    drop = [re.compile(p) for p in drop]
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if any(d.search(key) for d in drop):
            continue
        for pattern, repl in renames:
            key = pattern.sub(repl, key)
        out[key] = value
    return out


def load_strict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """load_state_dict(strict=True), but failing with names: missing, unexpected, misshapen."""
    own = module.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    misshapen = [
        f"{k} {tuple(state[k].shape)} != {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    problems = []
    if missing:
        problems.append(f"missing weights {_first(missing)}")
    if unexpected:
        problems.append(f"unexpected weights {_first(unexpected)}")
    if misshapen:
        problems.append(f"wrong shapes {_first(misshapen)}")
    if problems:
        raise ModelLoadError(f"{source}: " + "; ".join(problems))
    module.load_state_dict(state, strict=True, assign=True)


def _first(names: list[str], n: int = 4) -> str:
    more = f" (+{len(names) - n} more)" if len(names) > n else ""
    return ", ".join(names[:n]) + more


def require(cfg: Mapping, *keys: str, source: str = "config.json"):
    """The first of `keys` present in `cfg` (configs spell the same field differently)."""
    for key in keys:
        if key in cfg and cfg[key] is not None:
            return cfg[key]
    raise ModelLoadError(f"{source}: missing {' / '.join(keys)}")


def check_heads(hidden: int, heads: int, source: str = "config.json") -> int:
    """Head size, after checking that heads divide the hidden size."""
    if heads <= 0 or hidden % heads:
        raise ModelLoadError(f"{source}: hidden size {hidden} is not divisible by {heads} heads")
    return hidden // heads
