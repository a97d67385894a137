"""Write Python's own help topics as a small text corpus: one .txt file per topic.

    python corpora/export_pydoc_topics.py corpora/pydoc-topics

The topics are the language reference sections that `help("assert")` and friends show,
shipped with CPython as `pydoc_data.topics.topics` (a dict: topic name -> text). Each file
is named after its topic and starts with the topic name on a line of its own, then a blank
line, then the text. The texts change a little from one Python version to the next.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


def safe_name(topic: str) -> str:
    """A file name for a topic: letters, digits, '-', '_' and '.' kept, anything else '_'."""
    name = re.sub(r"[^A-Za-z0-9._-]", "_", topic).strip("._") or "topic"
    return f"{name}.txt"


def export(out_dir: Path) -> list[Path]:
    from pydoc_data.topics import topics

    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    seen: dict[str, str] = {}
    for topic in sorted(topics):
        name = safe_name(topic)
        if name.lower() in seen:  # case-insensitive file systems too
            raise SystemExit(f"topics {seen[name.lower()]!r} and {topic!r} map to one file {name}")
        seen[name.lower()] = topic
        path = out_dir / name
        text = topics[topic].strip("\n")
        path.write_text(f"{topic}\n\n{text}\n", encoding="utf-8", newline="\n")
        written.append(path)
    stale = sorted(p.name for p in out_dir.glob("*.txt") if p.name.lower() not in seen)
    if stale:
        note = f"note: {len(stale)} files there are not topics of this Python: {stale}"
        print(note, file=sys.stderr)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path, help="folder to write the .txt files into")
    args = parser.parse_args(argv)
    written = export(args.out_dir)
    size = sum(p.stat().st_size for p in written)
    version = ".".join(map(str, sys.version_info[:3]))
    summary = f"wrote {len(written)} topics, {size / 2**20:.2f} MB, from Python {version}"
    print(summary, file=sys.stderr)


if __name__ == "__main__":
    main()
