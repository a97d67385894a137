"""Single texts on the CPU run a traced graph of the model (single_text_graph.py), which must
give the eager model's vectors bit for bit, and must not be used where it could not."""

import numpy as np
import pytest
import torch
from tiny_models import TEXTS, long_text, make_gpt2, make_modernbert, make_qwen3, make_xlm_roberta

from searchkit import single_text_graph
from searchkit.encoder import Encoder
from searchkit.models import linear, linear_path

TEXTS_OF_EVERY_LENGTH = TEXTS + ["", "a", long_text(400), long_text()]


def one_at_a_time(encoder: Encoder) -> np.ndarray:
    return np.stack([encoder.encode([t])[0] for t in TEXTS_OF_EVERY_LENGTH])


def eager_and_traced(folder, monkeypatch, dtype: str = "int8") -> tuple[np.ndarray, np.ndarray, Encoder]:
    monkeypatch.setenv(single_text_graph.TRACE_ENV, "0")
    eager = one_at_a_time(Encoder(folder, device="cpu", dtype=dtype))
    monkeypatch.delenv(single_text_graph.TRACE_ENV)
    encoder = Encoder(folder, device="cpu", dtype=dtype)
    return eager, one_at_a_time(encoder), encoder


@pytest.mark.parametrize("dtype", ["int8", "fp32", "bf16"])
def test_minilm_single_texts_run_traced_with_the_same_vectors(monkeypatch, dtype):
    eager, traced, encoder = eager_and_traced("all-MiniLM-L6-v2", monkeypatch, dtype)
    assert encoder.single_text_path == "traced" and encoder._graph is not None
    assert np.array_equal(eager, traced)
    # A batch still runs eager, and agrees with the texts alone (int8: test_int8.py).
    together = encoder.encode(TEXTS_OF_EVERY_LENGTH)
    assert float((together * traced).sum(1).min()) > 0.9999


def test_a_session_can_trace_before_its_first_query(monkeypatch):
    """The TUI traces once the model is loaded, so no query waits for it; the graph then
    serves every single text, with the eager vectors."""
    encoder = Encoder("all-MiniLM-L6-v2", device="cpu")
    assert encoder.trace_single_texts() == "traced"
    graph = encoder._graph
    traced = one_at_a_time(encoder)
    assert encoder._graph is graph  # built once, not again at the second text
    monkeypatch.setenv(single_text_graph.TRACE_ENV, "0")
    assert np.array_equal(traced, one_at_a_time(Encoder("all-MiniLM-L6-v2", device="cpu")))


def test_the_graph_pools_and_normalises_too(monkeypatch):
    """A single text's vector comes out of the graph whole: no eager op runs after it."""
    monkeypatch.setenv(single_text_graph.TRACE_ENV, "0")
    eager = one_at_a_time(Encoder("all-MiniLM-L6-v2", device="cpu", dim=128))
    monkeypatch.delenv(single_text_graph.TRACE_ENV)
    encoder = Encoder("all-MiniLM-L6-v2", device="cpu", dim=128)
    assert encoder.trace_single_texts() == "traced"

    def no_eager_pooling(*args, **kwargs):
        raise AssertionError("pooled eagerly")

    monkeypatch.setattr(encoder, "pool", no_eager_pooling)
    traced = one_at_a_time(encoder)
    assert traced.shape == (len(TEXTS_OF_EVERY_LENGTH), 128)  # Matryoshka cut inside the graph
    assert np.allclose(np.linalg.norm(traced, axis=1), 1.0, atol=1e-6)
    assert np.array_equal(traced, eager)


def test_fused_fp32_projections_are_traced_from_their_packed_weights(minilm):
    """The oneDNN-fused calls, with their packed weights read from the module, are in the
    graph: tracing has not fallen back to plain products."""
    if linear_path(torch.device("cpu"), torch.float32) != "oneDNN-fused":
        pytest.skip("this torch has no oneDNN-fused fp32 path")
    for text in TEXTS[:3]:
        minilm.encode([text])
    kinds = [node.kind() for node in minilm._graph.graph.nodes()]
    assert kinds.count("mkldnn::_linear_pointwise") + kinds.count("mkldnn::_linear_pointwise.binary") == 24


def test_tracing_before_any_eager_text_keeps_the_fused_projections():
    """The TUI traces as soon as its model is loaded. The oneDNN probe cannot run inside a
    trace; asked there first, it once answered "none" for the whole process, so the graph and
    every later batch ran plain F.linear."""
    if linear_path(torch.device("cpu"), torch.float32) != "oneDNN-fused":
        pytest.skip("this torch has no oneDNN-fused fp32 path")
    linear._probe_onednn_dtypes.cache_clear()
    encoder = Encoder("all-MiniLM-L6-v2", device="cpu")
    assert linear._probe_onednn_dtypes.cache_info().currsize == 0  # nothing has asked yet
    assert encoder.trace_single_texts() == "traced"
    kinds = [node.kind() for node in encoder._graph.graph.nodes()]
    assert kinds.count("mkldnn::_linear_pointwise") + kinds.count("mkldnn::_linear_pointwise.binary") == 24
    assert torch.float32 in linear._onednn_dtypes()  # batches stay fused too


def test_the_onednn_probe_is_not_answered_inside_a_trace():
    linear._probe_onednn_dtypes.cache_clear()
    answers = []
    with torch.no_grad():
        torch.jit.trace(lambda x: (answers.append(linear._onednn_dtypes()), x * 2)[1], (torch.ones(2),),
                        check_trace=False)
    assert answers == [frozenset()] and linear._probe_onednn_dtypes.cache_info().currsize == 0
    assert linear._onednn_dtypes() == linear._probe_onednn_dtypes()  # asked outside, it runs


@pytest.mark.parametrize("dtype", ["int8", "fp32"])
@pytest.mark.parametrize("make", [make_gpt2, make_xlm_roberta, make_qwen3], ids=["gpt2", "xlm-roberta", "qwen3"])
def test_other_architectures_trace_with_the_same_vectors(tmp_path, monkeypatch, make, dtype):
    eager, traced, encoder = eager_and_traced(make(tmp_path / "model"), monkeypatch, dtype)
    assert encoder.single_text_path == "traced"
    assert np.array_equal(eager, traced)


def test_modernbert_stays_eager_because_its_masks_depend_on_the_length(tmp_path, monkeypatch):
    eager, traced, encoder = eager_and_traced(make_modernbert(tmp_path / "model"), monkeypatch)
    assert encoder.single_text_path.startswith("eager (ModernBertModel branches on the length")
    assert encoder._graph is None and np.array_equal(eager, traced)


def test_cuda_is_not_traced(monkeypatch):
    """The graph has only been checked on the CPU; elsewhere single texts stay eager."""
    encoder = Encoder("all-MiniLM-L6-v2", device="cpu")
    monkeypatch.setattr(encoder, "device", torch.device("cuda"))  # what the choice reads
    ids = torch.tensor(encoder.tokenize(TEXTS[:1]))
    for _ in range(3):
        assert encoder._single_text_graph(ids) is None
    assert encoder.single_text_path == "eager (not traced on cuda)" and encoder._graph is None


class BakesTheLength(torch.nn.Module):
    """A model whose output uses a Python int made from the input's length: a trace keeps
    the traced length as a constant."""

    def forward(self, input_ids, attention_mask, upto=None):
        return [input_ids.float() * 0 + int(input_ids.shape[1])]


class CannotBeTraced(torch.nn.Module):
    def forward(self, input_ids, attention_mask, upto=None):
        if torch.jit.is_tracing():
            raise RuntimeError("no tracing here")
        return [input_ids.float()]


def test_a_graph_that_differs_from_the_model_is_refused():
    model = BakesTheLength()
    graph, why = single_text_graph.build(model, 0, torch.ones(1, 7, dtype=torch.long))
    assert graph is None and why == "the traced graph differs from the model at 6 tokens"


def test_a_model_that_cannot_be_traced_stays_eager():
    model = CannotBeTraced()
    graph, why = single_text_graph.build(model, 0, torch.ones(1, 5, dtype=torch.long))
    assert graph is None and why.startswith("tracing failed (RuntimeError: no tracing here")
