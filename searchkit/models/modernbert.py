"""ModernBERT encoder (answerdotai/ModernBERT-base and -large, and their fine-tunes).

Pre-norm transformer without position embeddings: token embeddings -> LayerNorm, then per
layer `x = x + Attn(attn_norm(x)); x = x + GeGLU(mlp_norm(x))`, then a final LayerNorm.
Attention is bidirectional with rotary position embeddings; every N-th layer (0, N, 2N, …)
is global, the others see only a sliding window of ±local_attention/2 tokens and use their
own RoPE base. Layer 0's attn_norm is the identity (the embedding LayerNorm just ran).

Padding is dropped once, before the first layer: embeddings, projections, norms and the
MLP run on the packed (N, C) real tokens only, and the tokens are padded back per batch
just around SDPA. A text's numbers therefore never depend on its batch-mates.

Hidden states are numbered as transformers 5 numbers `hidden_states`: 0 is the embedding
output, i the output of layer i, and the last one (number num_layers) is taken *after*
`final_norm`, so that it equals `last_hidden_state`. (transformers 5 overwrites the raw
last-layer output with `last_hidden_state` in `hidden_states`; transformers 4.x returned
the raw output before `final_norm` there. We follow 5: our last entry is the model's
output, the one to pool. The raw last-layer output is not returned.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ModelLoadError
from .layers import (
    Packing,
    Rope,
    activation,
    apply_rotary,
    embedding,
    key_padding_mask,
    positions_from_mask,
    resolve_upto,
    rotary,
)
from .linear import Dense
from .loading import check_heads, rename_keys, require

GLOBAL, LOCAL = "full_attention", "sliding_attention"  # transformers 5's layer_types names


# Mirrors transformers.models.modernbert.configuration_modernbert.ModernBertConfig
@dataclass
class ModernBertConfig:
    vocab_size: int  # rows of the token embedding table (padded past the tokenizer's vocab)
    hidden_size: int  # width of every hidden state
    num_layers: int  # transformer blocks
    num_heads: int  # attention heads per block
    intermediate_size: int  # GeGLU inner width (Wi projects to twice this)
    max_positions: int  # longest sequence trained on (RoPE has no table; 8192 for base)
    norm_eps: float  # LayerNorm epsilon
    norm_bias: bool  # LayerNorms carry a bias
    attention_bias: bool  # Wqkv and attention Wo carry biases
    mlp_bias: bool  # Wi and mlp Wo carry biases
    hidden_act: str  # activation of the GeGLU's input half ("gelu", the erf form, for base)
    local_attention: int  # sliding window width in tokens: a local layer sees ±local_attention//2
    layer_types: tuple[str, ...]  # per layer: "full_attention" (global) or "sliding_attention"
    global_rope_theta: float  # RoPE base on global layers (160,000 for base)
    local_rope_theta: float  # RoPE base on local layers (10,000 for base)
    pad_token_id: int

    @classmethod
    def from_hf_config(cls, cfg: dict) -> "ModernBertConfig":
        """Read config.json in either spelling.

        transformers 5 writes `layer_types` and `rope_parameters` (per layer type, each with
        `rope_theta`) next to `local_attention`; older files (ModernBERT-base as released,
        transformers 4.x) write `global_attn_every_n_layers`, `global_rope_theta` and
        `local_rope_theta`. When both are present the new keys win, as in transformers 5.
        """
        num_layers = int(require(cfg, "num_hidden_layers"))
        config = cls(
            vocab_size=int(require(cfg, "vocab_size")),
            hidden_size=int(require(cfg, "hidden_size")),
            num_layers=num_layers,
            num_heads=int(require(cfg, "num_attention_heads")),
            intermediate_size=int(require(cfg, "intermediate_size")),
            max_positions=int(cfg.get("max_position_embeddings") or 8192),
            norm_eps=float(cfg.get("norm_eps", 1e-5)),
            norm_bias=bool(cfg.get("norm_bias", False)),
            attention_bias=bool(cfg.get("attention_bias", False)),
            mlp_bias=bool(cfg.get("mlp_bias", False)),
            hidden_act=str(cfg.get("hidden_activation") or cfg.get("hidden_act") or "gelu"),
            local_attention=_local_attention(cfg),
            layer_types=_layer_types(cfg, num_layers),
            global_rope_theta=_rope_theta(cfg, GLOBAL),
            local_rope_theta=_rope_theta(cfg, LOCAL),
            pad_token_id=int(cfg.get("pad_token_id") or 0),
        )
        head_dim = check_heads(config.hidden_size, config.num_heads)
        if head_dim % 2:
            raise ModelLoadError(f"config.json: head size {head_dim} is odd; RoPE needs it even")
        activation(config.hidden_act)  # fail at load time, not on the first batch
        return config


def _layer_types(cfg: dict, num_layers: int) -> tuple[str, ...]:
    types = cfg.get("layer_types")
    if types is None:  # older spelling: global on layers 0, n, 2n, …
        every = cfg.get("global_attn_every_n_layers", 3)
        if not isinstance(every, int) or every < 1:
            raise ModelLoadError(
                f"config.json: global_attn_every_n_layers {every!r} is not a positive integer"
            )
        return tuple(GLOBAL if i % every == 0 else LOCAL for i in range(num_layers))
    if not isinstance(types, list) or len(types) != num_layers or not set(types) <= {GLOBAL, LOCAL}:
        raise ModelLoadError(
            f"config.json: layer_types must list {num_layers} entries of {GLOBAL!r} / {LOCAL!r},"
            f" got {types!r}"
        )
    return tuple(types)


def _local_attention(cfg: dict) -> int:
    window = cfg.get("local_attention", 128)
    if not isinstance(window, int) or window < 2:
        raise ModelLoadError(f"config.json: local_attention {window!r} is not 2 tokens or more")
    return window


def _rope_theta(cfg: dict, kind: str) -> float:
    if cfg.get("rope_scaling"):
        raise ModelLoadError(f"config.json: rope_scaling {cfg['rope_scaling']!r} is not supported")
    params = cfg.get("rope_parameters") or {}
    if not isinstance(params, dict) or not isinstance(params.get(kind) or {}, dict):
        raise ModelLoadError(f"config.json: rope_parameters {params!r} is not per layer type")
    params = params.get(kind) or {}
    if params.get("rope_type", "default") != "default":
        raise ModelLoadError(f"config.json: rope_type {params['rope_type']!r} is not supported")
    theta = params.get("rope_theta")
    if theta is None and kind == GLOBAL:
        theta = cfg.get("global_rope_theta", 160_000.0)
    if theta is None:
        # A null local_rope_theta meant "use the global base" in the original code.
        theta = cfg.get("local_rope_theta", 10_000.0)
        theta = _rope_theta(cfg, GLOBAL) if theta is None else theta
    if not isinstance(theta, (int, float)) or theta <= 0:
        raise ModelLoadError(f"config.json: rope_theta {theta!r} ({kind}) is not positive")
    return float(theta)


# Mirrors transformers.models.modernbert.modeling_modernbert.ModernBertEmbeddings
class ModernBertEmbeddings(nn.Module):
    def __init__(self, c: ModernBertConfig):
        super().__init__()
        self.tok_embeddings = embedding(c.vocab_size, c.hidden_size)
        self.norm = nn.LayerNorm(c.hidden_size, eps=c.norm_eps, bias=c.norm_bias)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.norm(self.tok_embeddings(ids))  # (N,) -> (N, C)


# Mirrors transformers.models.modernbert.modeling_modernbert.ModernBertAttention
# (RoPE: ModernBertRotaryEmbedding and apply_rotary_pos_emb there, here models/layers.py)
class ModernBertAttention(nn.Module):
    def __init__(self, c: ModernBertConfig):
        super().__init__()
        self.num_heads = c.num_heads
        # query|key|value fused, as the checkpoint stores them
        self.Wqkv = Dense(c.hidden_size, 3 * c.hidden_size, bias=c.attention_bias, int8_ok=False)
        self.Wo = Dense(c.hidden_size, c.hidden_size, bias=c.attention_bias)

    def forward(self, x: torch.Tensor, rope: Rope, mask: torch.Tensor | None, packing: Packing,
                residual: torch.Tensor):
        N, C = x.shape
        H, B, T = self.num_heads, packing.batch, packing.seqlen
        q, k, v = self.Wqkv(x).view(N, 3, H, C // H).unbind(1)  # 3 x (N, H, D)
        q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        # Pad per batch only around SDPA; padded keys are masked, padded queries dropped.
        qkv = packing.unpack(torch.stack((q, k, v), dim=1))  # (B, T, 3, H, D)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, D)
        y = packing.pack(y.transpose(1, 2).reshape(B, T, C))  # (N, C)
        return self.Wo(y, residual=residual)


# Mirrors transformers.models.modernbert.modeling_modernbert.ModernBertMLP
class ModernBertMLP(nn.Module):
    def __init__(self, c: ModernBertConfig):
        super().__init__()
        self.Wi = Dense(c.hidden_size, 2 * c.intermediate_size, bias=c.mlp_bias)  # input|gate
        self.act = activation(c.hidden_act)
        self.Wo = Dense(c.intermediate_size, c.hidden_size, bias=c.mlp_bias)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        inp, gate = self.Wi(x).chunk(2, dim=-1)  # 2 x (N, I): the first half goes through act
        return self.Wo(self.act(inp) * gate, residual=residual)  # residual + MLP(x): (N, C)


# Mirrors transformers.models.modernbert.modeling_modernbert.ModernBertEncoderLayer
class ModernBertLayer(nn.Module):
    def __init__(self, c: ModernBertConfig, index: int):
        super().__init__()
        self.attention_type = c.layer_types[index]
        # Layer 0 normalises nothing before attention: the embeddings end in a LayerNorm.
        if index == 0:
            self.attn_norm = nn.Identity()
        else:
            self.attn_norm = nn.LayerNorm(c.hidden_size, eps=c.norm_eps, bias=c.norm_bias)
        self.attn = ModernBertAttention(c)
        self.mlp_norm = nn.LayerNorm(c.hidden_size, eps=c.norm_eps, bias=c.norm_bias)
        self.mlp = ModernBertMLP(c)

    def forward(self, x: torch.Tensor, rope: Rope, mask: torch.Tensor | None, packing: Packing):
        x = self.attn(self.attn_norm(x), rope, mask, packing, residual=x)  # x + Attn(norm(x)): (N, C)
        return self.mlp(self.mlp_norm(x), residual=x)


# Mirrors transformers.models.modernbert.modeling_modernbert.ModernBertModel
# (its masks: transformers.masking_utils.create_bidirectional_mask and
# create_bidirectional_sliding_window_mask)
class ModernBertModel(nn.Module):
    def __init__(self, config: ModernBertConfig):
        super().__init__()
        self.config = config
        self.embeddings = ModernBertEmbeddings(config)
        self.layers = nn.ModuleList(ModernBertLayer(config, i) for i in range(config.num_layers))
        self.final_norm = nn.LayerNorm(
            config.hidden_size, eps=config.norm_eps, bias=config.norm_bias
        )

    @property
    def num_hidden_states(self) -> int:
        return self.config.num_layers + 1

    default_layer = -1  # pool the model's output (after final_norm)
    default_pooling = "mean"  # without a pooling config
    # Local layers skip their window mask while a text fits in the window (`masks`):
    # a graph traced on a short text would skip it on long ones too (single_text_graph.py).
    single_text_trace = False
    max_positions = property(lambda self: self.config.max_positions)

    def masks(self, attention_mask: torch.Tensor) -> dict[str, torch.Tensor | None]:
        """SDPA masks per layer type: key padding on global layers, plus the window on local.

        Queries and keys are sequence indices; real tokens are contiguous (padding on one
        side), so index distance is position distance.
        """
        full = key_padding_mask(attention_mask)  # (B, 1, 1, T) or None
        T = attention_mask.shape[1]
        half = self.config.local_attention // 2
        if T - 1 <= half:  # the window covers the whole sequence
            return {GLOBAL: full, LOCAL: full}
        i = torch.arange(T, device=attention_mask.device)
        window = (i[:, None] - i[None, :]).abs() <= half  # (T, T)
        if full is None:
            return {GLOBAL: None, LOCAL: window}
        # A padded query far past the text sees no key at all; letting it see itself keeps
        # SDPA's output finite. Real queries are unaffected (they always see themselves).
        itself = torch.eye(T, dtype=torch.bool, device=window.device)  # (T, T)
        local = window & (full | itself)  # (B, 1, T, T)
        return {GLOBAL: full, LOCAL: local}

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T) token ids, padded on either side
        attention_mask: torch.Tensor,  # (B, T) 1 for real tokens, 0 for padding
        token_type_ids: torch.Tensor | None = None,  # ignored: ModernBERT has no segments
        upto: int | None = None,  # stop after this hidden state (None: all; -1: the last)
    ) -> list[torch.Tensor]:
        c = self.config
        last = resolve_upto(upto, c.num_layers)
        packing = Packing(attention_mask)
        positions = packing.pack(positions_from_mask(attention_mask))  # (N,)
        x = self.embeddings(packing.pack(input_ids))  # (N, C)
        head_dim = c.hidden_size // c.num_heads
        rope = {
            GLOBAL: rotary(positions, head_dim, c.global_rope_theta, x.dtype, head_axis=-2),  # (N, 1, D)
            LOCAL: rotary(positions, head_dim, c.local_rope_theta, x.dtype, head_axis=-2),
        }
        masks = self.masks(attention_mask)
        hidden = [x]
        for layer in self.layers[:last]:
            x = layer(x, rope[layer.attention_type], masks[layer.attention_type], packing)
            hidden.append(x)
        if last == c.num_layers:
            hidden[-1] = self.final_norm(x)  # the last hidden state is the model's output
        return [packing.unpack(h) for h in hidden]  # last + 1 of (B, T, C), zeros at padding


# Checkpoint keys -> ours. Our module names are the checkpoint's, so the table is short:
# ModernBertForMaskedLM & co. put the encoder under `model.`; their heads are dropped.
# Layer 0 has no attn_norm weights (an identity in the checkpoint too).
RENAMES = [(r"^model\.", "")]
DROP = [r"^head\.", r"^decoder\.", r"^classifier\.", r"^drop\."]


def convert_checkpoint(
    state: dict[str, torch.Tensor], config: ModernBertConfig
) -> dict[str, torch.Tensor]:
    """Strip the task-model prefix and drop prediction/classification heads."""
    return rename_keys(state, RENAMES, DROP)


Config = ModernBertConfig
Model = ModernBertModel
