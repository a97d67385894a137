"""XLM-RoBERTa and RoBERTa encoders (multilingual-e5, bge-m3's dense vectors, roberta-base).

The layers are BERT's, weight for weight (models/bert.py runs them); what differs is
the checkpoint around them:
- Position ids start at `padding_idx + 1` (2 for XLM-R and RoBERTa, whose <pad> is 1): the
  position table has two rows more than the longest input, so 514 rows give 512 tokens.
  Positions count real tokens only (the attention mask), so padding shifts nothing.
- One token type (`type_vocab_size` 1).
- Task models put the encoder under `roberta.` and add an `lm_head` or `classifier`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import ModelLoadError
from . import bert


# Mirrors transformers.models.xlm_roberta.configuration_xlm_roberta.XLMRobertaConfig
# (and transformers.models.roberta.configuration_roberta.RobertaConfig)
@dataclass
class XLMRobertaConfig(bert.BertConfig):
    @classmethod
    def from_hf_config(cls, cfg: dict) -> "XLMRobertaConfig":
        """BERT's fields, and the position offset that padding_idx (pad_token_id) implies."""
        base = bert.BertConfig.from_hf_config(cfg)
        pad = cfg.get("pad_token_id", 1)  # transformers' default, as for every released checkpoint
        if not isinstance(pad, int) or pad < 0:
            raise ModelLoadError(f"config.json: pad_token_id {pad!r}: XLM-RoBERTa counts positions from it")
        offset = pad + 1
        if base.max_positions <= offset:
            raise ModelLoadError(
                f"config.json: max_position_embeddings {base.max_positions} leaves no position "
                f"past padding_idx + 1 = {offset}"
            )
        fields = {**vars(base), "pad_token_id": pad, "position_offset": offset}
        return cls(**fields)


# The one table of checkpoint quirks: an optional `roberta.` prefix (XLMRobertaForMaskedLM &
# co.), else BERT's layout; heads and the position_ids buffer are dropped.
RENAMES = [(r"^roberta\.", ""), *bert.LAYOUT]
DROP = [
    r"position_ids$",
    r"^(roberta\.)?pooler\.",
    r"^lm_head\.",
    r"^classifier\.",
    r"^qa_outputs\.",
]


def convert_checkpoint(state: dict[str, torch.Tensor], config: XLMRobertaConfig) -> dict[str, torch.Tensor]:
    """Strip the prefix, drop heads, and fuse query/key/value as BERT does."""
    return bert.convert_checkpoint(state, config, renames=RENAMES, drop=DROP)


Config = XLMRobertaConfig
# models/bert.py's blocks, with position_offset, mirror transformers.models.xlm_roberta.
# modeling_xlm_roberta's (and transformers.models.roberta.modeling_roberta's Roberta*):
#   bert.BertEmbeddings -> XLMRobertaEmbeddings (positions from padding_idx + 1; its
#                          create_position_ids_from_input_ids counts non-pad ids, we the mask)
#   bert.BertAttention  -> XLMRobertaAttention (XLMRobertaSelfAttention + XLMRobertaSelfOutput)
#   bert.BertLayer      -> XLMRobertaLayer (+ XLMRobertaIntermediate, XLMRobertaOutput)
#   bert.BertModel      -> XLMRobertaModel (+ XLMRobertaEncoder's loop; no XLMRobertaPooler)
Model = bert.BertModel
