"""Small randomly initialised ModernBERT, GPT-2, XLM-RoBERTa and Qwen3 checkpoints, built by
`transformers` itself.

No pretrained weights of these exist offline, so parity tests build tiny ones
with transformers' own config and model classes, save them with `save_pretrained`
(safetensors) and a `tokenizer.json` trained on the spot with `tokenizers` on English text
that ships with Python (`pydoc_data.topics`). Everything is seeded: the same call writes
the same files. Each takes well under a second.

    python tests/tiny_models.py /tmp/tiny-modernbert /tmp/tiny-gpt2 [/tmp/tiny-xlmr /tmp/tiny-qwen3]
    searchkit parity --model /tmp/tiny-modernbert

The XLM-R and Qwen3 folders are sentence-transformers folders too (modules.json, 1_Pooling,
sentence_bert_config.json), laid out like multilingual-e5 and Qwen3-Embedding.
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
# XLM-R's sentencepiece specials in its order (<pad> = 1 = padding_idx); Qwen3's first three.
XLMR_SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
QWEN3_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

# Short, medium and long English texts for tests (the long one runs past 300 tokens).
TEXTS = [
    "Hello.",
    "The cat sits outside while a man is playing guitar.",
    "Python evaluates expressions from left to right; in an assignment the right-hand side "
    "is evaluated before the left-hand side.",
]

# Eight short sentences (sentence-transformers' README example) for the BERT (MiniLM) tests.
EIGHT = [
    "The cat sits outside",
    "A man is playing guitar",
    "I love pasta",
    "The new movie is awesome",
    "The cat plays in the garden",
    "A woman watches TV",
    "The new movie is so great",
    "Do you like pizza?",
]


@lru_cache(maxsize=None)
def corpus() -> str:
    """About 200 kB of English prose from Python's own documentation."""
    from pydoc_data.topics import topics

    return "".join(topics[key] for key in sorted(topics))[:200_000]


def max_diff(ours_states, ref_states, mask) -> list[float]:
    """Per hidden state, the largest |ours - reference| over the real (unpadded) tokens."""
    assert len(ours_states) == len(ref_states)
    real = mask.bool()
    return [(a[real] - b[real]).abs().max().item() for a, b in zip(ours_states, ref_states)]


def long_text(chars: int = 3000) -> str:
    """A slice of the corpus long enough to give a few hundred tokens."""
    return " ".join(corpus()[10_000 : 10_000 + chars].split())


@lru_cache(maxsize=None)
def _tokenizer_json(kind: str, vocab_size: int) -> str:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    if kind == "xlm-roberta":
        return _unigram_tokenizer_json(vocab_size)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = {"modernbert": MODERNBERT_SPECIALS, "qwen3": QWEN3_SPECIALS}.get(kind, [GPT2_EOS])
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
    elif kind == "qwen3":  # Qwen3-Embedding's tokenizer.json appends <|endoftext|> to every text
        eos = tok.token_to_id(QWEN3_SPECIALS[0])
        tok.post_processor = processors.Sequence([
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"$A {QWEN3_SPECIALS[0]}", pair=f"$A $B {QWEN3_SPECIALS[0]}",
                special_tokens=[(QWEN3_SPECIALS[0], eos)],
            ),
        ])
    else:  # GPT-2 adds nothing around a text
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok.to_str()


def _unigram_tokenizer_json(vocab_size: int) -> str:
    """A sentencepiece-style (Metaspace + Unigram) tokenizer with XLM-R's specials and its
    `<s> text </s>` template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=XLMR_SPECIALS, unk_token="<unk>", show_progress=False
    )
    tok.train_from_iterator(corpus().splitlines(), trainer)
    bos, eos = tok.token_to_id("<s>"), tok.token_to_id("</s>")
    tok.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", bos), ("</s>", eos)]
    )
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


def _sentence_transformers_files(folder: Path, dim: int, pooling: str, max_seq_length: int) -> None:
    """modules.json (Transformer, Pooling, Normalize), 1_Pooling/config.json with `pooling`
    ("mean", "lasttoken", ...) and sentence_bert_config.json, as sentence-transformers saves them."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "modules.json").write_text(json.dumps(modules, indent=2), encoding="utf-8")
    modes = ("cls_token", "mean_tokens", "max_tokens", "mean_sqrt_len_tokens", "weightedmean_tokens", "lasttoken")
    wanted = {"cls": "cls_token", "mean": "mean_tokens", "max": "max_tokens"}.get(pooling, pooling)
    pooling_config = {"word_embedding_dimension": dim, **{f"pooling_mode_{m}": m == wanted for m in modes},
                      "include_prompt": True}
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(json.dumps(pooling_config, indent=2), encoding="utf-8")
    (folder / "2_Normalize").mkdir(exist_ok=True)
    st_config = {"max_seq_length": max_seq_length, "do_lower_case": False}
    (folder / "sentence_bert_config.json").write_text(json.dumps(st_config, indent=2), encoding="utf-8")


def make_xlm_roberta(folder: str | Path, **overrides) -> Path:
    """A 4-layer XLM-RoBERTa (64 wide, 514 positions = 512 tokens, <pad> = 1) in `folder`,
    laid out like multilingual-e5 (mean pooling); `overrides` go to `XLMRobertaConfig`."""
    from tokenizers import Tokenizer
    from transformers import XLMRobertaConfig, XLMRobertaModel

    tokenizer = _tokenizer_json("xlm-roberta", 800)
    tok = Tokenizer.from_str(tokenizer)
    ids = {name: tok.token_to_id(name) for name in XLMR_SPECIALS}
    settings = dict(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=4,
        num_attention_heads=4,
        max_position_embeddings=514,
        type_vocab_size=1,
        layer_norm_eps=1e-5,
        initializer_range=0.1,
        pad_token_id=ids["<pad>"],
        bos_token_id=ids["<s>"],
        eos_token_id=ids["</s>"],
    )
    settings.update(overrides)
    torch.manual_seed(SEED)
    model = XLMRobertaModel(XLMRobertaConfig(**settings)).eval()  # with its pooler, as released
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": settings["max_position_embeddings"] - 2,
        "bos_token": "<s>",
        "cls_token": "<s>",
        "eos_token": "</s>",
        "sep_token": "</s>",
        "pad_token": "<pad>",
        "unk_token": "<unk>",
        "mask_token": "<mask>",
    }
    folder = _write(Path(folder), model, tokenizer, tokenizer_config)
    _sentence_transformers_files(folder, settings["hidden_size"], "mean", settings["max_position_embeddings"] - 2)
    return folder


def make_qwen3(folder: str | Path, **overrides) -> Path:
    """A 4-layer Qwen3 (64 wide, 4 query heads of 32 over 2 key/value heads, 512 positions)
    in `folder`, laid out like Qwen3-Embedding: left padding, <|endoftext|> appended to every
    text by tokenizer.json, last-token pooling. `overrides` go to `Qwen3Config`.

    transformers starts every RMSNorm weight at 1; they are drawn around 1 here so that a
    norm applied to the wrong axis, or not at all, shows in the parity tests.
    """
    from tokenizers import Tokenizer
    from transformers import Qwen3Config, Qwen3Model

    tokenizer = _tokenizer_json("qwen3", 800)
    tok = Tokenizer.from_str(tokenizer)
    eos = tok.token_to_id(QWEN3_SPECIALS[0])
    settings = dict(
        vocab_size=tok.get_vocab_size(),
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=32,  # 4 x 32 = 128 query width, not the hidden size: as in Qwen3 (16 x 128 over 1024)
        max_position_embeddings=512,
        rope_theta=1_000_000.0,  # as released (not transformers' default), so reading it is tested
        initializer_range=0.1,
        tie_word_embeddings=True,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    settings.update(overrides)
    torch.manual_seed(SEED)
    model = Qwen3Model(Qwen3Config(**settings)).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.copy_(1 + 0.2 * torch.randn_like(param))
    tokenizer_config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": settings["max_position_embeddings"],
        "padding_side": "left",
        "eos_token": QWEN3_SPECIALS[0],
        "pad_token": QWEN3_SPECIALS[0],
        "unk_token": None,
    }
    folder = _write(Path(folder), model, tokenizer, tokenizer_config)
    _sentence_transformers_files(folder, settings["hidden_size"], "lasttoken", settings["max_position_embeddings"])
    return folder


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
    tok.no_padding()  # MiniLM's tokenizer.json pads to 128 itself; rows are padded here
    tok.no_truncation()
    rows = [e.ids[:max_length] for e in tok.encode_batch(texts)]
    T = max(len(r) for r in rows)
    input_ids = torch.full((len(rows), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for b, row in enumerate(rows):
        span = slice(0, len(row)) if side == "right" else slice(T - len(row), T)
        input_ids[b, span] = torch.tensor(row)
        mask[b, span] = 1
    return input_ids, mask


def minilm_folder(folder: str | Path | None = None) -> Path:
    """all-MiniLM-L6-v2 as shipped (a real BERT, small enough for parity tests); `folder`
    is ignored, so it takes a factory's place beside make_modernbert and the rest."""
    from searchkit.resolve import resolve_model

    return resolve_model("all-MiniLM-L6-v2")


def reference_hidden_states(cls, folder, ids, mask, impl="sdpa", positions=False):
    """Every hidden state of transformers' `cls` (e.g. transformers.GPT2Model) loaded from
    `folder` in fp32, on (ids, mask). `positions`: pass our position ids
    (positions_from_mask) instead of transformers' default 0..T-1 along the row."""
    from searchkit.models import positions_from_mask

    model = cls.from_pretrained(folder, attn_implementation=impl, dtype=torch.float32)
    kwargs = {"position_ids": positions_from_mask(mask)} if positions else {}
    with torch.no_grad():
        out = model.eval()(input_ids=ids, attention_mask=mask, output_hidden_states=True, **kwargs)
    assert torch.equal(out.hidden_states[-1], out.last_hidden_state)  # transformers 5 ties them
    return out.hidden_states


if __name__ == "__main__":
    if len(sys.argv) not in (3, 5):
        sys.exit("usage: python tests/tiny_models.py MODERNBERT_DIR GPT2_DIR [XLM_ROBERTA_DIR QWEN3_DIR]")
    for make, out in zip((make_modernbert, make_gpt2, make_xlm_roberta, make_qwen3), sys.argv[1:]):
        print(make(out))
