"""Our encoders, one architecture per module, chosen by config.json's `model_type`.

Each architecture module provides `Config` (a dataclass with `from_hf_config(dict)`),
`Model` (an nn.Module whose forward returns every hidden state as a list, numbered
as `transformers` numbers `hidden_states`; its class attribute `default_pooling` is the
pooling used when a folder declares none) and `convert_checkpoint(state, config)`
(the one table that maps checkpoint keys to ours).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import torch

from ..errors import ModelLoadError
from . import int8 as int8_ops
from .layers import positions_from_mask
from .linear import Dense, limit_packing, linear_path
from .loading import load_strict, read_config, read_weights, weight_files

# What other parts of searchkit may use of the models' helpers (linear.py, layers.py and
# loading.py are for the architectures): how the linear layers run on a device and dtype,
# the position ids of a padded batch, and reading a checkpoint folder.
__all__ = ["ARCHITECTURES", "architecture", "linear_path", "load_model", "positions_from_mask", "read_config",
           "read_weights", "weight_files"]

# model_type -> module name. Derivatives that share BERT's layout map to it.
ARCHITECTURES = {
    "bert": "bert",
    "modernbert": "modernbert",
    "gpt2": "gpt2",
    "xlm-roberta": "xlm_roberta",
    "roberta": "xlm_roberta",  # the same layout and position offset
    "qwen3": "qwen3",
}


def architecture(cfg: dict, source: str = "config.json") -> ModuleType:
    """The module implementing `cfg['model_type']`."""
    model_type = cfg.get("model_type")
    if model_type not in ARCHITECTURES:
        known = ", ".join(sorted(ARCHITECTURES))
        raise ModelLoadError(f"{source}: model_type {model_type!r} is not supported (supported: {known})")
    return importlib.import_module(f"{__name__}.{ARCHITECTURES[model_type]}")


def load_model(
    model_dir: str | Path,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    int8: bool = False,
    calibration: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> torch.nn.Module:
    """Build our model for the checkpoint in `model_dir` and load its weights strictly.
    `int8`: its projections (every `Dense`) run with int8 operands (models/int8.py);
    `calibration` (input_ids, attention_mask) is run through the fp32 model first to find
    each projection's loud input channels, which then stay fp32 (the Encoder passes it).

    >>> model = load_model("path/to/all-MiniLM-L6-v2")
    >>> hidden = model(input_ids, attention_mask)   # list of (B, T, C), embeddings first
    """
    cfg = read_config(model_dir)
    arch = architecture(cfg, source=str(Path(model_dir) / "config.json"))
    config = arch.Config.from_hf_config(cfg)
    with torch.device("meta"):
        model = arch.Model(config)
    state = arch.convert_checkpoint(read_weights(model_dir), config)
    state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    load_strict(model, state, source=str(model_dir))
    model = model.to(device).eval().requires_grad_(False)
    limit_packing(model)  # no second, packed copy of a large model's weights
    if int8:
        absmax = {}
        if calibration is not None:
            ids, mask = (t.to(device) for t in calibration)
            with torch.inference_mode():
                absmax = int8_ops.calibrate(model, lambda: model(ids, mask), Dense)
        for module in model.modules():
            if isinstance(module, Dense):
                module.quantize_int8(absmax.get(module))
    return model
