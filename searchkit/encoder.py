"""`Encoder`: tokenizer + our model + pooling + L2 normalisation, batched by token budget.

A text's vector depends on that text alone: padding is masked out of attention and out
of the mean, and batches are formed from length-sorted texts only to save work.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from tokenizers import Tokenizer

from .dtype_speed import cpu_model
from .errors import BadInput, ModelLoadError, bad_value
from .hashing import sha256_files
from .models import load_model, read_config, weight_files
from .models._common import linear_path
from .resolve import DEFAULT_MODEL, resolve_model

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
FASTEST = "fastest"  # the CPU dtype measured fastest here (dtype_speed.py); fp16 on CUDA
POOLINGS = ("mean", "cls")


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
    ('fastest' is resolved to a name by the Encoder, which knows the model to time.)"""
    if dtype is None or dtype == "auto" or dtype == FASTEST and device.type == "cuda":
        return torch.float16 if device.type == "cuda" else torch.float32
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
    flags = _cpu_flags()
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
    }


def _cpu_flags() -> set[str]:
    """The CPU feature flags Linux reports (empty elsewhere)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: cannot read ({exc})") from None


def max_length_of(model_dir: Path, cfg: dict) -> int:
    """Longest input in tokens: sentence-transformers' max_seq_length when the folder has
    one, else the model's position limit, capped by the tokenizer's model_max_length."""
    st = _read_json(model_dir / "sentence_bert_config.json").get("max_seq_length")
    if st:
        return int(st)
    limit = cfg.get("max_position_embeddings") or cfg.get("n_positions") or 512
    tok_max = _read_json(model_dir / "tokenizer_config.json").get("model_max_length")
    if isinstance(tok_max, (int, float)) and 0 < tok_max < 1_000_000:
        limit = min(limit, int(tok_max))
    return int(limit)


def default_pooling(model_dir: Path) -> str:
    """The pooling a sentence-transformers folder declares (1_Pooling/config.json), else mean."""
    cfg = _read_json(model_dir / "1_Pooling" / "config.json")
    if cfg.get("pooling_mode_cls_token"):
        return "cls"
    return "mean"


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


def _shown(text: str, at: int = 0, width: int = 30) -> str:
    """`text` quoted for a one-line message, around character `at`: undecodable bytes (the
    surrogate escapes Python gives them, as in a non-UTF-8 command line) as \\xNN, other
    lone surrogates as \\uNNNN, control characters and backslashes as repr() writes them."""
    start, end = max(0, at - width), min(len(text), at + width)
    out = []
    for ch in text[start:end]:
        o = ord(ch)
        if 0xDC80 <= o <= 0xDCFF:
            out.append(f"\\x{o - 0xDC00:02x}")
        elif 0xD800 <= o <= 0xDFFF:
            out.append(f"\\u{o:04x}")
        else:
            out.append(ch if ch.isprintable() and ch != "\\" else repr(ch)[1:-1])
    return f"'{'…' if start else ''}{''.join(out)}{'…' if end < len(text) else ''}'"


def check_texts(texts: Sequence[str], what: str = "text") -> list[str]:
    """`texts` as a list, each checked to be a string the tokenizer can take: a str that is
    valid UTF-8 (no lone surrogates). Raises BadInput naming the first bad one."""
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            kind = type(text).__name__
            raise BadInput(f"{what} {i + 1} is {kind}, not str" + (": decode it first" if kind == "bytes" else ""))
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as exc:
                o = ord(text[exc.start])
                bad = f"byte 0x{o - 0xDC00:02x}" if 0xDC80 <= o <= 0xDCFF else f"lone surrogate U+{o:04X}"
                raise BadInput(f"{what} {_shown(text, exc.start)} is not valid UTF-8 "
                               f"({bad} at character {exc.start + 1})") from None
    return texts


@dataclass(frozen=True)
class Batch:
    order: np.ndarray  # positions of these texts in the caller's list
    input_ids: torch.Tensor  # (B, T)
    attention_mask: torch.Tensor  # (B, T)


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
    ):
        self.path = resolve_model(model)
        # A folder is recorded by its absolute path, so the index finds it from anywhere.
        is_folder = model is not None and Path(str(model)).expanduser().exists()
        self.name = str(self.path) if is_folder else str(model or DEFAULT_MODEL)
        self.device = pick_device(device)
        if isinstance(dtype, str) and dtype.lower() == FASTEST and self.device.type == "cpu":
            from .dtype_speed import fastest, measured

            dtype = fastest(measured(self.name))
        self.dtype = pick_dtype(dtype, self.device)
        self.int8 = isinstance(dtype, str) and dtype.lower() == INT8
        self.config = read_config(self.path)
        self.pooling = (pooling or default_pooling(self.path)).lower()
        if self.pooling not in POOLINGS:
            raise bad_value("pooling", pooling, f"expected one of {', '.join(POOLINGS)}")
        self.normalize = normalize
        self.batch_tokens = int(batch_tokens)
        self.model = load_model(self.path, self.device, self.dtype, int8=self.int8)
        n = self.model.num_hidden_states
        self.layer = self.model.default_layer if layer is None else int(layer)
        if not -n <= self.layer < n:
            raise bad_value("layer", layer, f"this model has hidden states 0..{n - 1}")
        self.max_length = min(max_length or max_length_of(self.path, self.config), self.model.max_positions)
        self.tokenizer = load_tokenizer(self.path)  # no truncation: chunking needs every token
        self._truncating = load_tokenizer(self.path)
        self._truncating.enable_truncation(self.max_length)
        self.pad_id = self._pad_id()

    # -- facts about the encoder ---------------------------------------------------------

    @property
    def dim(self) -> int:
        return int(self.model.config.hidden_size)

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type"))

    @property
    def dtype_name(self) -> str:
        return INT8 if self.int8 else DTYPE_NAMES[self.dtype]

    @property
    def special_tokens(self) -> int:
        """Tokens the tokenizer adds around a text ([CLS] and [SEP] for BERT)."""
        return self._truncating.num_special_tokens_to_add(is_pair=False)

    @property
    def max_content_tokens(self) -> int:
        """How many of a text's own tokens fit in one input: the chunk size ceiling."""
        return self.max_length - self.special_tokens

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
        }

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
            out.append(self._pad(ids, order[start : start + size]))
            start += size
        return out

    def _pad(self, ids: list[list[int]], order: np.ndarray) -> Batch:
        rows = [ids[i] or [self.pad_id] for i in order]
        T = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), T), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), T), dtype=torch.long)
        for b, row in enumerate(rows):
            input_ids[b, : len(row)] = torch.tensor(row)
            mask[b, : len(row)] = 1
        return Batch(order, input_ids, mask)

    # -- the forward pass -----------------------------------------------------------------

    def hidden_states(self, batch: Batch, upto: int | None = None) -> list[torch.Tensor]:
        """Every hidden state of one batch (or up to `upto`), in the model's dtype."""
        with torch.inference_mode():
            return self.model(
                batch.input_ids.to(self.device), batch.attention_mask.to(self.device), upto=upto
            )

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, T, C) -> (B, C) in fp32; the mean counts real tokens only."""
        hidden = hidden.float()
        if self.pooling == "cls":
            pooled = hidden[:, 0]
        else:
            mask = attention_mask.to(hidden.device, hidden.dtype).unsqueeze(-1)  # (B, T, 1)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled

    def _embed(self, batch: Batch) -> torch.Tensor:
        n = self.model.num_hidden_states
        layer = self.layer % n
        hidden = self.hidden_states(batch, upto=layer)[layer]
        return self.pool(hidden, batch.attention_mask)

    def _embed_splitting(self, batch: Batch) -> list[tuple[np.ndarray, torch.Tensor]]:
        """Embed a batch; when it runs out of memory, halve it and try again."""
        try:
            return [(batch.order, self._embed(batch))]
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
                sub = Batch(sub.order, sub.input_ids[:, :T], sub.attention_mask[:, :T])
                parts += self._embed_splitting(sub)
            return parts

    def encode(
        self,
        texts: Sequence[str],
        progress: Callable[[int], None] | None = None,
        *,
        what: str = "text",
    ) -> np.ndarray:
        """Vectors for `texts` as float32 (n, dim), L2-normalised unless normalize=False.

        `progress(n)` is called after each batch with the number of texts it held. A text
        that is not valid UTF-8 (a lone surrogate, as Python decodes undecodable bytes of a
        command line) raises BadInput calling it `what` ("text", "query"); nothing is altered.
        """
        if isinstance(texts, str):
            raise BadInput("encode() takes a list of texts, not one string")
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not len(texts):
            return out
        for batch in self.batches(self.tokenize(texts, what)):
            for order, vectors in self._embed_splitting(batch):
                out[order] = vectors.cpu().numpy()
            if progress is not None:
                progress(len(batch.order))
        return out

    def encode_one(self, text: str) -> np.ndarray:
        """One text's vector, (dim,)."""
        return self.encode([text])[0]


def load_encoder(model: str | Path | None = None, **kwargs) -> Encoder:
    """Load an encoder by name or folder.

    >>> enc = searchkit.load_encoder("all-MiniLM-L6-v2", device="cpu", dtype="fp32", pooling="mean")
    >>> enc.encode(["a sentence"]).shape
    (1, 384)
    """
    return Encoder(model, **kwargs)
