"""What a checkpoint's tokenizer files say about padding side and a trailing EOS token.

Decoder embedders need both right. Qwen3-Embedding's `tokenizer_config.json` says
`"padding_side": "left"`, and its `tokenizer.json` appends `<|endoftext|>` to every text, the
token whose last hidden state is the text's vector. Other checkpoints ask for the EOS with
`"add_eos_token": true` in `tokenizer_config.json` instead, which the `tokenizers` library
does not read: `with_configured_eos` adds it to the post-processor, so that truncation
leaves room for it and `num_special_tokens_to_add` counts it.

(transformers 4's Llama-style fast tokenizers honour `add_eos_token` in the same way;
transformers 5 drops the key when a tokenizer.json is present, so on such a folder it would
embed without the EOS. We follow the config file.)
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, processors

from .errors import ModelLoadError
from .model_files import read_json

SIDES = ("right", "left")


def _read_json(path: Path) -> dict:
    """The file's JSON object; {} when it is missing or holds another JSON value."""
    data = read_json(path)
    return data if isinstance(data, dict) else {}


def padding_side(model_dir: str | Path) -> str:
    """"left" or "right": tokenizer_config.json's `padding_side`, else the padding direction
    fixed in tokenizer.json, else "right" (as transformers decides)."""
    model_dir = Path(model_dir)
    path = model_dir / "tokenizer_config.json"
    side = _read_json(path).get("padding_side")
    if side is None:
        path = model_dir / "tokenizer.json"
        padding = _read_json(path).get("padding")
        side = padding.get("direction") if isinstance(padding, dict) else None
    if side is None:
        return "right"
    if not isinstance(side, str) or side.lower() not in SIDES:
        raise ModelLoadError(f"{path}: padding side {side!r} is not 'left' or 'right'")
    return side.lower()


def _token_text(value) -> str | None:
    """A special token as tokenizer_config.json writes it: a string or {"content": ...}."""
    if isinstance(value, dict):
        value = value.get("content")
    return value if isinstance(value, str) else None


def configured_eos(model_dir: str | Path, tok: Tokenizer) -> tuple[str, int] | None:
    """(token, id) of the EOS that tokenizer_config.json asks to append (`add_eos_token`),
    or None when it asks for none."""
    path = Path(model_dir) / "tokenizer_config.json"
    cfg = _read_json(path)
    if not cfg.get("add_eos_token"):
        return None
    eos = _token_text(cfg.get("eos_token"))
    eos_id = tok.token_to_id(eos) if eos is not None else None
    if eos_id is None:
        raise ModelLoadError(f"{path}: add_eos_token is set but eos_token {cfg.get('eos_token')!r} "
                             f"is not a token of tokenizer.json")
    return eos, eos_id


def with_configured_eos(tok: Tokenizer, model_dir: str | Path) -> Tokenizer:
    """`tok`, its post-processor extended to append the EOS that tokenizer_config.json asks
    for, unless tokenizer.json already appends it. Returns `tok` (changed in place)."""
    eos = configured_eos(model_dir, tok)
    if eos is None:
        return tok
    token, token_id = eos
    ids = tok.encode("a").ids
    if ids and ids[-1] == token_id:
        return tok  # the post-processor already ends every text with it
    append = processors.TemplateProcessing(
        single=f"$A:0 {token}:0", pair=f"$A:0 {token}:0 $B:1 {token}:1", special_tokens=[(token, token_id)]
    )
    current = tok.post_processor
    tok.post_processor = append if current is None else processors.Sequence([current, append])
    return tok
