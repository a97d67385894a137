"""Hold searchkit's whole pipeline (prompt, tokenization and truncation, pooling, Matryoshka
truncation, normalisation) to sentence-transformers' own, on the same folder.

`searchkit parity` compares hidden states with `transformers`; this compares the vectors
that come out at the end, queries and documents each with their prompt, where
sentence-transformers is installed and the folder is one of its (`modules.json`). It is
imported lazily: sentence-transformers is optional (`pip install 'searchkit[bench]'`).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .encoder import Encoder
from .pooling import read_pooling_config


@dataclass
class PipelineDiff:
    role: str  # "query" or "document"
    prompt: str  # what both sides prepended ("" for none)
    max_abs: float  # largest |ours - sentence-transformers| over every value
    cosine: float  # lowest cosine over the texts


def why_not(encoder: Encoder) -> str | None:
    """Why sentence-transformers' pipeline is not comparable with this encoder (None if it is)."""
    if importlib.util.find_spec("sentence_transformers") is None:
        return "sentence-transformers is not installed (pip install 'searchkit[bench]')"
    if not (encoder.path / "modules.json").is_file():
        return "not a sentence-transformers folder (no modules.json)"
    declared = read_pooling_config(encoder.path)
    if encoder.pooling != (declared.name or "mean") or encoder.include_prompt != declared.include_prompt:
        return f"--pooling {encoder.pooling} is not the folder's own ({declared.name or 'mean'})"
    if encoder.layer % encoder.model.num_hidden_states != encoder.model.num_hidden_states - 1:
        return f"layer {encoder.layer} is not the last hidden state, which sentence-transformers pools"
    if not encoder.normalize:
        return "normalisation is off"
    return None


def compare_pipeline(encoder: Encoder, texts: Sequence[str], model=None) -> list[PipelineDiff]:
    """Our query and document vectors against sentence-transformers' `encode` with the same
    prompt and `truncate_dim` (fp32 on the CPU). `model`: a SentenceTransformer already
    loaded for the folder. Call `why_not` first."""
    if model is None:
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer(str(encoder.path), device="cpu")
    texts = list(texts)
    out = []
    for role, prompt, ours in (("query", encoder.query_prompt, encoder.encode_queries),
                               ("document", encoder.document_prompt, encoder.encode_documents)):
        a = ours(texts).astype(np.float64)
        b = np.asarray(model.encode(texts, prompt=prompt or None, truncate_dim=encoder.truncate_dim,
                                    normalize_embeddings=True, show_progress_bar=False), dtype=np.float64)
        cos = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
        out.append(PipelineDiff(role, prompt, float(np.abs(a - b).max()), float(cos.min())))
    return out
