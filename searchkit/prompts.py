"""Prompts: the text a model wants in front of a query or a document (e5's "query: ",
bge's "Represent this sentence for searching relevant passages: ", Qwen3-Embedding's
"Instruct: ...\\nQuery:"), read from a folder's `config_sentence_transformers.json`.

As in sentence-transformers, a prompt is prepended to the text as a string before
tokenizing, so its tokens count toward the maximum length and the text is truncated after
them; whether they also take part in pooling is the pooling config's `include_prompt`
(pooling.py).

Which prompt a role gets: a query the one named "query"; a document the first non-empty of
"document", "passage", "corpus" (e5 folders name theirs "passage"). sentence-transformers
6.3's `encode_document` stops at an empty "document" entry it adds itself and so gives e5
passages no prompt; searchkit follows the model card, which asks for "passage: ".
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from .errors import BadInput, ModelLoadError, bad_value
from .model_files import read_json_object

CONFIG_FILE = "config_sentence_transformers.json"
QUERY = "query"
DOCUMENT_NAMES = ("document", "passage", "corpus")


@dataclass(frozen=True)
class Prompts:
    """A model's named prompts and the one applied by default (`default_prompt_name`)."""

    named: dict[str, str] = field(default_factory=dict)
    default_name: str | None = None
    default_text: str | None = None  # a literal default prompt, in place of default_name's

    @classmethod
    def read(cls, model_dir: Path) -> Prompts:
        """The prompts `config_sentence_transformers.json` declares (none without the file)."""
        path = Path(model_dir) / CONFIG_FILE
        if not path.is_file():
            return cls()
        cfg = read_json_object(path)
        named = cfg.get("prompts") or {}
        if not isinstance(named, dict) or not all(isinstance(v, (str, type(None))) for v in named.values()):
            raise ModelLoadError(f"{path}: 'prompts' must map names to strings")
        default = cfg.get("default_prompt_name")
        if default is not None and default not in named:
            raise ModelLoadError(f"{path}: default_prompt_name {default!r} is not one of its prompts "
                                 f"({', '.join(named) or 'none'})")
        return cls({k: v or "" for k, v in named.items()}, default)

    def overridden(self, query: str | None = None, document: str | None = None, default_name: str | None = None,
                   default_text: str | None = None) -> Prompts:
        """These prompts with the query's and the documents' replaced where given ("" removes
        one), and the default one (what `encode` applies without a prompt) named or given."""
        named = dict(self.named)
        if query is not None:
            named[QUERY] = _checked("query_prompt", query)
        if document is not None:
            for name in DOCUMENT_NAMES:
                named.pop(name, None)
            named[DOCUMENT_NAMES[0]] = _checked("document_prompt", document)
        out = replace(self, named=named)
        if default_name is not None or default_text is not None:
            out.resolve(default_name, default_text)  # checked: a known name, a string, not both
            out = replace(out, default_name=default_name, default_text=default_text)
        return out

    def resolve(self, prompt_name: str | None = None, prompt: str | None = None) -> str:
        """The prompt an `encode` call applies ("" for none), as sentence-transformers'
        `encode` picks it: `prompt` itself, else the one called `prompt_name`, else the
        default prompt. Giving both is an error."""
        if prompt is not None and prompt_name is not None:
            raise BadInput("give a prompt or a prompt_name, not both")
        if prompt is not None:
            return _checked("prompt", prompt)
        if prompt_name is not None:
            if prompt_name not in self.named:
                raise bad_value("prompt_name", prompt_name,
                                f"this model's prompts are {', '.join(map(repr, self.named)) or 'none'}")
            return self.named[prompt_name]
        if self.default_text is not None:
            return self.default_text
        return self.named.get(self.default_name, "") if self.default_name else ""

    @property
    def query(self) -> str:
        """The prompt queries get ("" for none)."""
        return self.named.get(QUERY, "")

    @property
    def document(self) -> str:
        """The prompt documents get ("" for none): the first non-empty of document, passage, corpus."""
        return next((self.named[n] for n in DOCUMENT_NAMES if self.named.get(n)), "")


def _checked(param: str, prompt) -> str:
    if not isinstance(prompt, str):
        raise bad_value(param, prompt, "expected a string")
    return prompt
