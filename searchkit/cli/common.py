"""What the commands share: the stdout/stderr consoles, errors as one line and an exit status,
JSON output, the embedding progress bar, standard input and the options several commands take."""

from __future__ import annotations

import contextlib
import functools
import io
import json
import sys

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from ..errors import SearchkitError

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)  # a message stays on one line, however long

DEFAULT_INDEX = "index"
DTYPE_HELP = ("auto (fp32 on CPU, fp16 on CUDA), fastest (the CPU dtype measured fastest here for the job, "
              "batches or single queries: see `info`), fp32, bf16, fp16 or int8 (CPU).")


def _fail(message: str, code: int = 1) -> None:
    click.echo(f"searchkit: error: {message}", err=True)
    sys.exit(code)


def _message(exc: SearchkitError) -> str:
    """The library's message, naming the flag where it names a Python parameter
    (`chunk_tokens=5: ...` becomes `--chunk-tokens 5: ...`)."""
    param = getattr(exc, "param", None)
    ctx = click.get_current_context(silent=True)
    if param and ctx is not None:
        long = "--" + param.replace("_", "-")
        for option in ctx.command.params:
            if isinstance(option, click.Option) and (option.name == param or long in option.opts):
                flag = long if long in option.opts else option.opts[0]
                return f"{flag} {exc.value!r}: {exc.why}"
    return str(exc)


def handle_errors(func):
    """Turn library errors into one-line messages and a non-zero exit."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except SearchkitError as exc:
            _fail(_message(exc))
        except KeyboardInterrupt:
            _fail("interrupted (nothing half-written: the index keeps its last committed state)", 130)

    return wrapper


@contextlib.contextmanager
def embedding_progress():
    """A rich bar on stderr over the bytes to embed; yields the callback `Index.ingest` takes."""
    columns = [TextColumn("embedding"), BarColumn(), DownloadColumn(), TextColumn("{task.fields[chunks]} chunks"),
               TimeElapsedColumn(), TimeRemainingColumn()]
    # Off where stderr is no terminal (a pipe, a CI log): rich draws nothing there but ends
    # with a bare newline, a blank line before any error message or the summary.
    with Progress(*columns, console=stderr, transient=True, disable=not stderr.is_interactive) as bar:
        task = bar.add_task("embed", total=None, chunks=0)

        def progress(done: int, total: int, chunks: int) -> None:
            bar.update(task, completed=done, total=total, chunks=chunks)

        yield progress


def emit_json(obj) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False))


def binary_stdin():
    """Standard input as bytes (decoded line by line in searchkit.lines, errors by line number)."""
    return sys.stdin.buffer if sys.stdin is not None else io.BytesIO()


# Options shared by the commands that build an encoder.
def encoder_options(func):
    func = click.option("--model", "-m", default=None, help="Model name or local folder (default: all-MiniLM-L6-v2).")(func)
    func = click.option("--pooling", default=None, metavar="MODE", help=POOLING_HELP)(func)
    func = click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")(func)
    func = click.option("--dtype", default="auto", show_default=True, help=DTYPE_HELP)(func)
    func = dim_option(func)
    return func


POOLING_HELP = ("Pooling (default: the model's own, else mean): mean, cls, max, lasttoken, mean_sqrt_len_tokens, "
                "weightedmean, or several joined by + (concatenated, as sentence-transformers does).")
dim_option = click.option("--dim", type=int, default=None, metavar="N",
                          help="Keep the first N values of each vector, renormalised (Matryoshka models; the "
                               "dims a model lists are in `searchkit info`). An index records it.")


# The prompts an index embeds with (recorded in it): --query-prompt for searches, --document-prompt for chunks.
def index_prompt_options(func):
    func = click.option("--query-prompt", default=None, metavar="TEXT",
                        help="Prepended to every query (default: the model's \"query\" prompt; '' for none). "
                             "Recorded in the index.")(func)
    func = click.option("--document-prompt", default=None, metavar="TEXT",
                        help="Prepended to every chunk (default: the model's \"document\"/\"passage\" prompt; '' "
                             "for none). Recorded in the index.")(func)
    return func


# The prompt `embed` and `similarity` put in front of their texts.
def prompt_options(func):
    func = click.option("--prompt-name", default=None, metavar="NAME",
                        help="One of the model's prompts (config_sentence_transformers.json), e.g. query; "
                             "default: its default prompt, if it names one.")(func)
    func = click.option("--prompt", default=None, metavar="TEXT", help="A prompt of your own, e.g. 'query: '.")(func)
    return func


json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable output on stdout.")
index_option = click.option("--index", "index_dir", default=DEFAULT_INDEX, show_default=True, type=click.Path(file_okay=False), help="Index folder.")
