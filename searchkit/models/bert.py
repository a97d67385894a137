"""BERT encoder (all-MiniLM-L6-v2, BERT-base, bge/e5/gte-style checkpoints).

Post-norm transformer: embeddings (word + position + token type) -> LayerNorm, then per
layer `x = LN(x + Attn(x)); x = LN(x + MLP(x))`. Returns every hidden state, numbered
as `transformers` numbers them: 0 is the embedding output, i the output of layer i.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import BadInput, ModelLoadError
from .layers import activation, embedding, key_padding_mask, positions_from_mask, resolve_upto
from .linear import Dense
from .loading import check_heads, rename_keys, require


# Mirrors transformers.models.bert.configuration_bert.BertConfig (the fields an encoder reads)
@dataclass
class BertConfig:
    vocab_size: int  # rows of the word embedding table
    hidden_size: int  # width of every hidden state
    num_layers: int  # transformer blocks
    num_heads: int  # attention heads per block
    intermediate_size: int  # MLP inner width
    max_positions: int  # rows of the learned position table
    type_vocab_size: int  # token type (segment) rows; 0 when the checkpoint has none
    layer_norm_eps: float
    hidden_act: str  # "gelu" (erf) for BERT; some derivatives use gelu_new / relu
    pad_token_id: int
    position_offset: int = 0  # position id of a text's first token (RoBERTa: padding_idx + 1)

    @classmethod
    def from_hf_config(cls, cfg: dict) -> "BertConfig":
        position_type = cfg.get("position_embedding_type", "absolute")
        if position_type != "absolute":
            raise ModelLoadError(f"config.json: position_embedding_type {position_type!r} is not supported")
        config = cls(
            vocab_size=int(require(cfg, "vocab_size")),
            hidden_size=int(require(cfg, "hidden_size", "dim")),
            num_layers=int(require(cfg, "num_hidden_layers", "n_layers")),
            num_heads=int(require(cfg, "num_attention_heads", "n_heads")),
            intermediate_size=int(require(cfg, "intermediate_size", "hidden_dim")),
            max_positions=int(require(cfg, "max_position_embeddings")),
            type_vocab_size=int(cfg.get("type_vocab_size", 2)),
            layer_norm_eps=float(cfg.get("layer_norm_eps", 1e-12)),
            hidden_act=str(cfg.get("hidden_act", "gelu")),
            pad_token_id=int(cfg.get("pad_token_id") or 0),
        )
        check_heads(config.hidden_size, config.num_heads)
        activation(config.hidden_act)  # fail at load time, not on the first batch
        return config


# Mirrors transformers.models.bert.modeling_bert.BertEmbeddings
class BertEmbeddings(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.word_embeddings = embedding(c.vocab_size, c.hidden_size)
        self.position_embeddings = embedding(c.max_positions, c.hidden_size)
        self.token_type_embeddings = embedding(max(c.type_vocab_size, 1), c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)
        self.position_offset = c.position_offset

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                token_type_ids: torch.Tensor | None) -> torch.Tensor:
        # Positions count real tokens only, so padding on either side shifts nothing.
        positions = positions_from_mask(attention_mask) + self.position_offset  # (B, T)
        x = self.word_embeddings(input_ids) + self.position_embeddings(positions)  # (B, T, C)
        if token_type_ids is None:
            x = x + self.token_type_embeddings.weight[0]  # every token is segment 0
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.LayerNorm(x)


# Mirrors transformers.models.bert.modeling_bert.BertAttention:
# BertSelfAttention (query|key|value fused into qkv) + BertSelfOutput
class BertAttention(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.num_heads = c.num_heads
        self.qkv = Dense(c.hidden_size, 3 * c.hidden_size, int8_ok=False)  # query|key|value fused at load
        self.output = Dense(c.hidden_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        B, T, C = x.shape
        H = self.num_heads
        q, k, v = self.qkv(x).view(B, T, 3, H, C // H).permute(2, 0, 3, 1, 4)  # 3 x (B, H, T, D)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, H, T, D)
        y = y.transpose(1, 2).reshape(B, T, C)
        return self.LayerNorm(self.output(y, residual=x))


# Mirrors transformers.models.bert.modeling_bert.BertLayer (+ BertIntermediate, BertOutput)
class BertLayer(nn.Module):
    def __init__(self, c: BertConfig):
        super().__init__()
        self.attention = BertAttention(c)
        self.intermediate = Dense(c.hidden_size, c.intermediate_size, act=c.hidden_act)
        self.output = Dense(c.intermediate_size, c.hidden_size)
        self.LayerNorm = nn.LayerNorm(c.hidden_size, eps=c.layer_norm_eps)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.attention(x, mask)
        return self.LayerNorm(self.output(self.intermediate(x), residual=x))


# Mirrors transformers.models.bert.modeling_bert.BertModel
# (+ BertEncoder's loop over the layers; no BertPooler)
class BertModel(nn.Module):
    def __init__(self, config: BertConfig):
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.layers = nn.ModuleList(BertLayer(config) for _ in range(config.num_layers))

    @property
    def num_hidden_states(self) -> int:
        return self.config.num_layers + 1

    default_layer = -1  # pool the last layer's output
    default_pooling = "mean"  # without a pooling config (sentence-transformers' default)
    # One unpadded text takes the same path at every length: a traced graph holds (single_text_graph.py).
    single_text_trace = True

    @property
    def max_positions(self) -> int:
        """Longest input: the position table's rows past the offset (514 - 2 for XLM-R)."""
        return self.config.max_positions - self.config.position_offset

    def forward(
        self,
        input_ids: torch.Tensor,  # (B, T) token ids, padded on either side
        attention_mask: torch.Tensor,  # (B, T) 1 for real tokens, 0 for padding
        token_type_ids: torch.Tensor | None = None,
        upto: int | None = None,  # stop after this hidden state (None: all)
    ) -> list[torch.Tensor]:
        if input_ids.shape[1] > self.max_positions:
            raise BadInput(f"{input_ids.shape[1]} tokens exceed this model's {self.max_positions} positions")
        mask = key_padding_mask(attention_mask)
        x = self.embeddings(input_ids, attention_mask, token_type_ids)
        hidden = [x]
        for layer in self.layers[: resolve_upto(upto, self.config.num_layers)]:
            x = layer(x, mask)
            hidden.append(x)
        return hidden  # num_layers + 1 tensors of (B, T, C)


# Checkpoint keys -> ours, applied in order. Checkpoints come with or without a `bert.`
# prefix (BertModel vs BertForMaskedLM), and very old ones name LayerNorm params gamma/beta.
# LAYOUT is the part every BERT-layout architecture (RoBERTa, XLM-R) shares.
LAYOUT = [
    (r"LayerNorm\.gamma$", "LayerNorm.weight"),
    (r"LayerNorm\.beta$", "LayerNorm.bias"),
    (r"^encoder\.layer\.", "layers."),
    (r"\.attention\.self\.", ".attention."),
    (r"\.attention\.output\.dense\.", ".attention.output."),
    (r"\.attention\.output\.LayerNorm\.", ".attention.LayerNorm."),
    (r"\.intermediate\.dense\.", ".intermediate."),
    (r"\.output\.dense\.", ".output."),
    (r"\.output\.LayerNorm\.", ".LayerNorm."),
]
RENAMES = [(r"^bert\.", ""), *LAYOUT]
# Buffers and heads that an encoder does not use.
DROP = [r"position_ids$", r"^(bert\.)?pooler\.", r"^cls\.", r"^lm_head\."]


def convert_checkpoint(
    state: dict[str, torch.Tensor], config: BertConfig, renames=RENAMES, drop=DROP
) -> dict[str, torch.Tensor]:
    """Rename checkpoint keys to ours (`renames`, `drop`: another BERT-layout
    architecture's table) and fuse query/key/value into one `qkv` projection."""
    state = rename_keys(state, renames, drop)
    for i in range(config.num_layers):
        p = f"layers.{i}.attention."
        for kind in ("weight", "bias"):
            parts = [state.pop(f"{p}{name}.{kind}", None) for name in ("query", "key", "value")]
            if all(t is not None for t in parts):
                state[f"{p}qkv.{kind}"] = torch.cat(parts, dim=0)
    if config.type_vocab_size == 0 and "embeddings.token_type_embeddings.weight" not in state:
        # Checkpoints without segments: a zero row keeps one code path.
        state["embeddings.token_type_embeddings.weight"] = torch.zeros(1, config.hidden_size)
    return state


Config = BertConfig
Model = BertModel
