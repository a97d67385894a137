"""GPT-2 as an encoder (gpt2 117M and its larger siblings, distilgpt2).

Pre-norm causal transformer: token + learned position embeddings, then per block
`x = x + Attn(ln_1(x)); x = x + MLP(ln_2(x))`, then `ln_f`. Hidden states are numbered as
transformers numbers `hidden_states`: 0 is the embedding output, i the output of block i,
and the last one (number n_layer) is taken after `ln_f` (transformers puts
`last_hidden_state` there too). By default the encoder pools the middle block's output
(`default_layer = n_layer // 2`), and `upto` lets it stop there: half a forward pass.

Padding may be on either side and never changes a text's numbers: position ids count real
tokens only (cumsum of the mask − 1), and the causal mask is combined with the key
padding mask.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BadInput, ModelLoadError
from .layers import activation, causal_padding_mask, embedding, positions_from_mask, resolve_upto
from .linear import Dense
from .loading import check_heads, rename_keys, require


# Mirrors transformers.models.gpt2.configuration_gpt2.GPT2Config
@dataclass
class GPT2Config:
    vocab_size: int  # rows of the token embedding table (50,257 for gpt2)
    hidden_size: int  # n_embd: width of every hidden state
    num_layers: int  # n_layer: transformer blocks
    num_heads: int  # n_head: attention heads per block
    intermediate_size: int  # n_inner: MLP inner width (4 * n_embd when the config says null)
    max_positions: int  # n_positions: rows of the learned position table (1024 for gpt2)
    layer_norm_eps: float  # layer_norm_epsilon
    activation_function: str  # "gelu_new" (tanh approximation) for gpt2
    scale_attn_weights: bool  # scores divided by sqrt(head size) (always, in released checkpoints)
    scale_attn_by_inverse_layer_idx: bool  # scores of block i also divided by i + 1

    @classmethod
    def from_hf_config(cls, cfg: dict) -> "GPT2Config":
        hidden = int(require(cfg, "n_embd", "hidden_size"))
        config = cls(
            vocab_size=int(require(cfg, "vocab_size")),
            hidden_size=hidden,
            num_layers=int(require(cfg, "n_layer", "num_hidden_layers")),
            num_heads=int(require(cfg, "n_head", "num_attention_heads")),
            intermediate_size=int(cfg.get("n_inner") or 4 * hidden),
            max_positions=int(require(cfg, "n_positions", "max_position_embeddings")),
            layer_norm_eps=float(cfg.get("layer_norm_epsilon", 1e-5)),
            activation_function=str(cfg.get("activation_function") or "gelu_new"),
            scale_attn_weights=bool(cfg.get("scale_attn_weights", True)),
            scale_attn_by_inverse_layer_idx=bool(cfg.get("scale_attn_by_inverse_layer_idx")),
        )
        check_heads(config.hidden_size, config.num_heads)
        if config.num_layers < 1 or config.max_positions < 1:
            raise ModelLoadError("config.json: n_layer and n_positions must be positive")
        activation(config.activation_function)  # fail at load time, not on the first batch
        return config


# Mirrors transformers.models.gpt2.modeling_gpt2.GPT2Attention
# (self-attention only: no cross-attention, no cache)
class GPT2Attention(nn.Module):
    def __init__(self, c: GPT2Config, index: int):
        super().__init__()
        self.num_heads = c.num_heads
        self.scale = (c.hidden_size // c.num_heads) ** -0.5 if c.scale_attn_weights else 1.0
        if c.scale_attn_by_inverse_layer_idx:
            self.scale /= index + 1
        self.c_attn = Dense(c.hidden_size, 3 * c.hidden_size, int8_ok=False)  # query|key|value
        self.c_proj = Dense(c.hidden_size, c.hidden_size)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None, residual: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        H = self.num_heads
        q, k, v = self.c_attn(x).view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, D)
        if mask is None:  # nothing padded: SDPA's own causal kernel
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=self.scale)
        else:
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=self.scale)
        return self.c_proj(y.transpose(1, 2).reshape(B, T, C), residual=residual)  # y: (B, H, T, D)


# Mirrors transformers.models.gpt2.modeling_gpt2.GPT2MLP
class GPT2MLP(nn.Module):
    def __init__(self, c: GPT2Config):
        super().__init__()
        self.c_fc = Dense(c.hidden_size, c.intermediate_size, act=c.activation_function)
        self.c_proj = Dense(c.intermediate_size, c.hidden_size)

    def forward(self, x: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.c_fc(x), residual=residual)  # residual + MLP(x): (B, T, C)


# Mirrors transformers.models.gpt2.modeling_gpt2.GPT2Block
class GPT2Block(nn.Module):
    def __init__(self, c: GPT2Config, index: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.attn = GPT2Attention(c, index)
        self.ln_2 = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.mlp = GPT2MLP(c)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.attn(self.ln_1(x), mask, residual=x)  # x + Attn(ln_1(x))
        return self.mlp(self.ln_2(x), residual=x)


# Mirrors transformers.models.gpt2.modeling_gpt2.GPT2Model
# (its mask: transformers.masking_utils.create_causal_mask)
class GPT2Model(nn.Module):
    def __init__(self, config: GPT2Config):
        super().__init__()
        self.config = config
        self.wte = embedding(config.vocab_size, config.hidden_size)
        self.wpe = embedding(config.max_positions, config.hidden_size)
        self.h = nn.ModuleList(GPT2Block(config, i) for i in range(config.num_layers))
        self.ln_f = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)

    @property
    def num_hidden_states(self) -> int:
        return self.config.num_layers + 1

    @property
    def default_layer(self) -> int:
        return self.config.num_layers // 2  # the middle block: GPT-2's best layer for embeddings

    default_pooling = "mean"  # without a pooling config
    single_text_trace = True  # one path at every length (single_text_graph.py)
    max_positions = property(lambda self: self.config.max_positions)

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T) token ids, padded on either side
        attention_mask: torch.Tensor,  # (B, T) 1 for real tokens, 0 for padding
        token_type_ids: torch.Tensor | None = None,  # ignored: GPT-2 has no segments
        upto: int | None = None,  # stop after this hidden state (None: all; -1: the last)
    ) -> list[torch.Tensor]:
        # (transformers would add wte(token_type_ids) if given; a tokenizer's all-zero type
        # ids would then add wte[0] to every token, so we never take them.)
        T = input_ids.shape[1]
        if T > self.config.max_positions:
            raise BadInput(f"{T} tokens exceed GPT-2's {self.config.max_positions} positions")
        last = resolve_upto(upto, self.config.num_layers)
        positions = positions_from_mask(attention_mask)  # (B, T)
        x = self.wte(input_ids) + self.wpe(positions)  # (B, T, C)
        mask = causal_padding_mask(attention_mask)
        hidden = [x]
        for block in self.h[:last]:
            x = block(x, mask)
            hidden.append(x)
        if last == self.config.num_layers:
            hidden[-1] = self.ln_f(x)  # the last hidden state is taken after ln_f
        return hidden  # last + 1 tensors of (B, T, C)


# The one table of checkpoint quirks, applied in order:
# - GPT2LMHeadModel & co. put the transformer under `transformer.`; GPT2Model does not.
# - Old checkpoints store the causal mask as buffers `attn.bias` / `attn.masked_bias`; heads
#   (`lm_head`, `score`, the double-heads summary) and cross-attention (unused without
#   encoder states, as in transformers) are dropped.
# - Conv1D stores weights [in, out]; nn.Linear wants [out, in]: TRANSPOSE lists them.
RENAMES = [(r"^transformer\.", "")]
DROP = [
    r"\.attn\.(bias|masked_bias)$",
    r"^(lm_head|score|multiple_choice_head)\.",
    r"\.(crossattention|ln_cross_attn)\.",
]
TRANSPOSE = r"\.(attn\.c_attn|attn\.c_proj|mlp\.c_fc|mlp\.c_proj)\.weight$"


def convert_checkpoint(
    state: dict[str, torch.Tensor], config: GPT2Config
) -> dict[str, torch.Tensor]:
    """Strip the prefix, drop buffers and heads, transpose Conv1D weights into nn.Linear's."""
    state = rename_keys(state, RENAMES, DROP)
    transpose = re.compile(TRANSPOSE)
    return {
        k: v.t().contiguous() if transpose.search(k) and v.ndim == 2 else v
        for k, v in state.items()
    }


Config = GPT2Config
Model = GPT2Model
