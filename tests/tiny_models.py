"""Small randomly initialised ModernBERT and GPT-2 checkpoints, built by `transformers` itself.

No pretrained ModernBERT or GPT-2 weights exist offline, so parity tests build tiny ones
with transformers' own config and model classes, save them with `save_pretrained`
(safetensors) and a `tokenizer.json` trained on the spot with `tokenizers` on English text
that ships with Python (`pydoc_data.topics`). Everything is seeded: the same call writes
the same files. Each takes well under a second.

    python tests/tiny_models.py /tmp/tiny-modernbert /tmp/tiny-gpt2
    searchkit parity --model /tmp/tiny-modernbert
"""

from __future__ import annotations

import json
import os
import sys
from functools import lru_cache
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402

SEED = 0

# ModernBERT's special tokens, as in answerdotai/ModernBERT-base's tokenizer.json.
MODERNBERT_SPECIALS = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
GPT2_EOS = "<|endoftext|>"

# Short, medium and long English texts for tests (the long one runs past 300 tokens).
TEXTS = [
    "Hello.",
    "The cat sits outside while a man is playing guitar.",
    "Python evaluates expressions from left to right; in an assignment the right-hand side "
    "is evaluated before the left-hand side.",
]


@lru_cache(maxsize=None)
def corpus() -> str:
    """About 200 kB of English prose from Python's own documentation."""
    from pydoc_data.topics import topics

    return "".join(topics[key] for key in sorted(topics))[:200_000]


def long_text(chars: int = 3000) -> str:
    """A slice of the corpus long enough to give a few hundred tokens."""
    return " ".join(corpus()[10_000 : 10_000 + chars].split())


@lru_cache(maxsize=None)
def _tokenizer_json(kind: str, vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = MODERNBERT_SPECIALS if kind == "modernbert" else [GPT2_EOS]
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus().splitlines(), trainer)
    if kind == "modernbert":
        cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
        tok.post_processor = processors.TemplateProcessing(
            single="[CLS] $A [SEP]",
            pair="[CLS] $A [SEP] $B [SEP]",
            special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
        )
    else:  # GPT-2 adds nothing around a text
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok.to_str()


def _write(folder: Path, model, tokenizer: str, tokenizer_config: dict) -> Path:
    from transformers.utils import logging

    logging.disable_progress_bar()
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder, safe_serialization=True)
    (folder / "tokenizer.json").write_text(tokenizer, encoding="utf-8")
    config = json.dumps(tokenizer_config, indent=2)
    (folder / "tokenizer_config.json").write_text(config, encoding="utf-8")
    return folder


def make_modernbert(folder: str | Path, **overrides) -> Path:
    """A 6-layer ModernBERT (global layers 0 and 3, window 128, 512 positions) in `folder`.

    `overrides` go to `ModernBertConfig` (e.g. attention_bias=True, local_attention=64).
    """
    from tokenizers import Tokenizer
    from transformers import ModernBertConfig, ModernBertModel

    tokenizer = _tokenizer_json("modernbert", 800)
    tok = Tokenizer.from_str(tokenizer)
    ids = {name: tok.token_to_id(name) for name in MODERNBERT_SPECIALS}
    settings = dict(
        vocab_size=-(-tok.get_vocab_size() // 64) * 64,  # rounded up past the tokenizer's, as real
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=6,
        num_attention_heads=4,
        max_position_embeddings=512,
        local_attention=128,
        initializer_range=0.1,  # sharper attention than 0.02, so masks and windows show
        pad_token_id=ids["[PAD]"],
        bos_token_id=ids["[CLS]"],
        eos_token_id=ids["[SEP]"],
        cls_token_id=ids["[CLS]"],
        sep_token_id=ids["[SEP]"],
    )
    settings.update(overrides)
    torch.manual_seed(SEED)
    model = ModernBertModel(ModernBertConfig(**settings)).eval()
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": settings["max_position_embeddings"],
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "mask_token": "[MASK]",
        "unk_token": "[UNK]",
    }
    return _write(Path(folder), model, tokenizer, tokenizer_config)


def make_gpt2(folder: str | Path, **overrides) -> Path:
    """A 4-layer GPT-2 (64 wide, 512 positions) in `folder`; `overrides` go to `GPT2Config`."""
    from tokenizers import Tokenizer
    from transformers import GPT2Config, GPT2Model

    tokenizer = _tokenizer_json("gpt2", 800)
    tok = Tokenizer.from_str(tokenizer)
    eos = tok.token_to_id(GPT2_EOS)
    settings = dict(
        vocab_size=tok.get_vocab_size(),
        n_positions=512,
        n_embd=64,
        n_layer=4,
        n_head=4,
        initializer_range=0.1,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    settings.update(overrides)
    torch.manual_seed(SEED)
    model = GPT2Model(GPT2Config(**settings)).eval()
    # Like the real gpt2: no pad token; bos = eos = unk = <|endoftext|>.
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": settings["n_positions"],
        "bos_token": GPT2_EOS,
        "eos_token": GPT2_EOS,
        "unk_token": GPT2_EOS,
    }
    return _write(Path(folder), model, tokenizer, tokenizer_config)


def variant(source: str | Path, folder: str | Path, state=None, config=None) -> Path:
    """Copy checkpoint `source` to `folder`, passing its weights through `state(dict) -> dict`
    and its config.json through `config(dict) -> dict` (each optional)."""
    import shutil

    from safetensors.torch import load_file, save_file

    source, folder = Path(source), Path(folder)
    shutil.copytree(source, folder)
    if state is not None:
        weights = load_file(str(source / "model.safetensors"))
        save_file(state(dict(weights)), str(folder / "model.safetensors"))
    if config is not None:
        cfg = json.loads((source / "config.json").read_text(encoding="utf-8"))
        (folder / "config.json").write_text(json.dumps(config(cfg), indent=2), encoding="utf-8")
    return folder


def without(key: str):
    """A `variant` weight edit: drop `key`."""
    return lambda state: {k: v for k, v in state.items() if k != key}


def put(key: str, value):
    """A `variant` weight edit: set (or add) `key`."""
    return lambda state: {**state, key: value}


def make_small_bert(folder: str | Path, hidden: int = 32, layers: int = 1) -> Path:
    """A small BERT cut out of all-MiniLM-L6-v2 (its first `layers` layers, each tensor sliced
    to `hidden` wide), with MiniLM's own tokenizer.json; no `transformers` needed.

    Its vectors mean little, but it tokenizes and chunks exactly as MiniLM does and encodes
    a hundred times faster: index tests that are about files, commits and crashes use it,
    and it is "another model" (other weights, other dim) for the model-mismatch tests.
    """
    import shutil

    from safetensors.torch import load_file, save_file

    from searchkit.resolve import resolve_model

    source, folder = resolve_model("all-MiniLM-L6-v2"), Path(folder)
    cfg = json.loads((source / "config.json").read_text(encoding="utf-8"))
    width = {cfg["hidden_size"]: hidden, cfg["intermediate_size"]: 2 * hidden}
    state = {}
    for key, tensor in load_file(str(source / "model.safetensors")).items():
        if key.startswith("encoder.layer.") and int(key.split(".")[2]) >= layers:
            continue
        if tensor.is_floating_point():
            tensor = tensor[tuple(slice(0, width.get(n, n)) for n in tensor.shape)].contiguous()
        state[key] = tensor
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "model.safetensors"))
    cfg.update(hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
               num_attention_heads=2, _name_or_path=f"small-bert-{hidden}x{layers}")
    (folder / "config.json").write_text(json.dumps(cfg, indent=2), encoding="utf-8")
    shutil.copy(source / "tokenizer.json", folder / "tokenizer.json")
    return folder


def encode(folder: str | Path, texts: list[str], pad_id: int, side="right", max_length=300):
    """(input_ids, attention_mask) of `texts` with the folder's tokenizer, padded on `side`."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(folder) / "tokenizer.json"))
    rows = [e.ids[:max_length] for e in tok.encode_batch(texts)]
    T = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for b, row in enumerate(rows):
        span = slice(0, len(row)) if side == "right" else slice(T - len(row), T)
        input_ids[b, span] = torch.tensor(row)
        mask[b, span] = 1
    return input_ids, mask


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python tests/tiny_models.py MODERNBERT_DIR GPT2_DIR")
    for make, out in ((make_modernbert, sys.argv[1]), (make_gpt2, sys.argv[2])):
        print(make(out))
