"""`Encoder`: tokenizer + our model + pooling + L2 normalisation, batched by token budget.

A text's vector depends on that text alone: padding is masked out of attention and out
of the mean, and batches are formed from length-sorted texts only to save work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from . import cpu_streams, single_text_graph
from .cpu_info import cpu_flags, cpu_model
from .cpu_memory import keep_freed_memory
from .errors import BadInput, ModelLoadError, bad_value
from .hashing import sha256_files
from .matryoshka import check_dim, matryoshka_dims
from .model_files import read_json_object
from .models import architecture, linear_path, load_model, read_config, weight_files
from .models import int8 as int8_ops
from .pooling import (  # noqa: F401
    JOIN,
    POOLINGS,
    chosen_pooling,
    default_pooling,
    pool_modes,
    read_pooling_config,
)
from .pooling import pool as pool_states
from .prompts import Prompts
from .resolve import model_name, resolve_model
from .text_checks import check_texts  # noqa: F401 (also searchkit.encoder.check_texts, as before)
from .tokenizer_files import padding_side, with_configured_eos

DTYPES = {
    "fp32": torch.float32,
    "float32": torch.float32,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
}
DTYPE_NAMES = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}
INT8 = "int8"  # fp32 model, int8 projections (models/int8.py); CPU only
FASTEST = "fastest"  # the CPU dtype measured fastest here (dtype_speed.py), fp16 on CUDA: resolved before
# What `trace_single_texts` traces on: any text will do, the graph takes every length.
TRACE_SAMPLE = "how do I open a file and read it line by line"


def pick_device(device: str | None) -> torch.device:
    """'auto' (or None) means CUDA when present, else the CPU."""
    device = (device or "auto").lower()
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise bad_value("device", device, "no CUDA device is available on this machine")
    if not (device == "cpu" or device.startswith("cuda")):
        raise bad_value("device", device, "expected auto, cpu or cuda")
    return torch.device(device)


def pick_dtype(dtype: str | None, device: torch.device) -> torch.dtype:
    """'auto' (or None) means fp32 on the CPU (the parity reference) and fp16 on CUDA.
    ('fastest' is resolved to one of these names before an Encoder is built, by
    `encoder_loading.resolve_dtype`, which times the model: an Encoder never sees it.)"""
    if dtype is None or dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if dtype.lower() == FASTEST:
        raise bad_value("dtype", dtype, "is measured before an Encoder is built: use searchkit.load_encoder "
                        "(or encoder_loading.resolve_dtype) for it")
    if dtype.lower() == INT8:
        if device.type != "cpu":
            raise bad_value("dtype", dtype, "int8 runs on the CPU; on CUDA use fp16 or bf16")
        return torch.float32  # what runs around the int8 products
    try:
        return DTYPES[dtype.lower()]
    except KeyError:
        raise bad_value("dtype", dtype, "expected auto, fastest, fp32, bf16, fp16 or int8") from None


def machine_facts() -> dict:
    """What this machine offers an encoder, and the device and dtype `auto` picks here.

    The CPU's bf16 and VNNI instructions are reported as facts, not as a verdict on speed:
    with the same flags bf16 ran 2.2x fp32 on one host and slower than fp32 on another.
    `dtype_speed` measures; auto stays fp32 on every CPU (the parity reference).
    """
    capability = torch.backends.cpu.get_cpu_capability()
    flags = cpu_flags()
    cuda = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    device = pick_device("auto")
    return {
        "torch": torch.__version__,
        "cpu_model": cpu_model(),
        "cpu_capability": capability,
        "cpu_threads": torch.get_num_threads(),
        "cpu_instructions": sorted(flags & {"avx512_bf16", "amx_bf16", "amx_int8", "avx512_vnni", "avx_vnni"}),
        "cuda_devices": cuda,
        "cuda_bf16": bool(cuda) and torch.cuda.is_bf16_supported(),
        "auto_device": str(device),
        "auto_dtype": DTYPE_NAMES[pick_dtype("auto", device)],
        "cpu_projections": {name: linear_path(torch.device("cpu"), dt)
                            for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16))},
        "cpu_batch_streams": cpu_streams.stream_count(torch.device("cpu")),
    }


def max_length_of(model_dir: Path, cfg: dict) -> int:
    """Longest input in tokens: sentence-transformers' max_seq_length when the folder has
    one, else the model's position limit, capped by the tokenizer's model_max_length."""
    st = read_json_object(model_dir / "sentence_bert_config.json").get("max_seq_length")
    if st:
        return int(st)
    limit = cfg.get("max_position_embeddings") or cfg.get("n_positions") or 512
    tok_max = read_json_object(model_dir / "tokenizer_config.json").get("model_max_length")
    if isinstance(tok_max, (int, float)) and 0 < tok_max < 1_000_000:
        limit = min(limit, int(tok_max))
    return int(limit)


def load_tokenizer(model_dir: Path) -> Tokenizer:
    """tokenizer.json with its fixed padding and truncation switched off (we pad per batch)."""
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        raise ModelLoadError(f"{path}: not found (searchkit reads tokenizers from tokenizer.json)")
    try:
        tok = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception on bad files
        raise ModelLoadError(f"{path}: cannot read ({exc})") from None
    tok.no_padding()
    tok.no_truncation()
    return tok


@dataclass(frozen=True)
class Batch:
    order: np.ndarray  # positions of these texts in the caller's list
    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)


# The `order` of a one-text Batch (`Encoder._embed_one`), made once.
_FIRST = np.zeros(1, dtype=np.int64)
_FIRST.flags.writeable = False


class Encoder:
    """Embeds texts with one of our models.

    >>> enc = Encoder("all-MiniLM-L6-v2")
    >>> enc.encode(["a sentence", "another"]).shape
    (2, 384)
    """

    def __init__(
        self,
        model: str | Path | None = None,
        *,
        device: str | None = "auto",
        dtype: str | None = "auto",
        pooling: str | None = None,
        normalize: bool = True,
        layer: int | None = None,
        max_length: int | None = None,
        batch_tokens: int = 2048,  # measured best on a 2-core AVX-512 CPU (bench/encoder_speed.py)
        query_prompt: str | None = None,
        document_prompt: str | None = None,
        include_prompt: bool | None = None,
        dim: int | None = None,
        prompt_name: str | None = None,
        prompt: str | None = None,
    ):
        """`query_prompt`, `document_prompt`: replace the model's own (prompts.py; "" for
        none); `prompt_name` or `prompt`: what `encode` applies when called without one, in
        place of the model's default prompt; `include_prompt`: whether prompt tokens are
        pooled (default: the model's pooling config); `dim`: keep the first `dim` values of
        each vector, renormalised (Matryoshka; matryoshka.py). `dtype`: a name `pick_dtype`
        takes; "fastest" is resolved before (`searchkit.load_encoder`, encoder_loading.py)."""
        self.path = resolve_model(model)
        self.name = model_name(model, self.path)  # a folder by its absolute path
        self.device = pick_device(device)
        if self.device.type == "cpu":
            keep_freed_memory()  # reuse freed pages across ops (cpu_memory.py)
        self.dtype = pick_dtype(dtype, self.device)
        self.int8 = isinstance(dtype, str) and dtype.lower() == INT8
        self.config = read_config(self.path)
        # Without a pooling asked or declared, the model class's own (Qwen3: the last token).
        model_class = architecture(self.config, source=str(self.path / "config.json")).Model
        chosen = chosen_pooling(self.path, pooling or None, model_class.default_pooling)
        self.pool_modes = pool_modes(chosen.name)  # BadInput naming an unknown one
        self.pooling = JOIN.join(self.pool_modes)
        self.include_prompt = chosen.include_prompt if include_prompt is None else bool(include_prompt)
        self.prompts = Prompts.read(self.path).overridden(query_prompt, document_prompt, prompt_name, prompt)
        self.normalize = normalize
        self.batch_tokens = int(batch_tokens)
        calibration = self._int8_calibration() if self.int8 else None
        self.model = load_model(self.path, self.device, self.dtype, int8=self.int8, calibration=calibration)
        n = self.model.num_hidden_states
        self.layer = self.model.default_layer if layer is None else int(layer)
        if not -n <= self.layer < n:
            raise bad_value("layer", layer, f"this model has hidden states 0..{n - 1}")
        self.max_length = min(max_length or max_length_of(self.path, self.config), self.model.max_positions)
        # EOS appended when tokenizer_config.json asks (decoder embedders pool it).
        self._truncating = with_configured_eos(load_tokenizer(self.path), self.path)
        self._truncating.enable_truncation(self.max_length)
        self.pad_id = self._pad_id()
        self.padding_side = padding_side(self.path)  # "left" for Qwen3-Embedding, as its tokenizer pads
        self.truncate_dim = None if dim is None else check_dim(dim, self.full_dim, self.matryoshka_dims)
        # Single texts on the CPU: "eager" until a graph is traced, then "traced", or why not.
        self.single_text_path = "eager"
        self._graph = None
        self._graph_lock = threading.Lock()
        self._single_texts = 0

    # -- facts about the encoder ---------------------------------------------------------

    @property
    def full_dim(self) -> int:
        """The pooled vector's length before any Matryoshka truncation."""
        return int(self.model.config.hidden_size) * len(self.pool_modes)

    @property
    def dim(self) -> int:
        """The length of the vectors `encode` returns."""
        return self.truncate_dim or self.full_dim

    @cached_property
    def matryoshka_dims(self) -> list[int]:
        """The truncated dimensions the model card lists ([] if none)."""
        return matryoshka_dims(self.path)

    @property
    def query_prompt(self) -> str:
        """What `encode_queries` prepends ("" for nothing)."""
        return self.prompts.query

    @property
    def document_prompt(self) -> str:
        """What `encode_documents` prepends ("" for nothing)."""
        return self.prompts.document

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type"))

    @property
    def dtype_name(self) -> str:
        return INT8 if self.int8 else DTYPE_NAMES[self.dtype]

    @cached_property
    def tokenizer(self) -> Tokenizer:
        """The tokenizer without truncation, which chunking needs (every token of a document).
        Made on first use: a process that only embeds queries never pays its 16 ms load."""
        return with_configured_eos(load_tokenizer(self.path), self.path)

    @property
    def special_tokens(self) -> int:
        """Tokens the tokenizer adds around a text ([CLS] and [SEP] for BERT)."""
        return self._truncating.num_special_tokens_to_add(is_pair=False)

    @property
    def max_content_tokens(self) -> int:
        """How many of a text's own tokens fit in one input after the document prompt: the
        chunk size ceiling."""
        prompt = len(self.tokenizer.encode(self.document_prompt, add_special_tokens=False).ids)
        return self.max_length - self.special_tokens - prompt

    @cached_property
    def weights_sha256(self) -> str:
        return sha256_files(weight_files(self.path))

    def settings(self) -> dict:
        """What an index records so that it refuses a different encoder later."""
        return {
            "model": self.name,
            "model_type": self.model_type,
            "weights_sha256": self.weights_sha256,
            "dim": self.dim,
            "pooling": self.pooling,
            "normalize": self.normalize,
            "layer": self.layer,
            "max_length": self.max_length,
            "dtype": self.dtype_name,
            "query_prompt": self.query_prompt or None,
            "document_prompt": self.document_prompt or None,
            "include_prompt": self.include_prompt,
            "truncate_dim": self.truncate_dim,
        }

    def _int8_calibration(self, tokens: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids of fixed prose (models/int8.py) for finding each projection's loud input
        channels: rows of one length, so no padding takes part."""
        tok = with_configured_eos(load_tokenizer(self.path), self.path)
        tok.enable_truncation(min(tokens, max_length_of(self.path, self.config)))
        rows = [e.ids for e in tok.encode_batch(int8_ops.calibration_texts())]
        T = min(len(r) for r in rows)
        ids = torch.tensor([r[:T] for r in rows])
        return ids, torch.ones_like(ids)

    def _pad_id(self) -> int:
        pad = self.config.get("pad_token_id")
        return int(pad) if isinstance(pad, int) and pad >= 0 else 0

    # -- tokenization and batching ------------------------------------------------------

    def tokenize(self, texts: Sequence[str], what: str = "text") -> list[list[int]]:
        """Token ids with special tokens, truncated to max_length. Every text must be a
        str in valid UTF-8 (BadInput naming it as `what` otherwise, e.g. "query")."""
        return [e.ids for e in self._truncating.encode_batch(check_texts(texts, what))]

    def batches(self, ids: list[list[int]]) -> list[Batch]:
        """Length-sorted batches of at most `batch_tokens` padded tokens each."""
        lengths = np.array([max(len(x), 1) for x in ids])
        order = np.argsort(-lengths, kind="stable")
        out, start = [], 0
        while start < len(order):
            longest = lengths[order[start]]
            size = max(1, min(len(order) - start, self.batch_tokens // longest))
            out.append(self.pad(ids, order[start : start + size]))
            start += size
        return out

    def pad(self, ids: list[list[int]], order: np.ndarray) -> Batch:
        """The rows `order` of `ids`, padded on the tokenizer's side (`padding_side`). Our
        models count positions from the mask, so the side changes no vector; it matters
        for running a reference model on the same batch."""
        rows = [ids[i] or [self.pad_id] for i in order]
        T = max(len(r) for r in rows)
        # Filled in numpy, which takes a list into a slice in one step (a torch.tensor per
        # row was a tenth of a single query's time).
        input_ids = np.full((len(rows), T), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(rows), T), dtype=np.int64)
        for b, row in enumerate(rows):
            span = slice(T - len(row), T) if self.padding_side == "left" else slice(0, len(row))
            input_ids[b, span] = row
            mask[b, span] = 1
        return Batch(order, torch.from_numpy(input_ids), torch.from_numpy(mask))

    # -- the forward pass -----------------------------------------------------------------

    def hidden_states(self, batch: Batch, upto: int | None = None) -> list[torch.Tensor]:
        """Every hidden state of one batch (or up to `upto`), in the model's dtype."""
        with torch.inference_mode():
            return self.model(
                batch.input_ids.to(self.device), batch.attention_mask.to(self.device), upto=upto
            )

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor, prompt_tokens: int = 0) -> torch.Tensor:
        """(B, T, C) -> (B, dim) in fp32: the pooling modes' table (pooling.py) over real
        tokens only, cut to `dim` (Matryoshka), then L2-normalised. `prompt_tokens`: leading
        tokens left out of the pool (`prompt_pool_tokens`)."""
        pooled = pool_states(hidden.float(), attention_mask, self.pool_modes, prompt_tokens)
        if self.truncate_dim is not None:
            pooled = pooled[:, : self.truncate_dim]
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled

    @cached_property
    def _special_ids(self) -> frozenset[int]:
        return frozenset(i for i, tok in self._truncating.get_added_tokens_decoder().items() if tok.special)

    def prompt_pool_tokens(self, prompt: str) -> int:
        """How many leading tokens `pool` leaves out for `prompt`: 0 when the model pools
        its prompt (`include_prompt`, the default). Else, as sentence-transformers counts
        them, the prompt's tokens alone with the tokenizer's leading special token ([CLS])
        and without a trailing one ([SEP], EOS)."""
        if self.include_prompt or not prompt:
            return 0
        ids = self.tokenize([prompt])[0]
        return len(ids) - int(bool(ids) and ids[-1] in self._special_ids)

    def _embed(self, batch: Batch, prompt_tokens: int = 0) -> torch.Tensor:
        """(B, dim) vectors: a single text on the CPU from the traced graph, which pools and
        normalises too, once there is one (single_text_graph.py); else the model, then `pool`."""
        if len(batch.order) == 1 and not prompt_tokens:  # the graph pools every token
            graph = self._single_text_graph(batch.input_ids)
            if graph is not None:
                with torch.inference_mode():
                    return graph(batch.input_ids, batch.attention_mask)
        layer = self.layer % self.model.num_hidden_states
        return self.pool(self.hidden_states(batch, upto=layer)[layer], batch.attention_mask, prompt_tokens)

    def _embed_one(self, ids: list[int], prompt_tokens: int = 0) -> np.ndarray:
        """(1, dim) float32 for one text's token ids, with none of `batches`' bookkeeping
        and the model's output as the array returned. Right after a forward pass has
        evicted the caches, each step of that bookkeeping cost tens of microseconds
        (numbers in single_text_graph.py)."""
        row = torch.tensor([ids or [self.pad_id]])
        vector = self._embed(Batch(_FIRST, row, torch.ones_like(row)), prompt_tokens)
        return np.ascontiguousarray(vector.cpu().numpy(), dtype=np.float32)  # a view when cut to `dim` unnormalised

    def trace_single_texts(self) -> str:
        """Build the graph that single texts run (single_text_graph.py) now, on a fixed text,
        instead of at the second single text: for a session that will embed many queries one
        at a time (the TUI calls it once the model is loaded), so that no query of theirs
        pays the 0.1-0.35 s. Returns `single_text_path` ("traced", or why not)."""
        ids = torch.tensor([self.tokenize([TRACE_SAMPLE])[0]])
        self._single_text_graph(ids, now=True)
        return self.single_text_path

    def _single_text_graph(self, input_ids: torch.Tensor, now: bool = False):
        """The traced forward for one text, built at the second single text this encoder
        embeds (or `now`): a process that embeds one query and exits pays no tracing."""
        if self.single_text_path != "eager" or not single_text_graph.enabled():
            return self._graph
        if not getattr(self.model, "single_text_trace", False):
            self.single_text_path = f"eager ({type(self.model).__name__} branches on the length)"
            return None
        if self.device.type != "cpu":  # where no graph has been checked against eager yet
            self.single_text_path = f"eager (not traced on {self.device.type})"
            return None
        with self._graph_lock:
            self._single_texts += 1
            if (now or self._single_texts == 2) and self.single_text_path == "eager":
                layer = self.layer % self.model.num_hidden_states
                self._graph, self.single_text_path = single_text_graph.build(
                    self.model, layer, input_ids, head=self.pool)
        return self._graph

    def _embed_splitting(self, batch: Batch, prompt_tokens: int = 0) -> list[tuple[np.ndarray, torch.Tensor]]:
        """Embed a batch; when it runs out of memory, halve it and try again."""
        try:
            return [(batch.order, self._embed(batch, prompt_tokens))]
        except (torch.OutOfMemoryError, MemoryError, RuntimeError) as exc:
            if isinstance(exc, RuntimeError) and "memory" not in str(exc).lower():
                raise
            if len(batch.order) == 1:
                raise
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
            half = len(batch.order) // 2
            parts = []
            for sl in (slice(0, half), slice(half, None)):
                sub = Batch(batch.order[sl], batch.input_ids[sl], batch.attention_mask[sl])
                T = int(sub.attention_mask.sum(1).max())
                keep = slice(-T, None) if self.padding_side == "left" else slice(0, T)  # drop padding only
                sub = Batch(sub.order, sub.input_ids[:, keep], sub.attention_mask[:, keep])
                parts += self._embed_splitting(sub, prompt_tokens)
            return parts

    def encode(
        self,
        texts: Sequence[str],
        progress: Callable[[int], None] | None = None,
        *,
        what: str = "text",
        prompt_name: str | None = None,
        prompt: str | None = None,
    ) -> np.ndarray:
        """Vectors for `texts` as float32 (n, dim), L2-normalised unless normalize=False.

        `progress(n)` is called after each batch with the number of texts it held. A text
        that is not valid UTF-8 (a lone surrogate, as Python decodes undecodable bytes of a
        command line) raises BadInput calling it `what` ("text", "query"); nothing is altered.

        `prompt` is prepended to every text (its tokens count toward max_length); or
        `prompt_name` picks one of the model's prompts; with neither, the model's default
        prompt applies if it names one (as sentence-transformers' `encode`). For a search
        use `encode_queries` and `encode_documents`, which pick the roles' prompts.

        >>> enc.encode(["how to open a file"], prompt_name="query").shape
        (1, 384)
        """
        if isinstance(texts, str):
            raise BadInput("encode() takes a list of texts, not one string")
        prompt = self.prompts.resolve(prompt_name, prompt)
        if not len(texts):
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = check_texts(texts, what)  # named as given, before the prompt goes in front
        prompt_tokens = self.prompt_pool_tokens(prompt)
        if len(texts) == 1:  # a query: to the model with none of the batching below
            ids = self._truncating.encode(prompt + texts[0] if prompt else texts[0]).ids
            out = self._embed_one(ids, prompt_tokens)
            if progress is not None:
                progress(1)
            return out
        batches = self.batches(self.tokenize([prompt + t for t in texts] if prompt else texts, what))
        out = np.zeros((len(texts), self.dim), dtype=np.float32)

        def embed(batch: Batch) -> tuple[Batch, list[tuple[np.ndarray, torch.Tensor]]]:
            return batch, self._embed_splitting(batch, prompt_tokens)

        costs = [b.input_ids.numel() for b in batches]  # padded tokens
        streams = cpu_streams.stream_count(self.device)  # a single batch runs here all the same
        for batch, parts in cpu_streams.ordered_map(embed, batches, streams, costs):  # cpu_streams.py
            for order, vectors in parts:
                out[order] = vectors.cpu().numpy()
            if progress is not None:
                progress(len(batch.order))
        return out

    def encode_one(self, text: str) -> np.ndarray:
        """One text's vector, (dim,)."""
        return self.encode([text])[0]

    def encode_queries(self, texts: Sequence[str], progress: Callable[[int], None] | None = None, *,
                       what: str = "query") -> np.ndarray:
        """`encode` with the query prompt (`query_prompt`; none if the model has none).

        >>> enc.encode_queries(["how to open a file"]).shape
        (1, 384)
        """
        return self.encode(texts, progress, what=what, prompt=self.query_prompt)

    def encode_documents(self, texts: Sequence[str], progress: Callable[[int], None] | None = None, *,
                         what: str = "text") -> np.ndarray:
        """`encode` with the document prompt (`document_prompt`; none if the model has none):
        what an ingest embeds chunks with."""
        return self.encode(texts, progress, what=what, prompt=self.document_prompt)
