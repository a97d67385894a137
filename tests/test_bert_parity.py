"""all-MiniLM-L6-v2 against a live transformers forward pass, and the reports' figures."""

import numpy as np
import pytest
import torch

from searchkit.encoder import Encoder
from searchkit.models import linear
from searchkit.parity import compare

transformers = pytest.importorskip("transformers", reason="parity needs transformers (searchkit[parity])")

from tiny_models import EIGHT  # noqa: E402


@pytest.fixture(scope="module")
def reference(minilm):
    return transformers.AutoModel.from_pretrained(str(minilm.path), dtype=torch.float32).eval()


def test_fused_path_is_taken_on_the_cpu(minilm):
    if torch.float32 not in linear._onednn_dtypes():
        pytest.skip("this torch build has no oneDNN")
    batch = minilm.pad(minilm.tokenize(EIGHT), np.arange(len(EIGHT)))
    with torch.profiler.profile() as prof:
        minilm.hidden_states(batch)
    names = [e.name for e in prof.events()]
    # each layer's four projections (the two with the residual add are the op's .binary overload)
    assert names.count("mkldnn::_linear_pointwise") == 4 * 6
    assert "aten::addmm" not in names and "aten::gelu" not in names


@pytest.mark.skipif(torch.float32 not in linear._onednn_dtypes(), reason="no oneDNN fp32 path in this torch")
def test_the_packed_weight_is_made_once_and_follows_the_weight():
    dense = linear.Dense(16, 8, act="gelu").requires_grad_(False)
    x = torch.randn(5, 16)
    with torch.inference_mode():
        first = dense(x)
        packed = dense.packed_weight
        assert packed.is_mkldnn
        dense(x)
        assert dense.packed_weight is packed  # reused, not re-laid out per call
    torch.testing.assert_close(first, torch.nn.functional.gelu(x @ dense.weight.T + dense.bias))
    with torch.no_grad():
        dense.weight.mul_(2)  # an in-place edit must not leave a stale copy behind
    with torch.inference_mode():
        torch.testing.assert_close(dense(x), torch.nn.functional.gelu(x @ dense.weight.T + dense.bias))


def test_a_failing_fused_call_falls_back_to_plain(minilm, monkeypatch):
    batch = minilm.pad(minilm.tokenize(EIGHT), np.arange(len(EIGHT)))
    monkeypatch.setattr(linear, "_onednn_failed", set())
    monkeypatch.setattr(linear, "_onednn_dtypes", lambda: frozenset())
    plain = minilm.hidden_states(batch)[-1]
    monkeypatch.setattr(linear, "_onednn_dtypes", lambda: frozenset({torch.float32}))

    def unsupported(self, x, residual):
        raise RuntimeError("onednn: unsupported post-op")

    monkeypatch.setattr(linear.Dense, "_fused", unsupported)
    assert torch.equal(minilm.hidden_states(batch)[-1], plain)
    assert linear._onednn_failed == {torch.float32}
    assert linear.linear_path(torch.device("cpu"), torch.float32) == "F.linear"


def test_parity_report_passes_and_pooled_cosine(minilm, reference):
    report = compare(minilm, reference=reference)
    assert report.passed
    assert report.pooled_cosine >= 0.999999
    assert [d.name for d in report.layers][0] == "embeddings"
    assert all(d.max_abs <= 1e-5 for d in report.layers)


def test_this_is_a_test_matches_the_published_numbers(minilm):
    batch = minilm.pad(minilm.tokenize(["this is a test"]), np.arange(1))
    last = minilm.hidden_states(batch)[-1]
    assert tuple(last.shape) == (1, 6, 384)
    np.testing.assert_allclose(last[0, 0, :3].numpy(), [-0.0058, -0.1078, -0.0312], atol=1e-4)
    np.testing.assert_allclose(last[0, 0, -3:].numpy(), [-0.1729, -0.0137, -0.2952], atol=1e-4)


def test_eight_sentences_top_pairs_with_padding_aware_mean(minilm):
    v = minilm.encode(EIGHT)
    sims = v @ v.T
    top = sorted((sims[i, j] for i in range(8) for j in range(i + 1, 8)), reverse=True)[:5]
    np.testing.assert_allclose(top, [0.89, 0.68, 0.51, 0.26, 0.24], atol=0.006)


def test_matches_sentence_transformers_pooling_definition(minilm, reference):
    """Padding-aware mean of transformers' last hidden state, normalised = our vector."""
    texts = EIGHT
    tok = minilm._truncating
    out = []
    for t in texts:
        ids = torch.tensor([tok.encode(t).ids])
        with torch.inference_mode():
            h = reference(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state[0]
        out.append(torch.nn.functional.normalize(h.mean(0), dim=-1).numpy())
    ours = minilm.encode(texts)
    cos = (np.stack(out) * ours).sum(1)
    assert cos.min() >= 0.999999


def test_cls_pooling_and_no_normalize(minilm):
    enc = Encoder("all-MiniLM-L6-v2", device="cpu", dtype="fp32", pooling="cls", normalize=False)
    batch = enc.pad(enc.tokenize(["this is a test"]), np.arange(1))
    cls = enc.hidden_states(batch)[-1][0, 0].numpy()
    np.testing.assert_allclose(enc.encode(["this is a test"])[0], cls, atol=1e-6)
    assert abs(np.linalg.norm(cls) - 1) > 0.1  # really not normalised
