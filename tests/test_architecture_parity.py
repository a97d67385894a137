"""Every architecture against a live transformers forward pass, in one table: every hidden
state on a padded batch (eager and sdpa, each padding side the model is used with, both
linear paths), batch mates, padding side, pooled vectors, sentence-transformers and the
`parity` command. Each architecture's own checks (windows, GQA, rotary, quirks) stay in
its file (test_bert_parity.py, test_modernbert.py, test_gpt2.py, test_xlm_roberta.py,
test_qwen3.py)."""

import json
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
transformers = pytest.importorskip(
    "transformers", reason="parity tests need transformers (pip install 'searchkit[parity]')"
)

from index_helpers import invoke  # noqa: E402
from tiny_models import (  # noqa: E402
    EIGHT,
    TEXTS,
    encode,
    long_text,
    make_gpt2,
    make_modernbert,
    make_qwen3,
    make_xlm_roberta,
    max_diff,
    minilm_folder,
    reference_hidden_states,
)

from searchkit.encoder import Encoder  # noqa: E402
from searchkit.models import linear, load_model  # noqa: E402
from searchkit.parity import DEFAULT_TEXTS  # noqa: E402


@dataclass(frozen=True)
class Arch:
    name: str
    factory: Callable  # folder -> checkpoint folder (tiny_models)
    transformers_class: str  # the reference, e.g. "GPT2Model"
    tol: float  # fp32, every hidden state, real tokens only
    pad: int  # the pad id used to build batches (any id works under the mask)
    sides: tuple  # padding sides checked against transformers and for batch mates
    max_length: int  # tokens kept of each text
    short_texts: tuple  # the batch is short_texts + long_tail
    long_tail: tuple
    hidden_states: int  # embeddings + layers
    width: int
    positions: bool = False  # give transformers our position ids (its default shifts left padding)
    longest: int | None = None  # the batch's padded length, checked, with a text under 10 tokens
    zero_padding: bool = False  # padded positions come back as zeros (unpadded computation)
    pooled_texts: tuple = ()  # Encoder vectors alone = in a batch (<1e-6)
    st_tol: float | None = None  # pooled vectors against sentence-transformers: max |Δ|
    st_cos: float | None = None  # ... and the least cosine
    st_padding_side: str | None = None  # sentence-transformers' tokenizer pads on this side
    parity_dtypes: tuple = ()  # `searchkit parity --dtype` runs that must pass
    parity_scaled: bool = False  # non-fp32 tolerance scaled by the largest layer scale

    @property
    def texts(self):
        return list(self.short_texts + self.long_tail)


TINY = dict(short_texts=tuple(TEXTS), long_tail=(long_text(),), width=64, tol=1e-5)
ARCHS = [
    Arch("bert", minilm_folder, "BertModel", pad=0, sides=("right",), max_length=256,
         short_texts=tuple(EIGHT), long_tail=tuple(DEFAULT_TEXTS), hidden_states=7, width=384, tol=1e-5,
         pooled_texts=tuple(EIGHT)),
    Arch("modernbert", make_modernbert, "ModernBertModel", pad=3, sides=("right",), max_length=300,
         hidden_states=7, longest=300, zero_padding=True, **TINY),
    Arch("gpt2", make_gpt2, "GPT2Model", pad=0, sides=("right", "left"), max_length=300,
         hidden_states=5, positions=True, **TINY),
    Arch("xlm-roberta", make_xlm_roberta, "XLMRobertaModel", pad=1, sides=("right", "left"), max_length=500,
         hidden_states=5, longest=500, pooled_texts=(*TEXTS, long_text(), "Ein kurzer Satz."),
         st_tol=1e-6, parity_dtypes=("fp32", "int8"), **TINY),
    Arch("qwen3", make_qwen3, "Qwen3Model", pad=0, sides=("left", "right"), max_length=500,
         hidden_states=5, positions=True, longest=500, pooled_texts=(*TEXTS, long_text(), "Short."),
         st_tol=1e-5, st_cos=0.999999, st_padding_side="left", parity_dtypes=("fp32", "bf16", "int8"),
         parity_scaled=True, **TINY),
]


def _ids(arch):
    return arch.name


SIDES = [pytest.param(a, s, id=f"{a.name}-{s}") for a in ARCHS for s in a.sides]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """arch -> (folder, our model), each built and loaded once."""
    cache = {}

    def get(arch):
        if arch.name not in cache:
            folder = arch.factory(tmp_path_factory.mktemp(arch.name))
            cache[arch.name] = folder, load_model(folder)
        return cache[arch.name]

    return get


@pytest.fixture(scope="module")
def encoder(built):
    """arch -> Encoder(folder, device="cpu") (fp32), loaded once."""
    cache = {}

    def get(arch):
        if arch.name not in cache:
            cache[arch.name] = Encoder(built(arch)[0], device="cpu")
        return cache[arch.name]

    return get


@pytest.fixture(params=["fused", "plain"])
def linear_path(request, monkeypatch):
    """Both paths of models.linear.Dense: oneDNN-fused (the default on CPUs that have
    it) and plain F.linear (elsewhere, or SEARCHKIT_ONEDNN=0)."""
    if request.param == "plain":
        monkeypatch.setattr(linear, "_onednn_dtypes", lambda: frozenset())
    elif torch.float32 not in linear._onednn_dtypes():
        pytest.skip("this torch build has no oneDNN")
    return request.param


def batch(arch, folder, side, texts=None):
    """The arch's texts, padded on `side`; mixed lengths, so padding is exercised."""
    ids, mask = encode(folder, texts or arch.texts, arch.pad, side=side, max_length=arch.max_length)
    if texts is None:
        assert len(set(mask.sum(1).tolist())) > 3
        if arch.longest is not None:
            assert ids.shape[1] == arch.longest and mask.sum(1).min() < 10
    return ids, mask


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("arch, side", SIDES)
def test_every_hidden_state_matches_transformers(built, arch, side, impl, linear_path):
    folder, ours = built(arch)
    ids, mask = batch(arch, folder, side)
    with torch.no_grad():
        hidden = ours(ids, mask)
    cls = getattr(transformers, arch.transformers_class)
    ref = reference_hidden_states(cls, folder, ids, mask, impl, positions=arch.positions)
    diffs = max_diff(hidden, ref, mask)
    assert max(diffs) <= arch.tol, diffs
    assert len(hidden) == ours.num_hidden_states == arch.hidden_states
    assert all(h.shape == (*ids.shape, arch.width) for h in hidden)


@pytest.mark.parametrize("arch, side", SIDES)
def test_batch_mates_do_not_change_a_text(built, arch, side):
    """A text alone = the same text beside a long one (row 0), and in the full batch (row 1)."""
    folder, ours = built(arch)
    text = arch.short_texts[1]
    alone_ids, alone_mask = encode(folder, [text], arch.pad, max_length=arch.max_length)
    pair = encode(folder, [text, long_text()], arch.pad, side=side, max_length=arch.max_length)
    with torch.no_grad():
        alone = ours(alone_ids, alone_mask)
        for (ids, mask), row in ((pair, 0), (batch(arch, folder, side), 1)):
            together = ours(ids, mask)
            for a, b in zip(alone, together):
                assert (a[0] - b[row][mask[row].bool()]).abs().max() <= arch.tol
                if arch.zero_padding:
                    assert not b[~mask.bool()].any()  # padding comes back as zeros


@pytest.mark.parametrize("arch", ARCHS, ids=_ids)
def test_padding_side_does_not_matter(built, arch):
    folder, ours = built(arch)
    for texts in (list(arch.short_texts), arch.texts):
        (ri, rm), (li, lm) = batch(arch, folder, "right", texts), batch(arch, folder, "left", texts)
        with torch.no_grad():
            right, left = ours(ri, rm), ours(li, lm)
        for a, b in zip(right, left):
            assert (a[rm.bool()] - b[lm.bool()]).abs().max() <= arch.tol


@pytest.mark.parametrize("arch", [a for a in ARCHS if a.pooled_texts], ids=_ids)
def test_pooled_vectors_do_not_depend_on_batch_mates(encoder, arch):
    enc = encoder(arch)
    texts = list(arch.pooled_texts)
    alone = np.stack([enc.encode([t])[0] for t in texts])
    together = enc.encode(texts)
    with_long = enc.encode(texts + [DEFAULT_TEXTS[-1]])[: len(texts)]
    assert np.abs(alone - together).max() < 1e-6
    assert np.abs(alone - with_long).max() < 1e-6


@pytest.mark.parametrize("arch", [a for a in ARCHS if a.st_tol is not None], ids=_ids)
def test_pooled_vectors_match_sentence_transformers(built, encoder, arch):
    st = pytest.importorskip("sentence_transformers")
    model = st.SentenceTransformer(str(built(arch)[0]), device="cpu")
    if arch.st_padding_side:
        assert model.tokenizer.padding_side == arch.st_padding_side
    texts = list(arch.short_texts) + [long_text(), long_text(600)]
    ref = model.encode(texts, batch_size=2)
    got = encoder(arch).encode(texts)
    assert got.shape == ref.shape == (5, arch.width)
    assert np.abs(got - ref).max() <= arch.st_tol
    if arch.st_cos is not None:  # Qwen3: sentence-transformers runs transformers' default positions
        assert (got * ref).sum(1).min() >= arch.st_cos


@pytest.mark.parametrize(
    "arch, dtype", [pytest.param(a, d, id=f"{a.name}-{d}") for a in ARCHS for d in a.parity_dtypes]
)
def test_parity_command_passes(built, arch, dtype):
    texts = [t for text in arch.texts for t in ("--text", text)]
    result = invoke("parity", "--model", built(arch)[0], "--dtype", dtype, "--json", *texts)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] and report["model_type"] == arch.name and report["tokens"] > 500
    worst = max(layer["max_abs"] for layer in report["layers"])
    if dtype == "fp32":
        assert worst <= arch.tol
    else:  # rounded or quantised: looser than fp32, within the dtype's stated tolerance
        allowed = report["tolerance"]["max_abs"]
        if arch.parity_scaled:
            allowed *= max(1.0, max(d["scale"] for d in report["layers"]))
        assert 1e-4 < worst <= allowed
