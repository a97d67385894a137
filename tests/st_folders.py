"""Copies of the all-MiniLM-L6-v2 folder with sentence-transformers configs of our choosing
(prompts, pooling modes, Matryoshka dims), for holding searchkit to sentence-transformers
on the same folder. The weights are linked, not copied (90 MB); every small file is copied,
so editing one never touches the installed package.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from searchkit.resolve import resolve_model

# Short, middling and long (past 256 tokens: truncation in play) texts.
TEXTS = [
    "Hello.",
    "The cat sits outside while a man is playing guitar.",
    "Python evaluates expressions from left to right; in an assignment the right-hand side "
    "is evaluated before the left-hand side.",
    " ".join(["A lambda expression yields an anonymous function object, and the loop goes on."] * 30),
]


def minilm_copy(dest: Path, *, prompts: dict | None = None, default_prompt_name: str | None = None,
                pooling: dict | None = None, st_extra: dict | None = None) -> Path:
    """all-MiniLM-L6-v2 in `dest`: `prompts`/`default_prompt_name`/`st_extra` go into
    config_sentence_transformers.json, `pooling` (keys) replaces 1_Pooling/config.json."""
    src = resolve_model("all-MiniLM-L6-v2")
    dest.mkdir(parents=True, exist_ok=True)
    for item in src.iterdir():
        if item.suffix == ".safetensors":
            os.symlink(item, dest / item.name)
        elif item.is_dir():
            shutil.copytree(item, dest / item.name)
        else:
            shutil.copy(item, dest / item.name)
    cfg = json.loads((dest / "config_sentence_transformers.json").read_text())
    if prompts is not None:
        cfg["prompts"] = prompts
    if default_prompt_name is not None:
        cfg["default_prompt_name"] = default_prompt_name
    cfg.update(st_extra or {})
    (dest / "config_sentence_transformers.json").write_text(json.dumps(cfg))
    if pooling is not None:
        (dest / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 384, **pooling}))
    return dest


def sentence_transformer(folder: Path):
    """sentence-transformers' own model for `folder`, fp32 on the CPU."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu")
