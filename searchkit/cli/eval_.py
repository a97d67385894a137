"""`searchkit eval`: retrieval quality on a BEIR dataset."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table
from rich.text import Text

from .common import (
    DTYPE_HELP,
    dim_option,
    embedding_progress,
    emit_json,
    handle_errors,
    index_prompt_options,
    json_option,
    stdout,
)
from .group import main


@main.command(name="eval")
@click.argument("dataset_dir", type=click.Path(path_type=Path))
@click.option("--index", "index_dir", default=None, type=click.Path(file_okay=False),
              help="Index folder to ingest into and keep (default: a temporary one).")
@click.option("--model", "-m", default=None, help="Model name or local folder (default: all-MiniLM-L6-v2).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda.")
@click.option("--dtype", default="auto", show_default=True, help=DTYPE_HELP)
@click.option("--mode", "modes", default="dense", show_default=True, metavar="MODES",
              help="dense, lexical, hybrid, a comma list of them, or all.")
@click.option("--chunking", type=click.Choice(["whole", "chunks"]), default="whole", show_default=True,
              help="whole: one vector per record, truncated at the model's max length (the BEIR protocol); "
                   "chunks: searchkit's token windows, a document scored by its best chunk.")
@click.option("--split", default="test", show_default=True, help="Which qrels/<split>.tsv to evaluate on.")
@click.option("--limit-docs", type=int, default=None, help="Only the first N corpus records (and the queries judged on them).")
@click.option("--limit-queries", type=int, default=None, help="Only the first N judged queries.")
@dim_option
@index_prompt_options
@json_option
@handle_errors
def eval_(dataset_dir, index_dir, model, device, dtype, modes, chunking, split, limit_docs, limit_queries, as_json,
          dim, query_prompt, document_prompt):
    """Retrieval quality on a BEIR dataset: nDCG@10, Recall@100, MRR@10 and timings."""
    from ..evaluate import evaluate

    names = ["dense", "lexical", "hybrid"] if modes.strip() == "all" else [m.strip() for m in modes.split(",") if m.strip()]
    with embedding_progress() as progress:
        report = evaluate(dataset_dir, index_dir=index_dir, model=model, device=device, dtype=dtype, modes=names,
                          chunking=chunking, split=split, limit_docs=limit_docs, limit_queries=limit_queries,
                          progress=progress, dim=dim, query_prompt=query_prompt, document_prompt=document_prompt)
    if as_json:
        emit_json(report.to_dict())
        return
    table = Table(title=Text(f"{report.dataset} ({report.split}): {report.documents} documents, {report.queries} queries; "
                             f"{report.model} {report.dtype} on {report.device}, chunking {report.chunking} "
                             f"({report.chunks} chunks)"))
    for col in ("mode", "nDCG@10", "Recall@100", "MRR@10", "query s"):
        table.add_column(col, justify="left" if col == "mode" else "right")
    for mode, r in report.results.items():
        table.add_row(mode, f"{r['ndcg@10']:.4f}", f"{r['recall@100']:.4f}", f"{r['mrr@10']:.4f}", f"{r['query_seconds']:.2f}")
    stdout.print(table)
    stdout.print(f"ingest {report.ingest_seconds:.1f} s ({report.chunks_embedded} chunks embedded)"
                 + (f" -> {report.index}" if report.index else ""), highlight=False, markup=False)
