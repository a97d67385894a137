"""`Dense`, the linear layer every projection of every architecture uses, and how it runs.

On the CPU one oneDNN call does the matmul, bias and activation or residual add, against a
packed copy of the weight; elsewhere (or with SEARCHKIT_ONEDNN=0) it is plain F.linear, and
after `quantize_int8` it runs with int8 operands (models/int8.py). `linear_path` reports which.
These speed tricks live here so that each model file stays a plain top-to-bottom read.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.nn.functional as F
from torch import nn

from . import int8
from .layers import activation

# Activations oneDNN can apply inside its matmul: config name -> (attr, algorithm).
ONEDNN_ACTIVATIONS = {
    "gelu": ("gelu", "none"),  # erf
    "gelu_new": ("gelu", "tanh"),
    "gelu_pytorch_tanh": ("gelu", "tanh"),
    "gelu_fast": ("gelu", "tanh"),
    "relu": ("relu", ""),
}
# Rows per call that the packed weight layout is tuned for; any row count works. On
# MiniLM's projections hints of 21, 64 and 2048 ran within 10% of each other from 21 to
# 2048 rows; a hint of 1 was the slowest fp32 layout at 21 rows (6.5 ms against 3.8).
PACK_ROWS_HINT = 64
# A packed weight is a second copy of it. Models whose projections weigh more than this keep
# one copy and give the plain weight to the same fused call. Measured at Qwen3-0.6B's shapes
# (one layer's 7 projections, 1024 wide, 16 q / 8 kv heads of 128, MLP 3072; 2-core AMD EPYC
# with AVX-512 BF16, best of 15 / 3, /tmp script, not a test), F.linear / fused plain / fused
# packed: 20 rows fp32 8.5 / 5.6 / 4.6 ms, bf16 3.6 / 3.5 / 2.4 ms; 2048 rows fp32 350 / 315 /
# 310 ms, bf16 322 / 315 / 325 ms. So packing saves about 1 ms per layer on a query and
# nothing on a batch, for a copy of 1.8 GB (fp32) of projection weights: not worth it there.
# Below the limit are MiniLM (42 MB, 34% faster queries), BERT-base, ModernBERT-base, GPT-2.
PACK_LIMIT_BYTES = 512 * 2**20
ONEDNN_ENV = "SEARCHKIT_ONEDNN"  # "0": plain F.linear everywhere (A/B benchmarks, debugging)


def _onednn_dtypes() -> frozenset:
    """The dtypes for which the fused CPU path is taken (none without oneDNN)."""
    if torch.jit.is_tracing() and not _probe_onednn_dtypes.cache_info().currsize:
        # The probe is an op whose bool result a trace cannot record: asked inside a trace it
        # fails, and that answer ("none") would stay for the whole process. Not fused in this
        # trace, then; single_text_graph.build runs the model eagerly before it traces.
        return frozenset()
    return _probe_onednn_dtypes()


@functools.cache
def _probe_onednn_dtypes() -> frozenset:
    if os.environ.get(ONEDNN_ENV, "1") == "0" or not torch.backends.mkldnn.is_available():
        return frozenset()
    try:
        linear = torch.ops.mkldnn._linear_pointwise  # noqa: F841  (private: absent in some builds)
        bf16 = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return frozenset()
    return frozenset({torch.float32, torch.bfloat16} if bf16 else {torch.float32})


# dtypes whose fused call failed once (a torch build whose oneDNN lacks an attr, say):
# they run plain from then on rather than fail.
_onednn_failed: set[torch.dtype] = set()


def linear_path(device: torch.device, dtype: torch.dtype, quantized: bool = False) -> str:
    """How `Dense` runs on this device and dtype, for reports: "oneDNN-fused", "F.linear" or
    "int8 (_int_mm)"."""
    if quantized:
        return "int8 (_int_mm)"
    fused = device.type == "cpu" and dtype in _onednn_dtypes() and dtype not in _onednn_failed
    return "oneDNN-fused" if fused else "F.linear"


class Dense(nn.Linear):
    """nn.Linear followed by an optional activation or residual add.

    On the CPU (fp32/bf16, frozen weights as `load_model` gives) one oneDNN call does the
    matmul, the bias and the activation or residual add in one pass over the output instead
    of three. Measured on MiniLM's MLP (2048 tokens, 384 -> 1536, GELU): 13.1 -> 8.4 ms in
    bf16, 28.2 -> 14.7 ms in fp32 (bench/encoder_speed.py has the end-to-end figures). Its
    fp32 sums run in another order than MKL's: |Δ| of a few 1e-6, within the parity tolerance.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, act: str | None = None,
                 int8_ok: bool = True):
        super().__init__(in_features, out_features, bias=bias)
        self.act_name = act
        self.act = activation(act) if act else None
        self.int8_ok = int8_ok  # False: stays fp32 under an uncalibrated int8 (models/int8.py)
        self.int8: int8.Int8Weight | None = None  # see quantize_int8
        self.pack = True  # keep a oneDNN-packed copy for the fused path (see limit_packing)

    def quantize_int8(self, input_absmax: torch.Tensor | None = None) -> None:
        """Run this layer with int8 operands from now on (models/int8.py); the fp32 weight stays.
        `input_absmax`: each input channel's largest |value| in calibration, which picks the
        channels kept in fp32; without it, a layer built with int8_ok=False stays fp32."""
        if input_absmax is not None or self.int8_ok:
            self.int8 = int8.prepare(self.weight, self.bias, input_absmax)

    def forward(self, x: torch.Tensor, residual: torch.Tensor | None = None) -> torch.Tensor:
        if self.int8 is not None:
            y = int8.linear(x, self.int8, self.bias)
        else:
            if self._can_fuse(x):
                try:
                    return self._fused(x, residual)
                except RuntimeError as exc:
                    if "memory" in str(exc).lower():
                        raise  # the encoder halves the batch and retries
                    _onednn_failed.add(x.dtype)
            y = F.linear(x, self.weight, self.bias)
        if self.act is not None:
            y = self.act(y)
        return y if residual is None else residual + y

    def _can_fuse(self, x: torch.Tensor) -> bool:
        return (
            x.dtype in _onednn_dtypes()
            and x.dtype not in _onednn_failed
            and x.device.type == "cpu"
            and not (x.requires_grad or self.weight.requires_grad)  # the fused op has no backward
            and self.weight.dtype == x.dtype
            and (self.act_name is None or self.act_name in ONEDNN_ACTIVATIONS)
        )

    def _fused(self, x: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        x = x.contiguous()
        weight = self._packed_weight() if self.pack else self.weight
        if residual is not None and self.act is None:
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual.contiguous(), weight, self.bias, "add")
        attr, algorithm = ONEDNN_ACTIVATIONS[self.act_name] if self.act_name else ("none", "")
        if torch.jit.is_tracing():  # the tracer cannot record the op's empty scalar list
            y = _traceable_linear_pointwise()(x, weight, self.bias, attr, algorithm)
        else:
            y = torch.ops.mkldnn._linear_pointwise(x, weight, self.bias, attr, [], algorithm)
        return y if residual is None else residual + y

    def _packed_weight(self) -> torch.Tensor:
        """The weight in oneDNN's blocked layout, made once per weight tensor and dtype.

        Given a plain weight, oneDNN re-lays it out on every call; at query sizes that copy
        costs as much as the product. Measured on MiniLM's 24 projections (plain -> packed):
        21 rows fp32 5.73 -> 3.80 ms, bf16 3.11 -> 1.82 ms; 2048 rows fp32 225 -> 210 ms,
        bf16 121 -> 104 ms.
        The plain weight stays too (state_dict, parity, the F.linear fallback): for MiniLM
        that is 42 MB more in fp32; models past PACK_LIMIT_BYTES make no copy (`pack`).
        """
        key = (self.weight.data_ptr(), self.weight.dtype, _version_of(self.weight))
        if getattr(self, "_packed_key", None) == key:
            return self.packed_weight
        packed = torch.ops.mkldnn._reorder_linear_weight(self.weight.detach(), PACK_ROWS_HINT)
        # A buffer, not a plain attribute, so that a traced graph reads it from the module:
        # the tracer cannot hold a oneDNN tensor as a constant (single_text_graph.py).
        # Not persistent: state_dict stays the checkpoint's.
        self.register_buffer("packed_weight", packed, persistent=False)
        self._packed_key = key
        return packed


@functools.cache
def _traceable_linear_pointwise():
    """oneDNN's fused linear + activation as a TorchScript function: called while tracing,
    it enters the graph as a call, where the bare op's `Scalar?[]` argument cannot."""

    def linear_pointwise(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                         attr: str, algorithm: str) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, attr, [], algorithm)

    return torch.jit.script(linear_pointwise)


def limit_packing(model: nn.Module, limit: int = PACK_LIMIT_BYTES) -> bool:
    """Switch off packed weight copies in every `Dense` of `model` when together they would
    take more than `limit` bytes (see PACK_LIMIT_BYTES). Returns whether they stay on."""
    dense = [m for m in model.modules() if isinstance(m, Dense)]
    total = sum(m.weight.numel() * m.weight.element_size() for m in dense)
    for m in dense:
        m.pack = total <= limit
    return total <= limit


def _version_of(t: torch.Tensor) -> int:
    """The in-place edit counter of `t`; -1 for an inference tensor, which has none."""
    try:
        return t._version
    except RuntimeError:
        return -1
