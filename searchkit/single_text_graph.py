"""The model's forward for one text at a time on the CPU, traced into a graph once per process.

A short query costs little arithmetic, and eager PyTorch adds Python to every step: module
calls, our dispatch logic, and for int8 about 17 small tensor ops per projection (quantise,
multiply, rescale), each through the dispatcher. TorchScript's tracer records the ops of one
call and `torch.jit.freeze` folds the weights in; the graph then runs them without Python.
Measured on all-MiniLM-L6-v2, 200 SciFact claims one at a time, p50 of the whole `encode`,
the two encoders taking turns (2-core AMD EPYC, 2026-12-06, /tmp scripts), with the same
vectors bit for bit: int8 eager 5.26 ms, traced 3.87; fp32 5.40 against 4.40; bf16 3.90
against 3.00. (`torch.compile` reached 3.39 ms for the int8 forward alone after 46 s of
compiling, and changed int8 roundings; tracing takes 0.1-0.35 s.)

The encoder puts its pooling and normalisation into the graph too (`head`). What a single
text spends outside the forward is Python and numpy running on caches the forward has just
flushed, where each eager op and each step costs tens of microseconds. With the one-row
batch built without numpy (now `Encoder._embed_one`), this took 0.11-0.14 ms off each query,
vectors bit for bit the same: `encode` p50 over 300 SciFact claims, the previous flow and
this one taking turns query by query in one process (2-core AMD EPYC, 2026-12-06, /tmp
script): bf16 2.56 -> 2.44 and 3.16 -> 3.02 ms (two runs), int8 4.07 -> 3.94 ms, fp32 4.38
-> 4.27 ms. `encode` then took one text straight to the model, past the batching (the
length sort, the streams of cpu_streams.py) and with the tokenizer's `encode` rather than
`encode_batch`: 3-4% less again, vectors the same, in a paired A/B (each query run by both
flows, their order alternating, as bench/single_text_ab.py now does; 300 claims, three
rounds, 2-core AMD EPYC, 2026-12-06):
bf16 3.31 -> 3.17, int8 3.61 -> 3.47, fp32 4.70 -> 4.61 ms in the first round. The ids then
went to the model with no `batches()` call, and its output became the returned array
(`Encoder._embed_one`): about 1% less, B/A 0.979-1.011 with eight rounds of nine below 1.0
(same A/B, a later session that day). Measured step by step right after a forward, with the
caches cold as they are for every query: tokenizing a claim took 107-126 us (33 us warm;
`encode_batch_fast` no less cold), the one-row batch 71 us (7 warm), the output array 18 us
and the copy into it 40 us. Texts whose pooling leaves a prompt out (`include_prompt:
false`) run eager, as the graph pools every token.

fp32 and bf16 run their projections as oneDNN-fused calls on packed weights. Two things
let the tracer record them: the packed weight is a buffer of its module, so the graph reads
it from there (a oneDNN tensor cannot be a graph constant), and the fused call with an
activation goes through a TorchScript function (the tracer cannot record its empty scalar
list). Both live in models/linear.py.

Python branches are taken once, at trace time. The graph is traced on one unpadded text,
which is what every single text is, so the branches on padding masks are the ones a single
text takes anyway; a model class whose forward branches on the length says so
(`single_text_trace = False`: ModernBERT's local window mask) and is not traced. As a second
guard `build` checks the graph against the eager model at two lengths, bit for bit, and gives
up (the encoder stays eager) if it differs or if tracing fails. That check caught a real
difference in a trial of another int8 product: TorchScript runs an out-of-place `addmm`
with a bias as mm + add, which rounds differently, so model code that must trace uses the
in-place form. TorchScript is deprecated in favour of torch.compile; where a torch has
dropped it, the same fallback applies.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable

import torch

TRACE_ENV = "SEARCHKIT_TRACE"  # "0": single texts run eager too (A/B benchmarks, debugging)

Forward = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (input_ids, attention_mask) -> output
Head = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (hidden, attention_mask) -> vector


def enabled() -> bool:
    return os.environ.get(TRACE_ENV, "1") != "0"


class _SingleText(torch.nn.Module):
    """The model's hidden state number `layer`, and then `head` on it (the encoder's pooling
    and normalisation) if given: what a single text's vector is made of."""

    def __init__(self, model: torch.nn.Module, layer: int, head: Head | None = None):
        super().__init__()
        self.model = model
        self.layer = layer
        self.head = head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.model(input_ids, attention_mask, upto=self.layer)[self.layer]
        return hidden if self.head is None else self.head(hidden, attention_mask)


def build(model: torch.nn.Module, layer: int, input_ids: torch.Tensor,
          head: Head | None = None) -> tuple[Forward | None, str]:
    """A traced forward for (1, T) unpadded inputs, checked against the model itself on
    `input_ids` and on a second length made from it; (None, why) when there is none. It
    returns hidden state `layer`, or with `head` what `head(hidden, mask)` makes of it."""
    if input_ids.shape[0] != 1:
        return None, "traced on one text only"
    other = input_ids[:, :-1] if input_ids.shape[1] > 1 else input_ids.repeat(1, 2)
    try:
        with warnings.catch_warnings():
            # The tracer warns about every Python int it sees and torch.jit about its own
            # deprecation; the check below is what decides.
            warnings.simplefilter("ignore")
            with torch.no_grad():
                module = _SingleText(model, layer, head).eval()
                mask = torch.ones_like(input_ids)
                # One eager pass first, so that the trace records the model as it runs from
                # then on, not its first call: what is made once on first use (the packed
                # weights, the oneDNN dtype probe) is made here, outside the tracer.
                module(input_ids, mask)
                graph = torch.jit.freeze(torch.jit.trace(module, (input_ids, mask), check_trace=False))
            with torch.inference_mode():
                for ids in (input_ids, other):
                    m = torch.ones_like(ids)
                    if not torch.equal(graph(ids, m), module(ids, m)):
                        return None, f"the traced graph differs from the model at {ids.shape[1]} tokens"
    except Exception as exc:  # any failure to trace leaves the eager path, which works
        return None, f"tracing failed ({type(exc).__name__}: {exc})"
    return graph, "traced"
