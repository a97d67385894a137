"""Hold our encoder to Hugging Face `transformers`, layer by layer.

The same token ids go through both models; every hidden state is compared on the real
(unpadded) tokens, then the pooled vectors. `transformers` is imported lazily: it is an
optional extra (`pip install 'searchkit[parity]'`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .encoder import Encoder
from .errors import MissingDependency
from .images import check_image_path, save_figure
from .models import linear_path, positions_from_mask
from .sample_texts import DEFAULT_TEXTS
from .st_pipeline import compare_pipeline, why_not

# Tolerances per dtype: the largest |Δ| allowed in any hidden state, relative to the
# reference's largest magnitude when that exceeds 1, and the lowest pooled cosine.
TOLERANCES = {
    "fp32": {"max_abs": 1e-5, "pooled_cosine": 0.999999},
    "bf16": {"max_abs": 1e-1, "pooled_cosine": 0.999},
    "fp16": {"max_abs": 2e-2, "pooled_cosine": 0.9995},
    "int8": {"max_abs": 5e-1, "pooled_cosine": 0.995},
}


@dataclass
class LayerDiff:
    name: str
    max_abs: float  # largest |ours - reference| over real tokens
    mean_abs: float
    cosine: float  # lowest per-token cosine
    scale: float  # largest |reference| value (tolerances are relative past 1)


@dataclass
class ParityReport:
    model: str
    model_type: str
    dtype: str
    device: str
    texts: int
    tokens: int
    projections: str  # how our linear layers ran: "oneDNN-fused" or "F.linear"
    layers: list[LayerDiff] = field(default_factory=list)
    pooled_cosine: float = 0.0  # lowest over texts
    pooled_max_abs: float = 0.0
    tolerance: dict = field(default_factory=dict)
    passed: bool = False
    # the final vectors against sentence-transformers' own pipeline (st_pipeline.py), when asked
    pipeline: list = field(default_factory=list)  # PipelineDiff per role (query, document)
    pipeline_note: str | None = None  # why that comparison did not run

    def to_dict(self) -> dict:
        return asdict(self)


def load_reference(model_dir: Path):
    """The `transformers` model for the same folder, in fp32 on the CPU."""
    try:
        import transformers  # lazy: an optional extra, loaded only to compare
    except ImportError:
        raise MissingDependency(
            "parity needs Hugging Face transformers: pip install 'searchkit[parity]'"
        ) from None
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    model = transformers.AutoModel.from_pretrained(str(model_dir), dtype=torch.float32)
    return model.eval()


def reference_inputs(encoder: Encoder, batch) -> dict:
    """The keyword arguments that run the reference on `batch` as our model runs it.

    Under left padding (Qwen3-Embedding's tokenizer pads on the left) transformers' default
    position ids, 0..T-1 along the row, shift a text's positions by its padding; ours count
    real tokens only. With RoPE that shift is rounding noise (4e-5 in the tiny Qwen3's last
    layer), with learned positions a wrong answer; so the reference gets our position ids,
    offset as the model's own (RoBERTa's start past padding_idx)."""
    kwargs = {"input_ids": batch.input_ids, "attention_mask": batch.attention_mask}
    if not bool(batch.attention_mask[:, 0].all()):  # some row starts with padding
        offset = getattr(encoder.model.config, "position_offset", 0)
        kwargs["position_ids"] = positions_from_mask(batch.attention_mask) + offset
    return kwargs


def hidden_state_names(n: int) -> list[str]:
    return ["embeddings"] + [f"layer {i}" for i in range(n - 1)]


def _diff(name: str, ours: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor) -> LayerDiff:
    real = mask.bool()
    a, b = ours.float()[real], ref.float()[real]  # (N, C) real tokens only
    delta = (a - b).abs()
    cos = torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1)
    return LayerDiff(name, float(delta.max()), float(delta.mean()), float(cos.min()), float(b.abs().max()))


def compare(
    encoder: Encoder,
    texts: Sequence[str] | None = None,
    reference=None,
    pipeline: bool = False,
) -> ParityReport:
    """Compare every hidden state and the pooled vectors of `encoder` with `transformers`;
    `pipeline=True` also holds the final query and document vectors (prompts, pooling,
    truncation, normalisation) to sentence-transformers' `encode` where it can
    (st_pipeline.py; else `pipeline_note` says why not).

    >>> report = compare(load_encoder("all-MiniLM-L6-v2"))
    >>> report.passed, report.layers[-1].max_abs
    (True, 3.8e-06)
    """
    texts = list(texts or DEFAULT_TEXTS)
    reference = reference if reference is not None else load_reference(encoder.path)
    ids = encoder.tokenize(texts)
    report = ParityReport(
        model=encoder.name, model_type=encoder.model_type, dtype=encoder.dtype_name,
        device=str(encoder.device), texts=len(texts), tokens=sum(len(x) for x in ids),
        projections=linear_path(encoder.device, encoder.dtype, encoder.int8),
        tolerance=TOLERANCES[encoder.dtype_name],
    )
    # One padded batch for both sides, in the caller's order (so padding is exercised).
    batch = encoder.pad(ids, np.arange(len(ids)))
    ours = encoder.hidden_states(batch)
    with torch.inference_mode():
        out = reference(**reference_inputs(encoder, batch), output_hidden_states=True)
    refs = list(out.hidden_states)
    if len(refs) != len(ours):
        raise MissingDependency(
            f"transformers returned {len(refs)} hidden states, ours {len(ours)}: versions disagree on numbering"
        )
    names = hidden_state_names(len(ours))
    names[-1] += " (final)"
    mask = batch.attention_mask
    report.layers = [
        _diff(name, o.cpu(), r, mask) for name, o, r in zip(names, ours, refs)
    ]
    layer = encoder.layer % len(ours)
    pooled_ours = encoder.pool(ours[layer], mask).cpu().double()
    pooled_ref = encoder.pool(refs[layer], mask).double()
    cos = torch.nn.functional.cosine_similarity(pooled_ours, pooled_ref, dim=-1)
    report.pooled_cosine = float(cos.min())
    report.pooled_max_abs = float((pooled_ours - pooled_ref).abs().max())
    tol = report.tolerance
    report.passed = all(
        d.max_abs <= tol["max_abs"] * max(1.0, d.scale) for d in report.layers
    ) and report.pooled_cosine >= tol["pooled_cosine"]
    if pipeline:
        report.pipeline_note = why_not(encoder)
        if report.pipeline_note is None:
            report.pipeline = compare_pipeline(encoder, texts)
            report.passed &= all(d.cosine >= tol["pooled_cosine"] for d in report.pipeline)
    return report


def reference_vectors(encoder: Encoder, reference, texts: Sequence[str], prompt: str = "") -> np.ndarray:
    """What `transformers` gives for `texts` through the encoder's own tokenization,
    pooling and normalisation: the vectors ours must equal. float32 (n, dim). `prompt`:
    prepended to each text as `Encoder.encode` does (e.g. `encoder.query_prompt`)."""
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    prompt_tokens = encoder.prompt_pool_tokens(prompt)
    for batch in encoder.batches(encoder.tokenize([prompt + t for t in texts])):
        with torch.inference_mode():
            hidden = reference(**reference_inputs(encoder, batch), output_hidden_states=True).hidden_states
        layer = encoder.layer % len(hidden)
        out[batch.order] = encoder.pool(hidden[layer], batch.attention_mask, prompt_tokens).numpy()
    return out


def check_plot_path(path: str | Path) -> Path:
    """Fail now, in one line, where `plot(report, path)` would fail after the comparison."""
    return check_image_path(path, "plot")


def plot(report: ParityReport, path: str | Path) -> None:
    """A PNG of max |Δ| per hidden state on a log scale, with the tolerance line."""
    path = check_plot_path(path)
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise MissingDependency("--plot needs matplotlib: pip install 'searchkit[parity]'") from None
    names = [d.name for d in report.layers]
    fig, ax = plt.subplots(figsize=(max(6, 0.45 * len(names) + 2), 4))
    ax.plot(range(len(names)), [max(d.max_abs, 1e-12) for d in report.layers], "o-", label="max |Δ|")
    ax.plot(range(len(names)), [max(d.mean_abs, 1e-12) for d in report.layers], "s--", label="mean |Δ|")
    ax.axhline(report.tolerance["max_abs"], color="red", lw=1, label=f"tolerance {report.tolerance['max_abs']:g}")
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_ylabel("|ours − transformers|")
    verdict = "PASS" if report.passed else "FAIL"
    ax.set_title(f"{Path(report.model).name} ({report.model_type}, {report.dtype}): {verdict}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    try:
        save_figure(fig, Path(path), "plot", dpi=120)
    finally:
        plt.close(fig)
