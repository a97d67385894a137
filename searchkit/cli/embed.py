"""`searchkit embed` and `searchkit similarity`: vectors of texts, and how alike texts are
(two texts, sentence pairs, or a matrix), with the `-` arguments that read standard input."""

from __future__ import annotations

import click
from rich.table import Table
from rich.text import Text

from ..errors import BadInput
from .common import (
    binary_stdin,
    emit_json,
    encoder_options,
    handle_errors,
    json_option,
    prompt_options,
    stderr,
    stdout,
)
from .group import main


@main.command()
@click.argument("texts", nargs=-1, required=True)
@encoder_options
@prompt_options
@click.option("--layer", type=int, default=None, help="Hidden state to pool (0 = embeddings).")
@click.option("--no-normalize", is_flag=True, help="Skip the L2 normalisation.")
@json_option
@handle_errors
def embed(texts, model, pooling, device, dtype, layer, no_normalize, as_json, dim, prompt_name, prompt):
    """Print the embedding vector of each TEXT (`-`: each line of standard input, blank ones skipped)."""
    from ..encoder_loading import load_encoder

    texts = _with_stdin(texts)  # before seconds of loading the model
    enc = load_encoder(model, pooling=pooling, device=device, dtype=dtype, layer=layer, normalize=not no_normalize,
                       dim=dim, prompt_name=prompt_name, prompt=prompt)
    vectors = enc.encode(list(texts))
    if as_json:
        emit_json({"model": enc.name, "dim": enc.dim, "embeddings": vectors.tolist()})
        return
    prompt = enc.prompts.resolve()
    stdout.print(f"model {enc.name}, dim {enc.dim}, pooling {enc.pooling}, dtype {enc.dtype_name}"
                 + (f", prompt {prompt!r}" if prompt else ""), highlight=False, markup=False)
    for text, vec in zip(texts, vectors):
        head = ", ".join(f"{x:.4f}" for x in vec[:6])
        stdout.print(f"{text!r}: [{head}, …] (norm {float((vec ** 2).sum()) ** 0.5:.4f})", highlight=False, markup=False)


@main.command()
@click.argument("texts", nargs=-1)
@encoder_options
@prompt_options
@click.option("--metric", type=click.Choice(["cosine", "dot", "euclidean", "manhattan"]), default="cosine",
              show_default=True, help="Similarity (cosine, dot) or distance (euclidean, manhattan: lower = more alike).")
@click.option("--all-metrics", is_flag=True, help="Two texts: every metric (cosine, dot, euclidean, manhattan).")
@click.option("--pairs", "pairs_file", default=None, metavar="FILE",
              help="Score every pair of a sentence-pair file (TSV, or CSV by its .csv name; `-`: stdin); "
                   "with labels, also accuracy/threshold/ROC AUC (0/1) or Spearman/Pearson (graded).")
@click.option("--matrix", "as_matrix", is_flag=True, help="Every TEXT against every other (`-`: the lines of stdin).")
@json_option
@handle_errors
def similarity(texts, model, pooling, device, dtype, metric, all_metrics, pairs_file, as_matrix, as_json, dim,
               prompt_name, prompt):
    """How alike texts are: two texts, sentence pairs, or a matrix.

    \b
    similarity TEXT1 TEXT2        cosine (--metric, --all-metrics)
    similarity TEXT -             TEXT against each line of stdin
    similarity -                  pairs from stdin, TEXT1<TAB>TEXT2 a line (as --pairs -)
    similarity --pairs FILE.tsv   every pair of a file, and metrics when it has labels
    similarity --matrix TEXT...   every text against every other
    """
    from ..encoder_loading import load_encoder
    from ..similarity import METRICS, compare

    job = _similarity_job(texts, pairs_file, as_matrix, all_metrics)  # reads stdin or the file first
    enc = load_encoder(model, pooling=pooling, device=device, dtype=dtype, dim=dim, prompt_name=prompt_name,
                       prompt=prompt)
    if job is not None:
        (_show_matrix if as_matrix else _show_pairs)(enc, job, metric, as_json)
        return
    text1, text2 = texts
    a, b = enc.encode([text1, text2])
    scores = compare(a, b, METRICS if all_metrics else (metric,))
    if as_json:
        emit_json({"model": enc.name, **scores})
        return
    for name, value in scores.items():
        stdout.print(f"{name:<10} {value:.4f}", highlight=False)


def _stdin_lines() -> list[tuple[int, str]]:
    """(line number, text) of each non-blank line of stdin; bad UTF-8 is a one-line error."""
    from ..lines import numbered_lines

    return list(numbered_lines(binary_stdin(), "stdin"))


def _with_stdin(texts: tuple[str, ...]) -> list[str]:
    """TEXT arguments with `-` replaced by the lines of stdin."""
    if texts.count("-") > 1:
        raise click.UsageError("`-` (standard input) may be given once")
    out: list[str] = []
    for text in texts:
        out += [line for _, line in _stdin_lines()] if text == "-" else [text]
    if not out:
        raise BadInput("stdin: no texts (only blank lines)")
    for n, text in enumerate(out, 1):  # as `search ''` is refused: a vector of nothing answers nothing
        if not text.strip():
            raise BadInput("empty text" if len(out) == 1 else f"text {n} is empty")
    return out


def _similarity_job(texts: tuple[str, ...], pairs_file: str | None, as_matrix: bool, all_metrics: bool):
    """What `similarity` was asked: None for two texts, else the matrix's texts or a PairFile."""
    from ..pairs import Pair, PairFile, read_pairs

    if all_metrics and (as_matrix or pairs_file or "-" in texts):
        raise click.UsageError("--all-metrics goes with two texts; pick one with --metric")
    if as_matrix:
        if pairs_file:
            raise click.UsageError("--matrix or --pairs, not both")
        if not texts:
            raise click.UsageError("--matrix needs TEXTs (or `-` for the lines of stdin)")
        return _with_stdin(texts)
    if pairs_file or texts == ("-",):
        if pairs_file and texts:
            raise click.UsageError("--pairs FILE takes no TEXT arguments")
        source = pairs_file or "-"
        stdin = binary_stdin() if source == "-" else None
        return read_pairs("stdin" if source == "-" else source, stream=stdin)
    if len(texts) != 2:
        raise click.UsageError("give TEXT1 TEXT2, TEXT -, `-`, --pairs FILE or --matrix TEXT...")
    if texts == ("-", "-"):
        raise click.UsageError("`-` (standard input) may be given once")
    if "-" not in texts:
        return None
    text = texts[1] if texts[0] == "-" else texts[0]
    lines = _stdin_lines()
    if not lines:
        raise BadInput("stdin: no texts (only blank lines)")
    pairs = [Pair(n, *((line, text) if texts[0] == "-" else (text, line))) for n, line in lines]
    return PairFile("stdin", pairs, {"sentence1": 0, "sentence2": 1}, header=False)


def _show_pairs(enc, pair_file, metric: str, as_json: bool) -> None:
    """Every pair's score, then the metrics when the pairs have labels."""
    from ..pairs import score_pairs

    report = score_pairs(enc, pair_file, metric)
    if as_json:
        emit_json(report.to_dict())
        return
    labelled = report.metrics is not None
    table = Table(title=Text(f"{metric} of {len(report.pairs)} pairs from {report.source} ({enc.name})"))
    for col in ("line", metric, *(("label",) if labelled else ()), "sentence1", "sentence2"):
        table.add_column(col, justify="right" if col in ("line", metric, "label") else "left")
    for pair, score in zip(report.pairs, report.scores):
        label = (f"{pair.label:g}",) if labelled else ()
        table.add_row(str(pair.line), f"{score:.4f}", *label, Text(pair.sentence1), Text(pair.sentence2))
    stdout.print(table)
    m = report.metrics
    if m and m["labels"] == "binary":
        auc = "n/a" if m["roc_auc"] is None else f"{m['roc_auc']:.4f}"
        stdout.print(f"{m['pairs']} pairs ({m['similar']} similar, {m['different']} different): accuracy "
                     f"{m['accuracy']:.4f} at {metric} {'<=' if metric in ('euclidean', 'manhattan') else '>='} "
                     f"{m['threshold']:.4f}, ROC AUC {auc}", highlight=False, markup=False)
    elif m:
        def fmt(x):
            return "n/a" if x is None else f"{x:.4f}"

        stdout.print(f"{m['pairs']} pairs with graded labels: Spearman {fmt(m['spearman'])}, "
                     f"Pearson {fmt(m['pearson'])}", highlight=False, markup=False)
    for note in report.notes:
        stderr.print(f"searchkit: note: {note}", highlight=False, markup=False)


def _show_matrix(enc, texts: list[str], metric: str, as_json: bool) -> None:
    """The metric between every two texts: a table, or {"texts", "matrix"} with --json."""
    from ..similarity import matrix

    values = matrix(enc.encode(texts), metric)
    if as_json:
        emit_json({"model": enc.name, "metric": metric, "texts": texts, "matrix": values.tolist()})
        return
    table = Table(title=Text(f"{metric} ({enc.name})"))
    table.add_column("text")
    for i in range(len(texts)):
        table.add_column(str(i + 1), justify="right")
    for i, (text, row) in enumerate(zip(texts, values)):
        short = text if len(text) <= 40 else text[:39] + "…"
        table.add_row(Text(f"{i + 1}. {short}"), *(f"{v:.4f}" for v in row))
    stdout.print(table)
