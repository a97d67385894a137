"""Retrieval quality: BEIR-layout datasets, IR metrics, and the run behind `searchkit eval`.

A BEIR folder holds `corpus.jsonl` (`_id`, `title`, `text`), `queries.jsonl` (`_id`,
`text`) and `qrels/<split>.tsv` (header `query-id corpus-id score`, then one judgement
a line). Metrics follow trec_eval as BEIR runs it (pytrec_eval):

- nDCG@k: DCG = Σ_{i≤k} gain_i / log2(i + 1) with gain = the graded relevance (linear,
  not 2^rel - 1), divided by the DCG of the ideal order of the query's judgements;
- Recall@k: relevant documents in the top k / relevant documents judged;
- MRR@k: 1 / rank of the first relevant document in the top k, else 0.

A document is relevant when its score is > 0. Each is averaged over the queries that have
at least one relevant document (a query with no results counts 0).

    >>> ds = load_beir("../shared/data/scifact")
    >>> report = evaluate("../shared/data/scifact", modes=["dense", "hybrid"])
    >>> report.results["dense"]["ndcg@10"]
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from .errors import BadInput, bad_value
from .index import Index
from .retrieval import check_mode

# What `searchkit eval` reports: (metric, cutoff).
REPORTED = (("ndcg", 10), ("recall", 100), ("mrr", 10))
SHARD_RECORDS = 1000  # corpus records per JSON Lines file of the ingested copy

Qrels = Mapping[str, Mapping[str, int]]  # query id -> document id -> relevance


# ---------------------------------------------------------------------------- metrics


def _dcg(gains: np.ndarray) -> float:
    return float((gains / np.log2(np.arange(2, len(gains) + 2))).sum())


def _top(ranked: Sequence[str], k: int) -> list[str]:
    """The first k distinct ids (a document found twice counts once, at its best rank)."""
    return list(dict.fromkeys(ranked))[:k]


def ndcg_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    """nDCG@k of one ranked list of document ids, graded relevance, linear gain.

        >>> round(ndcg_at_k(["a", "b", "c"], {"b": 1, "c": 2}, 3), 4)  # (1/log2 3 + 2/2) / (2 + 1/log2 3)
        0.6199
    """
    gains = np.array([max(relevance.get(d, 0), 0) for d in _top(ranked, k)], dtype=float)
    ideal = np.sort(np.array([g for g in relevance.values() if g > 0], dtype=float))[::-1][:k]
    best = _dcg(ideal)
    return _dcg(gains) / best if best > 0 else 0.0


def recall_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    """Share of the relevant documents found in the top k.

        >>> recall_at_k(["a", "b", "c"], {"b": 1, "z": 1}, 2)
        0.5
    """
    relevant = {d for d, g in relevance.items() if g > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(_top(ranked, k))) / len(relevant)


def mrr_at_k(ranked: Sequence[str], relevance: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant document within the top k, else 0.

        >>> mrr_at_k(["a", "b", "c"], {"c": 1}, 10), mrr_at_k(["a", "b", "c"], {"c": 1}, 2)
        (0.3333333333333333, 0.0)
    """
    for rank, d in enumerate(_top(ranked, k), start=1):
        if relevance.get(d, 0) > 0:
            return 1.0 / rank
    return 0.0


METRICS: dict[str, Callable[[Sequence[str], Mapping[str, int], int], float]] = {
    "ndcg": ndcg_at_k,
    "recall": recall_at_k,
    "mrr": mrr_at_k,
}


def per_query(run: Mapping[str, Sequence[str]], qrels: Qrels, metric: str, k: int) -> dict[str, float]:
    """One metric for every judged query with a relevant document (0 when not in `run`)."""
    fn = METRICS[metric]
    return {
        qid: fn(run.get(qid, ()), rel, k)
        for qid, rel in qrels.items()
        if any(g > 0 for g in rel.values())
    }


def score_run(run: Mapping[str, Sequence[str]], qrels: Qrels, metrics=REPORTED) -> dict[str, float]:
    """Mean of each (metric, k) over the judged queries, keyed like "ndcg@10".

        >>> score_run({"q1": ["a", "b"]}, {"q1": {"b": 1}}, [("mrr", 10)])
        {'mrr@10': 0.5}
    """
    out = {}
    for metric, k in metrics:
        values = list(per_query(run, qrels, metric, k).values())
        out[f"{metric}@{k}"] = float(np.mean(values)) if values else 0.0
    return out


# ---------------------------------------------------------------------------- BEIR folders


@dataclass
class BeirDataset:
    """A BEIR dataset, cut to what an evaluation uses."""

    folder: Path
    name: str
    records: list[str]  # corpus.jsonl lines (JSON objects), in file order
    doc_ids: list[str]
    queries: dict[str, str]  # query id -> text: the split's judged queries, in qrels order
    qrels: dict[str, dict[str, int]]  # query id -> document id -> relevance


def _need(path: Path) -> Path:
    if not path.is_file():
        raise BadInput(f"{path}: not found (a BEIR folder holds corpus.jsonl, queries.jsonl, qrels/test.tsv)")
    return path


def _jsonl(path: Path):
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise BadInput(f"{path} line {n}: not valid JSON") from None
            if not isinstance(record, dict) or "_id" not in record:
                raise BadInput(f"{path} line {n}: not a record with an _id")
            yield n, line.strip(), record


def read_qrels(path: Path) -> dict[str, dict[str, int]]:
    """`query-id corpus-id score` lines (tab-separated, one header line) to nested dicts."""
    qrels: dict[str, dict[str, int]] = {}
    with open(_need(path), encoding="utf-8") as fh:
        header = fh.readline().split()
        if header[:2] != ["query-id", "corpus-id"]:
            raise BadInput(f"{path} line 1: expected the header 'query-id corpus-id score'")
        for n, line in enumerate(fh, start=2):
            if not line.strip():
                continue
            parts = line.rstrip("\n").split("\t")
            try:
                qid, did, score = parts[0], parts[1], int(float(parts[2]))
            except (IndexError, ValueError):
                raise BadInput(f"{path} line {n}: expected query-id, corpus-id and an integer score") from None
            qrels.setdefault(qid, {})[did] = score
    return qrels


def load_beir(
    folder: str | Path,
    split: str = "test",
    limit_docs: int | None = None,
    limit_queries: int | None = None,
) -> BeirDataset:
    """Read a BEIR folder. With `limit_docs`, only the first N corpus records, judgements on
    other documents dropped, and only the queries left with a relevant document; with
    `limit_queries`, the first N of those queries (in the order of the qrels file)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise BadInput(f"{folder}: no such dataset folder")
    for name, value in (("limit_docs", limit_docs), ("limit_queries", limit_queries)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise bad_value(name, value, "must be a positive integer")
    corpus = _need(folder / "corpus.jsonl")
    records, doc_ids, seen = [], [], set()
    for n, line, record in _jsonl(corpus):
        if limit_docs is not None and len(records) >= limit_docs:
            break
        did = str(record["_id"])
        if did in seen:
            raise BadInput(f"{corpus} line {n}: duplicate _id {did!r}")
        seen.add(did)
        records.append(line)
        doc_ids.append(did)
    qrels = read_qrels(folder / "qrels" / f"{split}.tsv")
    if limit_docs is not None:
        qrels = {q: {d: s for d, s in rel.items() if d in seen} for q, rel in qrels.items()}
    qrels = {q: rel for q, rel in qrels.items() if any(s > 0 for s in rel.values())}
    texts = {str(r["_id"]): str(r.get("text", "")) for _, _, r in _jsonl(_need(folder / "queries.jsonl"))}
    missing = [q for q in qrels if q not in texts]
    if missing:
        raise BadInput(f"{folder / 'queries.jsonl'}: no text for judged query {missing[0]!r} ({len(missing)} missing)")
    qids = list(qrels)[:limit_queries] if limit_queries else list(qrels)
    return BeirDataset(folder, folder.resolve().name, records, doc_ids, {q: texts[q] for q in qids},
                       {q: qrels[q] for q in qids})


def write_corpus(ds: BeirDataset, folder: Path) -> list[Path]:
    """The corpus as JSON Lines shards in `folder` (unchanged shards are not rewritten, so a
    re-run embeds nothing; shards left from a larger corpus are removed)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for start in range(0, max(len(ds.records), 1), SHARD_RECORDS):
        path = folder / f"part-{start // SHARD_RECORDS + 1:05d}.jsonl"
        body = "".join(line + "\n" for line in ds.records[start : start + SHARD_RECORDS])
        if not path.is_file() or path.read_text(encoding="utf-8") != body:
            tmp = path.with_name(path.name + ".part")
            tmp.write_text(body, encoding="utf-8")
            tmp.replace(path)
        written.append(path)
    for stale in set(folder.glob("part-*.jsonl")) - set(written):
        stale.unlink()
    return written


# ---------------------------------------------------------------------------- the run


@dataclass
class EvalReport:
    """What `searchkit eval` prints: one entry of `results` per search mode."""

    dataset: str
    split: str
    documents: int
    queries: int
    model: str
    dtype: str
    device: str
    chunking: str
    chunks: int
    index: str | None  # None: a temporary index, gone after the run
    ingest_seconds: float
    chunks_embedded: int
    results: dict[str, dict[str, float]] = field(default_factory=dict)  # mode -> "ndcg@10"...
    runs: dict[str, dict[str, list[str]]] = field(default_factory=dict, repr=False)  # mode -> qid -> ids

    def to_dict(self) -> dict:
        out = asdict(self)
        del out["runs"]
        return out


def rank_documents(
    index: Index,
    queries: Sequence[str],
    n_docs: int,
    mode: str,
    where=None,
) -> list[list[str]]:
    """The best `n_docs` document keys for each query; a document scores as its best chunk.
    Searches deep enough in chunks to find `n_docs` distinct documents where they exist."""
    counts = index.catalog.counts()
    per_doc = counts["chunks"] / max(counts["documents"], 1)
    # One chunk per document (whole chunking): n_docs chunks are n_docs documents. Otherwise
    # start half as deep again as the average document's share, and go deeper where needed.
    k = n_docs if per_doc <= 1 else math.ceil(n_docs * per_doc * 1.5)
    k = max(1, min(k, counts["chunks"]))
    out: list[list[str]] = [[] for _ in queries]
    todo = list(range(len(queries)))
    while todo:
        hits = index.search_many([queries[i] for i in todo], k, mode=mode, where=where)
        again = []
        for i, found in zip(todo, hits):
            out[i] = list(dict.fromkeys(h.document for h in found))[:n_docs]
            if len(out[i]) < n_docs and len(found) == k and k < counts["chunks"]:
                again.append(i)  # all k chunks came from fewer documents: go deeper
        todo, k = again, min(k * 2, counts["chunks"])
    return out


def evaluate(
    dataset: str | Path,
    *,
    index_dir: str | Path | None = None,
    model: str | Path | None = None,
    device: str | None = "auto",
    dtype: str | None = "auto",
    modes: Sequence[str] = ("dense",),
    chunking: str = "whole",
    split: str = "test",
    limit_docs: int | None = None,
    limit_queries: int | None = None,
    encoder=None,
    progress=None,
    dim: int | None = None,
    query_prompt: str | None = None,
    document_prompt: str | None = None,
) -> EvalReport:
    """Ingest a BEIR corpus (one document per record, title and text embedded together) into
    `index_dir` (a temporary index when None; an existing one must hold nothing but this
    dataset's corpus, as an earlier evaluation into it left it: then nothing is embedded
    again), run every judged query of `split` in each mode, and score the rankings (nDCG@10, Recall@100, MRR@10; times in seconds).

    `chunking="whole"` embeds each record as one input truncated at the model's maximum
    length (the sentence-transformers/BEIR protocol); "chunks" uses searchkit's token
    windows and scores each document by its best chunk. Queries are embedded with the
    model's query prompt and records with its document prompt (or `query_prompt`,
    `document_prompt`); `dim` truncates the vectors (Matryoshka).

        >>> evaluate("scifact/", modes=["dense", "lexical", "hybrid"]).results["hybrid"]
        {'ndcg@10': ..., 'recall@100': ..., 'mrr@10': ..., 'query_seconds': ...}
    """
    modes = list(dict.fromkeys(check_mode(m) for m in modes))
    if not modes:
        raise bad_value("modes", list(modes), "give at least one of dense, lexical, hybrid")
    ds = load_beir(dataset, split, limit_docs, limit_queries)
    if not ds.queries:
        raise BadInput(f"{ds.folder}: no judged query has a relevant document in the corpus read")
    with tempfile.TemporaryDirectory(prefix="searchkit-eval-") as tmp:
        folder = Path(index_dir).expanduser() if index_dir is not None else Path(tmp) / "index"
        index = Index(folder, model=model, device=device, dtype=dtype, chunking=chunking, encoder=encoder, dim=dim,
                      query_prompt=query_prompt, document_prompt=document_prompt)
        try:
            return _run(index, ds, modes, chunking, split, index_dir is not None, progress)
        finally:
            index.close()


def check_own_index(index: Index, corpus_dir: Path, name: str) -> None:
    """Refuse an existing index that holds files other than the ones in `corpus_dir` (the
    dataset's corpus, as an earlier evaluation into it wrote them): an evaluation must not
    add a benchmark corpus to someone's index, nor score against their documents. Reads only."""
    if not index.exists:
        return
    inside = str(corpus_dir.resolve()) + os.sep
    others = sorted(p for p in index.catalog.files() if not p.startswith(inside))
    if others:
        raise BadInput(
            f"{index.folder}: already an index of {len(others)} other file{'s' * (len(others) != 1)} "
            f"({others[0]}{', …' if len(others) > 1 else ''}); evaluating would add the {name} corpus to it: "
            "give a new folder (or one an earlier evaluation of this dataset made)"
        )


def _run(index: Index, ds: BeirDataset, modes, chunking, split, keep: bool, progress) -> EvalReport:
    corpus_dir = index.folder / "eval-corpus" / re.sub(r"[^\w.-]", "_", ds.name)
    check_own_index(index, corpus_dir, ds.name)  # before anything is written into the folder
    write_corpus(ds, corpus_dir)
    summary = index.ingest([corpus_dir], progress=progress)
    settings = index.settings
    report = EvalReport(
        dataset=str(ds.folder), split=split, documents=len(ds.records), queries=len(ds.queries),
        model=str(settings.model), dtype=index.encoder.dtype_name, device=str(index.encoder.device),
        chunking=settings.chunking, chunks=index.catalog.counts()["chunks"],
        index=str(index.folder) if keep else None, ingest_seconds=summary.seconds,
        chunks_embedded=summary.chunks_added,
    )
    qids = list(ds.queries)
    texts = [ds.queries[q] for q in qids]
    depth = max(k for _, k in REPORTED)
    for mode in modes:
        started = time.perf_counter()
        ranked = rank_documents(index, texts, depth, mode)
        seconds = time.perf_counter() - started
        run = dict(zip(qids, ranked))
        report.runs[mode] = run
        report.results[mode] = {**score_run(run, ds.qrels), "query_seconds": round(seconds, 3)}
    return report
