"""Qwen3 as an encoder (Qwen3-Embedding-0.6B/4B/8B, and Qwen3 base checkpoints).

Pre-norm causal transformer without position embeddings: token embeddings, then per layer
`x = x + Attn(input_layernorm(x)); x = x + SwiGLU(post_attention_layernorm(x))`, then a
final RMSNorm. Attention is grouped-query (each key/value head serves num_heads/num_kv_heads
query heads), queries and keys go through a per-head RMSNorm and then rotary position
embeddings. Projections have no biases unless `attention_bias`.

Hidden states are numbered as transformers numbers `hidden_states`: 0 is the embedding
output, i the output of layer i, and the last one (number num_layers) is taken after the
final `norm`, so that it equals `last_hidden_state` (the one Qwen3-Embedding pools, at the
last token).

Padding may be on either side (Qwen3-Embedding's tokenizer pads on the left) and never
changes a text's numbers: position ids count real tokens only, and the causal mask hides
padded keys.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BadInput, ModelLoadError
from .layers import (
    Rope,
    activation,
    apply_rotary,
    causal_padding_mask,
    embedding,
    positions_from_mask,
    resolve_upto,
    rotary,
)
from .linear import Dense
from .loading import rename_keys, require

DEFAULT_ROPE_THETA = 10_000.0  # transformers' value when a config names none


# Mirrors transformers.models.qwen3.configuration_qwen3.Qwen3Config
@dataclass
class Qwen3Config:
    vocab_size: int  # rows of the token embedding table (151,669 for Qwen3-Embedding)
    hidden_size: int  # width of every hidden state (1024 for 0.6B)
    num_layers: int  # transformer blocks (28 for 0.6B)
    num_heads: int  # query heads per block (16 for 0.6B)
    num_kv_heads: int  # key/value heads, each shared by num_heads/num_kv_heads query heads (8)
    head_dim: int  # width of one head; not hidden/heads in general (128 for 0.6B: 16*128 = 2048)
    intermediate_size: int  # SwiGLU inner width (3072 for 0.6B)
    max_positions: int  # longest sequence the config allows (RoPE has no table; 32,768)
    rms_norm_eps: float
    rope_theta: float  # RoPE base (1,000,000 for Qwen3)
    attention_bias: bool  # q/k/v/o projections carry biases (False for released Qwen3)
    hidden_act: str  # activation of the SwiGLU gate ("silu")

    @classmethod
    def from_hf_config(cls, cfg: dict) -> "Qwen3Config":
        """Read config.json as transformers 4.x (`rope_theta`, `rope_scaling`) or 5
        (`rope_parameters`) writes it; refuse what this module does not implement
        (scaled RoPE, sliding-window layers)."""
        heads = int(require(cfg, "num_attention_heads"))
        hidden = int(require(cfg, "hidden_size"))
        config = cls(
            vocab_size=int(require(cfg, "vocab_size")),
            hidden_size=hidden,
            num_layers=int(require(cfg, "num_hidden_layers")),
            num_heads=heads,
            num_kv_heads=int(cfg.get("num_key_value_heads") or heads),
            head_dim=int(cfg.get("head_dim") or _divide(hidden, heads, "hidden_size", "num_attention_heads")),
            intermediate_size=int(require(cfg, "intermediate_size")),
            max_positions=int(require(cfg, "max_position_embeddings")),
            rms_norm_eps=float(cfg.get("rms_norm_eps", 1e-6)),
            rope_theta=_rope_theta(cfg),
            attention_bias=bool(cfg.get("attention_bias", False)),
            hidden_act=str(cfg.get("hidden_act") or "silu"),
        )
        for name in ("vocab_size", "hidden_size", "num_layers", "num_heads", "num_kv_heads",
                     "head_dim", "intermediate_size", "max_positions"):
            if getattr(config, name) < 1:
                raise ModelLoadError(f"config.json: {name} {getattr(config, name)} is not positive")
        _divide(config.num_heads, config.num_kv_heads, "num_attention_heads", "num_key_value_heads")
        if config.head_dim % 2:
            raise ModelLoadError(f"config.json: head_dim {config.head_dim} is odd; RoPE needs it even")
        _check_full_attention(cfg, config.num_layers)
        activation(config.hidden_act)  # fail at load time, not on the first batch
        return config


def _divide(n: int, by: int, n_name: str, by_name: str) -> int:
    if by < 1 or n % by:
        raise ModelLoadError(f"config.json: {n_name} {n} is not divisible by {by_name} {by}")
    return n // by


def _rope_theta(cfg: dict) -> float:
    """The RoPE base: transformers 5's `rope_parameters.rope_theta`, else `rope_theta`."""
    params = cfg.get("rope_parameters") or {}
    scaling = cfg.get("rope_scaling") or {}
    if not isinstance(params, dict) or not isinstance(scaling, dict):
        raise ModelLoadError(f"config.json: rope_parameters {params!r} is not one set of RoPE parameters")
    for source in (params, scaling):
        kind = source.get("rope_type", source.get("type", "default"))
        if kind != "default":
            raise ModelLoadError(f"config.json: rope_type {kind!r} is not supported (only default RoPE)")
    theta = params.get("rope_theta", cfg.get("rope_theta", DEFAULT_ROPE_THETA))
    if not isinstance(theta, (int, float)) or isinstance(theta, bool) or theta <= 0:
        raise ModelLoadError(f"config.json: rope_theta {theta!r} is not positive")
    return float(theta)


def _check_full_attention(cfg: dict, num_layers: int) -> None:
    """Every layer must attend to every earlier token: sliding windows are not implemented.
    (Qwen3-Embedding sets use_sliding_window false; transformers then ignores the window.)"""
    types = cfg.get("layer_types")
    if types is not None:
        if not isinstance(types, list) or len(types) != num_layers:
            raise ModelLoadError(f"config.json: layer_types must list {num_layers} entries, got {types!r}")
        sliding = [i for i, t in enumerate(types) if t != "full_attention"]
        if sliding:
            raise ModelLoadError(
                f"config.json: layer_types {types[sliding[0]]!r} on layer {sliding[0]}: only full "
                f"attention is supported"
            )
    elif cfg.get("use_sliding_window") and cfg.get("sliding_window"):
        raise ModelLoadError("config.json: use_sliding_window is true: sliding-window attention is not supported")


# Mirrors transformers.models.qwen3.modeling_qwen3.Qwen3RMSNorm
class RMSNorm(nn.Module):
    """x / rms(x) * weight, normalised in fp32 and rounded to x's dtype before the weight
    (what the reference does, so that bf16 runs match it bit for bit)."""

    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        xf = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * xf.to(x.dtype)


# Mirrors transformers.models.qwen3.modeling_qwen3.Qwen3Attention
# (RoPE: Qwen3RotaryEmbedding and apply_rotary_pos_emb there, here models/layers.py;
# the key/value head repeat: repeat_kv)
class Qwen3Attention(nn.Module):
    def __init__(self, c: Qwen3Config):
        super().__init__()
        self.num_heads, self.num_kv_heads, self.head_dim = c.num_heads, c.num_kv_heads, c.head_dim
        bias = c.attention_bias
        # int8_ok=False: q/k/v stay fp32 only under an uncalibrated int8 (load_model(int8=True)
        # alone); the Encoder calibrates, and then they run in int8 too (models/int8.py).
        self.q_proj = Dense(c.hidden_size, c.num_heads * c.head_dim, bias=bias, int8_ok=False)
        self.k_proj = Dense(c.hidden_size, c.num_kv_heads * c.head_dim, bias=bias, int8_ok=False)
        self.v_proj = Dense(c.hidden_size, c.num_kv_heads * c.head_dim, bias=bias, int8_ok=False)
        self.o_proj = Dense(c.num_heads * c.head_dim, c.hidden_size, bias=bias)
        self.q_norm = RMSNorm(c.head_dim, c.rms_norm_eps)  # per head, over its head_dim
        self.k_norm = RMSNorm(c.head_dim, c.rms_norm_eps)

    def forward(self, x: torch.Tensor, rope: Rope, mask: torch.Tensor | None,
                residual: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.shape
        H, KV, D = self.num_heads, self.num_kv_heads, self.head_dim
        q = self.q_norm(self.q_proj(x).view(B, T, H, D)).transpose(1, 2)  # (B, H, T, D)
        k = self.k_norm(self.k_proj(x).view(B, T, KV, D)).transpose(1, 2)  # (B, KV, T, D)
        v = self.v_proj(x).view(B, T, KV, D).transpose(1, 2)  # (B, KV, T, D)
        q, k = apply_rotary(q, *rope, in_fp32=False), apply_rotary(k, *rope, in_fp32=False)
        if KV != H:
            # Each key/value head serves H/KV consecutive query heads. Repeating them (rather
            # than SDPA's enable_gqa) keeps every SDPA kernel, CUDA's masked ones included.
            k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)  # (B, H, T, D)
        if mask is None:  # nothing padded: SDPA's own causal kernel
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, D)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, H * D), residual=residual)


# Mirrors transformers.models.qwen3.modeling_qwen3.Qwen3MLP
class Qwen3MLP(nn.Module):
    def __init__(self, c: Qwen3Config):
        super().__init__()
        self.gate_proj = Dense(c.hidden_size, c.intermediate_size, bias=False)
        self.up_proj = Dense(c.hidden_size, c.intermediate_size, bias=False)
        self.down_proj = Dense(c.intermediate_size, c.hidden_size, bias=False)
        self.act = activation(c.hidden_act)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        gated = self.act(self.gate_proj(x)) * self.up_proj(x)  # (B, T, I)
        return self.down_proj(gated, residual=residual)  # residual + SwiGLU(x): (B, T, C)


# Mirrors transformers.models.qwen3.modeling_qwen3.Qwen3DecoderLayer
class Qwen3Layer(nn.Module):
    def __init__(self, c: Qwen3Config):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Qwen3Attention(c)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = Qwen3MLP(c)

    def forward(self, x: torch.Tensor, rope: Rope, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.self_attn(self.input_layernorm(x), rope, mask, residual=x)  # x + Attn(norm(x))
        return self.mlp(self.post_attention_layernorm(x), residual=x)


# Mirrors transformers.models.qwen3.modeling_qwen3.Qwen3Model
# (its mask: transformers.masking_utils.create_causal_mask)
class Qwen3Model(nn.Module):
    def __init__(self, config: Qwen3Config):
        super().__init__()
        self.config = config
        self.embed_tokens = embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(Qwen3Layer(config) for _ in range(config.num_layers))
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)

    @property
    def num_hidden_states(self) -> int:
        return self.config.num_layers + 1

    default_layer = -1  # the model's output, after the final norm (Qwen3-Embedding pools it)
    # without a pooling config: causal attention leaves only the last token (EOS) seeing the whole text
    default_pooling = "lasttoken"
    single_text_trace = True  # one path at every length (single_text_graph.py)
    max_positions = property(lambda self: self.config.max_positions)

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T) token ids, padded on either side
        attention_mask: torch.Tensor,  # (B, T) 1 for real tokens, 0 for padding
        token_type_ids: torch.Tensor | None = None,  # ignored: Qwen3 has no segments
        upto: int | None = None,  # stop after this hidden state (None: all; -1: the last)
    ) -> list[torch.Tensor]:
        c = self.config
        if input_ids.shape[1] > c.max_positions:
            raise BadInput(f"{input_ids.shape[1]} tokens exceed this model's {c.max_positions} positions")
        last = resolve_upto(upto, c.num_layers)
        x = self.embed_tokens(input_ids)  # (B, T, C)
        positions = positions_from_mask(attention_mask)  # (B, T): padding shifts nothing
        rope = rotary(positions, c.head_dim, c.rope_theta, x.dtype, head_axis=1)  # (B, 1, T, D) each
        mask = causal_padding_mask(attention_mask)  # (B, 1, T, T) or None
        hidden = [x]
        for layer in self.layers[:last]:
            x = layer(x, rope, mask)
            hidden.append(x)
        if last == c.num_layers:
            hidden[-1] = self.norm(x)  # the last hidden state is the model's output
        return hidden  # last + 1 tensors of (B, T, C)


# The one table of checkpoint quirks: Qwen3-Embedding stores a bare Qwen3Model; causal-LM
# and classification checkpoints put it under `model.` and add heads, which are dropped
# (with tied embeddings, lm_head.weight is absent or a copy of embed_tokens).
RENAMES = [(r"^model\.", "")]
DROP = [r"^lm_head\.", r"^score\.", r"rotary_emb\.inv_freq$"]


def convert_checkpoint(state: dict[str, torch.Tensor], config: Qwen3Config) -> dict[str, torch.Tensor]:
    """Strip the task-model prefix and drop heads and RoPE buffers."""
    return rename_keys(state, RENAMES, DROP)


Config = Qwen3Config
Model = Qwen3Model
