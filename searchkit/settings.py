"""What an index was built with, as one typed record: the encoder, the chunking, the vector
index, the format and the counters a commit moves on.

The catalog stores it as key/value rows (`Catalog.settings`); `IndexSettings.from_stored`
reads them, refusing a format newer than this searchkit reads, and `to_stored` writes
them back. Keys it does not know are kept as they are (`extra`), so an older searchkit
opening a newer index's settings loses nothing it rewrites.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import IndexCorrupt, ModelMismatch, bad_value
from .store.format import FORMAT_VERSION
from .store.vectors import INDEX_TYPES

# "chunks": token windows of chunk_tokens; "whole": one chunk per document, which the
# encoder truncates at its maximum length (how sentence-transformers' BEIR figures embed).
CHUNKINGS = ("chunks", "whole")


def _encoder(compared: bool = True, default=None):
    """A field that comes from `Encoder.settings()`; `compared`: it must match the encoder
    that searches (dtype need not: fp32 and bf16 vectors agree to cosine > 0.999)."""
    return field(default=default, metadata={"encoder": True, "compared": compared})


_NOT_STORED = ("extra", "stored_keys")


@dataclass
class IndexSettings:
    # the encoder (Encoder.settings())
    model: str | None = _encoder(compared=False)  # a name or path; the weights' hash decides
    model_type: str | None = _encoder()
    weights_sha256: str | None = _encoder()
    dim: int | None = _encoder()
    pooling: str | None = _encoder()
    normalize: bool = _encoder(default=True)
    layer: int | None = _encoder()
    max_length: int | None = _encoder()
    dtype: str | None = _encoder(compared=False)
    # prompts (prompts.py; None: none, as in indexes from before prompts) and Matryoshka
    # truncation (None: the full vector; `dim` is then the model's)
    query_prompt: str | None = _encoder()
    document_prompt: str | None = _encoder()
    include_prompt: bool = _encoder(default=True)
    truncate_dim: int | None = _encoder()
    # chunking (None tokens: "whole")
    chunking: str = "chunks"
    chunk_tokens: int | None = None
    chunk_overlap: int | None = None
    # the vector index: the kind its segments mostly hold, the one chosen, its parameters
    index_type: str = "flat"
    index_choice: str | None = None
    index_params: dict = field(default_factory=dict)
    # the folder's format and counters
    format: int = 1
    searchkit_version: str | None = None
    created_at: float | None = None
    generation: int = 0
    next_chunk_id: int = 1
    next_segment_id: int = 1
    vectors_sha256: str | None = None  # format 1: the digest of its one vectors file
    extra: dict = field(default_factory=dict)  # keys this version does not know
    stored_keys: frozenset = field(default=frozenset(), repr=False)  # the keys the catalog held

    # Present in every index that has committed; `verify` reports the ones missing.
    REQUIRED = ("model", "weights_sha256", "dim", "pooling", "normalize", "chunk_tokens", "chunk_overlap",
                "generation", "next_chunk_id")

    @classmethod
    def from_stored(cls, stored: dict, folder: Path | str = "index") -> IndexSettings:
        """The catalog's rows as settings; an index written in a newer format is refused by
        name (an older one is read, and upgraded by its next commit: store/commit.py)."""
        known = {f.name for f in dataclasses.fields(cls)} - set(_NOT_STORED)
        values = {k: v for k, v in stored.items() if k in known and v is not None}
        settings = cls(**values, extra={k: v for k, v in stored.items() if k not in known},
                       stored_keys=frozenset(stored))
        if settings.format > FORMAT_VERSION:
            raise IndexCorrupt(f"{folder}: written in format {settings.format} by a newer searchkit; "
                               f"this one reads formats 1 to {FORMAT_VERSION} (upgrade searchkit)")
        return settings

    @classmethod
    def new(cls, encoder_settings: dict, chunking: dict, vectors_settings: dict, numbering: dict | None = None,
            version: str | None = None) -> IndexSettings:
        """The settings of an index about to be created (nothing committed yet)."""
        return cls.from_stored({**encoder_settings, **chunking, **vectors_settings, "format": FORMAT_VERSION,
                                "searchkit_version": version, "created_at": time.time(), "generation": 0,
                                "next_chunk_id": 1, **(numbering or {})})

    def to_stored(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in _NOT_STORED}
        return {**self.extra, **out}

    @property
    def built(self) -> bool:
        """Something was committed with an encoder (before that the encoder is unchecked)."""
        return self.weights_sha256 is not None

    @property
    def choice(self) -> str:
        """The index type chosen at creation: "auto" (flat, then hnsw past AUTO_HNSW_AT
        vectors) or a kind; indexes from before index types were flat ("flat-ip")."""
        choice = self.index_choice or self.index_type or "auto"
        return "flat" if choice == "flat-ip" else choice

    def missing(self) -> list[str]:
        return [k for k in self.REQUIRED if k not in self.stored_keys]

    def check_encoder(self, encoder_settings: dict, folder: Path | str) -> None:
        """Refuse an encoder whose vectors would not be comparable with the stored ones."""
        if not self.built:
            return
        compared = [f.name for f in dataclasses.fields(self) if f.metadata.get("compared")]
        if not any((self.query_prompt, self.document_prompt, encoder_settings.get("query_prompt"),
                    encoder_settings.get("document_prompt"))):
            compared.remove("include_prompt")  # no prompt on either side: it changes no vector
        diffs = [k for k in compared if getattr(self, k) != encoder_settings.get(k)]
        if not diffs:
            return

        def show(value):
            return f"{value[:12]}…" if isinstance(value, str) and len(value) == 64 else repr(value)

        detail = ", ".join(f"{k} {show(getattr(self, k))} vs {show(encoder_settings.get(k))}" for k in diffs)
        other = encoder_settings.get("model")
        # the same name with other settings (--dim, --pooling) or weights: say it is those that differ
        what = f"model {self.model}, not {other}" if other != self.model else f"model {self.model} but other settings"
        raise ModelMismatch(
            f"{folder}: built with {what} ({detail}); "
            "use the same model and settings, or rebuild the index with this one (--rebuild; rebuild=True in Python)"
        )

    def check_asked(self, asked: dict, folder: Path | str) -> None:
        """What a built index was made with stays: asking for another chunking or index type
        is an error, never silently ignored (the same value is fine)."""
        built = {"chunking": self.chunking, "index_type": self.choice, "chunk_tokens": self.chunk_tokens,
                 "chunk_overlap": self.chunk_overlap}
        for name, value in asked.items():
            if value is not None and value != built[name]:
                raise bad_value(name, value, f"{folder} was built with {built[name]!r}; "
                                             "rebuilding the index changes it (--rebuild; rebuild=True in Python)")


def chunking_for(chunking: str | None, tokens, overlap, most: int) -> dict:
    """The chunking settings of a new index: `most` is the encoder's longest content (its
    maximum length less special tokens). Defaults: windows of min(most, 510) tokens
    overlapping by an eighth."""
    if chunking == "whole":
        return {"chunking": "whole", "chunk_tokens": None, "chunk_overlap": None}
    tokens = tokens if tokens is not None else min(most, 510)
    if isinstance(tokens, bool) or not isinstance(tokens, int) or not 8 <= tokens <= most:
        raise bad_value("chunk_tokens", tokens, f"must be a whole number from 8 to {most} for this model")
    overlap = overlap if overlap is not None else tokens // 8
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 0 <= overlap < tokens // 2:
        raise bad_value("chunk_overlap", overlap, f"must be a whole number from 0 to {tokens // 2 - 1}")
    return {"chunking": "chunks", "chunk_tokens": tokens, "chunk_overlap": overlap}


@dataclass(frozen=True, eq=False)
class IndexOptions:
    """What an `Index` is opened with. The encoder: None values take the stored model,
    pooling, layer, dim and prompts. A new index: how it chunks (`chunking_for`) and which
    vector index it keeps (`index_type`, `index_params`: store/vectors.py). On a built index those must
    be its own values or None (`IndexSettings.check_asked`); only efSearch / nprobe may
    change, and become its defaults at the next commit."""

    model: str | Path | None = None
    device: str | None = "auto"
    dtype: str | None = "auto"
    fastest_for: str = "batches"  # dtype="fastest": measured on batches or on single queries
    pooling: str | None = None
    layer: int | None = None
    query_prompt: str | None = None  # None: the model's (a built index: its own); "": none
    document_prompt: str | None = None
    dim: int | None = None  # Matryoshka truncation; None: a built index's own, else the full vector
    chunk_tokens: int | None = None
    chunk_overlap: int | None = None
    chunking: str | None = None
    index_type: str | None = None
    index_params: dict = field(default_factory=dict)
    # --rebuild: the new index goes on from the old one's numbering (build.numbering) and
    # will live at `home`, not in the sibling folder it is built in
    numbering: dict = field(default_factory=dict)
    home: Path | None = None

    def __post_init__(self):
        if self.chunking not in (None, *CHUNKINGS):
            raise bad_value("chunking", self.chunking, f"expected {' or '.join(CHUNKINGS)}")
        if self.chunking == "whole" and (self.chunk_tokens is not None or self.chunk_overlap is not None):
            raise bad_value("chunking", self.chunking,
                            "makes one chunk per document: give no chunk_tokens or chunk_overlap")
        if self.index_type not in (None, *INDEX_TYPES):
            raise bad_value("index_type", self.index_type, f"expected one of {', '.join(INDEX_TYPES)}")
        object.__setattr__(self, "index_params", dict(self.index_params or {}))

    @property
    def asked(self) -> dict:
        return {"chunking": self.chunking, "index_type": self.index_type, "chunk_tokens": self.chunk_tokens,
                "chunk_overlap": self.chunk_overlap}

    def encoder_args(self, stored: IndexSettings) -> dict:
        """`load_encoder(**args)` for this index: the given model and options, else the stored ones.
        A built index's vectors were made with its recorded prompts, so those stay unless a
        prompt is given explicitly (one that differs is then refused by name), whichever
        model is named: a model with other weights is refused by its weights' hash anyway.
        The recorded `include_prompt` goes with them where a prompt is recorded."""
        args = {"model": self.model or stored.model, "device": self.device, "dtype": self.dtype,
                "fastest_for": self.fastest_for, "pooling": self.pooling or stored.pooling,
                "layer": self.layer if self.layer is not None else stored.layer, "normalize": stored.normalize,
                "query_prompt": self.query_prompt, "document_prompt": self.document_prompt,
                "dim": self.dim if self.dim is not None else stored.truncate_dim}
        if stored.built:
            args.update(_stored_prompts(self, stored))
            if stored.query_prompt or stored.document_prompt:
                args["include_prompt"] = stored.include_prompt
        return args

    def new_settings(self, encoder, vectors_settings: dict, version: str | None) -> IndexSettings:
        """The settings of a new index built with `encoder`; `vectors_settings`: those of its
        (empty) vector index (`Segments.settings`)."""
        chunking = chunking_for(self.chunking, self.chunk_tokens, self.chunk_overlap, encoder.max_content_tokens)
        return IndexSettings.new(encoder.settings(), chunking, vectors_settings, self.numbering, version)

    def for_rebuild(self, stored: IndexSettings, own_model: bool, home: Path, numbering: dict) -> IndexOptions:
        """The options a --rebuild builds its new index with: without a model given, the
        stored model, pooling, layer, prompts and dim; the stored index type unless another is given; the
        default index parameters, but for those given now."""
        if own_model:
            changes = {"model": stored.model, "pooling": self.pooling or stored.pooling,
                       "layer": self.layer if self.layer is not None else stored.layer,
                       "dim": self.dim if self.dim is not None else stored.truncate_dim,
                       **(_stored_prompts(self, stored) if stored.built else {})}
        else:
            changes = {}
        return dataclasses.replace(self, **changes, index_type=self.index_type or stored.choice, home=home,
                                   numbering=numbering)


def _stored_prompts(options: IndexOptions, stored: IndexSettings) -> dict:
    """The prompts given in `options`, else those `stored` ("" where it has none)."""
    return {"query_prompt": options.query_prompt if options.query_prompt is not None else stored.query_prompt or "",
            "document_prompt": options.document_prompt if options.document_prompt is not None
            else stored.document_prompt or ""}
