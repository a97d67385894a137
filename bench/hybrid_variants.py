"""Lexical and hybrid variants on SciFact, over an index `eval_scifact.py` already built.

    python bench/hybrid_variants.py --index /tmp/sk_eval/scifact-whole [--record]

Rebuilds the chunk text of the index into scratch FTS5 tables with other tokenizers
(unicode61, porter, with or without query stopwords) and fuses each lexical list with the
index's dense list under a few RRF constants and weights. No embedding is redone: only
the 300 queries are encoded. SciFact has test qrels only, so the best row here is chosen
on the split it is measured on: read the spread between rows, not the maximum, as the
evidence.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from _common import SCIFACT, record  # noqa: E402

from searchkit.evaluate import load_beir, score_run  # noqa: E402
from searchkit.index import Index  # noqa: E402
from searchkit.retrieval import STOPWORDS, fts_query, rrf  # noqa: E402

TOKENIZERS = ["unicode61", "unicode61 remove_diacritics 2", "porter unicode61 remove_diacritics 2"]
DEPTH = 200


def lexical_lists(chunks: list[tuple[int, str]], tokenize: str, queries: list[str], stop) -> list[list[tuple[int, float]]]:
    with tempfile.TemporaryDirectory() as tmp:
        db = sqlite3.connect(Path(tmp) / "fts.db")
        db.execute(f"CREATE VIRTUAL TABLE f USING fts5(text, tokenize='{tokenize}')")
        db.executemany("INSERT INTO f(rowid, text) VALUES (?, ?)", chunks)
        db.commit()
        out = []
        for q in queries:
            match = fts_query(q, stop)
            rows = db.execute("SELECT rowid, bm25(f) FROM f WHERE f MATCH ? ORDER BY bm25(f), rowid LIMIT ?",
                              [match, DEPTH]).fetchall() if match else []
            out.append([(int(r), -float(s)) for r, s in rows])
        db.close()
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", type=Path, required=True)
    ap.add_argument("--dataset", type=Path, default=SCIFACT)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()

    ds = load_beir(args.dataset)
    qids = list(ds.queries)
    texts = [ds.queries[q] for q in qids]
    index = Index(args.index, device="cpu", dtype="fp32")
    db = index.catalog.db
    chunks = db.execute("SELECT id, text FROM chunks ORDER BY id").fetchall()
    key_of = dict(db.execute("SELECT chunks.id, documents.key FROM chunks JOIN documents ON chunks.document_id = documents.id"))
    dense = index._dense(index.encoder.encode(texts), DEPTH, None)

    def score(lists, k=100):
        run = {q: list(dict.fromkeys(key_of[i] for i, _ in lst))[:k] for q, lst in zip(qids, lists)}
        return score_run(run, ds.qrels)

    rows = ["| lexical tokenizer | query stopwords | fusion | nDCG@10 | Recall@100 | MRR@10 |", "|---|---|---|---:|---:|---:|"]

    def add(tok, stop, fusion, m):
        rows.append(f"| {tok} | {stop} | {fusion} | {m['ndcg@10']:.4f} | {m['recall@100']:.4f} | {m['mrr@10']:.4f} |")
        print(rows[-1], flush=True)

    add("—", "—", "dense only", score(dense))
    for tok in TOKENIZERS:
        for stop_name, stop in (("kept", frozenset()), ("dropped", STOPWORDS)):
            lex = lexical_lists(chunks, tok, texts, stop)
            add(tok, stop_name, "lexical only", score(lex))
            for c in (20, 60, 100):
                add(tok, stop_name, f"RRF c={c}", score([rrf([d, x], 100, c=c) for d, x in zip(dense, lex)]))
            for w in ((1.0, 1.5), (1.5, 1.0)):
                add(tok, stop_name, f"RRF c=60, weights dense:lexical {w[0]}:{w[1]}",
                    score([rrf([d, x], 100, weights=w) for d, x in zip(dense, lex)]))
    index.close()
    lines = rows + ["", f"- index: {args.index} ({len(chunks)} chunks, {index.settings.chunking} chunking); "
                        f"each list {DEPTH} deep before fusion",
                    "- SciFact has test qrels only: these variants are compared on the split they are reported on."]
    if args.record:
        record("SciFact lexical/hybrid variants (bench/hybrid_variants.py)", lines)


if __name__ == "__main__":
    main()
