"""Copy SciFact's abstracts (BEIR layout) into a JSON Lines corpus searchkit reads directly.

    python corpora/export_scifact.py scifact.jsonl --limit 500
    searchkit ingest scifact.jsonl

Each output line holds `_id`, `title` and `text`; searchkit makes one document per line
(text = title, a blank line, the abstract). See corpora/README.md for the licence.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# The project's copy of SciFact lies beside the checkout, in ../shared/data/scifact.
DEFAULT_SOURCE = Path(__file__).resolve().parents[2] / "shared" / "data" / "scifact" / "corpus.jsonl"


def export(source: Path, out_file: Path, limit: int | None = None) -> int:
    """Copy up to `limit` records from `source` to `out_file`; returns how many were written."""
    written = 0
    out_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_file.with_name(out_file.name + ".part")
    with (
        source.open(encoding="utf-8") as src,
        tmp.open("w", encoding="utf-8", newline="\n") as out,
    ):
        for n, line in enumerate(src, start=1):
            if limit is not None and written >= limit:
                break
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                row = {
                    "_id": str(record["_id"]),
                    "title": record.get("title") or "",
                    "text": record["text"],
                }
            except (json.JSONDecodeError, KeyError, TypeError) as e:
                raise SystemExit(f"{source} line {n}: not a BEIR corpus record ({e})") from None
            out.write(json.dumps(row, ensure_ascii=False) + "\n")
            written += 1
    tmp.replace(out_file)  # no half-written corpus left behind
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_file", type=Path, help="JSON Lines file to write")
    parser.add_argument(
        "--source",
        type=Path,
        default=DEFAULT_SOURCE,
        help=f"BEIR corpus.jsonl to read (default: {DEFAULT_SOURCE})",
    )
    parser.add_argument("--limit", type=int, default=None, help="copy only the first N records")
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 1:
        parser.error("--limit must be at least 1")
    if not args.source.is_file():
        parser.error(f"{args.source}: no such file (pass --source PATH to a BEIR corpus.jsonl)")
    n = export(args.source, args.out_file, args.limit)
    print(f"wrote {n} records to {args.out_file}", file=sys.stderr)


if __name__ == "__main__":
    main()
