"""A one-shot query from a fresh process: `searchkit search` against the usual glue script,
sentence-transformers + FAISS, each started anew, taking turns.

    python bench/cli_startup.py [--index IDX] [--rounds 7] [--record]

A user who runs one search from the shell pays the process's start-up: Python, the
imports, the model and the index. This times, per round and in turn:

- `import torch` alone: the floor under any PyTorch encoder;
- `searchkit search QUERY --index IDX -k 10 --json`, as shipped;
- the same with pandas imported first, as every command did before sqlite-utils was
  imported with pandas hidden (searchkit/store/sqlite_import.py); only when pandas is
  installed;
- a glue script: load sentence-transformers' model from the same folder and a FAISS flat
  index of the same vectors (written once, before timing), embed the query, search, and
  print the hits' chunk ids.

Without --index a temporary index of the bundled corpus (corpora/pydoc-topics) is built
first. Reported: each one's median and fastest wall time and the ratio of medians to the
glue's.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from _common import record  # noqa: E402

import searchkit  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
QUERY = "how do I catch an exception"

GLUE = """
import sys
import faiss
from sentence_transformers import SentenceTransformer
model_dir, index_file, query, k = sys.argv[1:5]
model = SentenceTransformer(model_dir, device="cpu")
index = faiss.read_index(index_file)
scores, ids = index.search(model.encode([query], normalize_embeddings=True), int(k))
print(ids[0].tolist())
"""


def glue_index(index_dir: str, into: Path) -> tuple[str, Path]:
    """The model folder of index `index_dir` and a FAISS flat file of its vectors."""
    import faiss

    index = searchkit.open_index(index_dir, device="cpu")
    ids = index.vectors.ids()
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(index.vectors.dim))
    flat.add_with_ids(index.vectors.reconstruct(ids), ids)
    path = into / "glue.faiss"
    faiss.write_index(flat, str(path))
    return str(index.encoder.path), path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--index", help="an index to search (default: the bundled corpus, built first)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()

    tmp = tempfile.TemporaryDirectory()
    index_dir = args.index
    if index_dir is None:
        index_dir = str(Path(tmp.name) / "index")
        print(f"building {index_dir} from corpora/pydoc-topics ...", file=sys.stderr)
        searchkit.open_index(index_dir, device="cpu").ingest([str(REPO / "corpora" / "pydoc-topics")])
    model_dir, flat = glue_index(index_dir, Path(tmp.name))

    py = sys.executable
    search = ["search", QUERY, "--index", index_dir, "-k", str(args.k), "--json"]
    runs = {
        "import torch (floor)": [py, "-c", "import torch"],
        "searchkit search": [py, "-m", "searchkit", *search],
    }
    if importlib.util.find_spec("pandas") is not None:
        runs["searchkit search, pandas imported first"] = [
            py, "-c", f"import sys, pandas; sys.argv = ['searchkit', *{search!r}]; "
                      "from searchkit.cli import main; main()"]
    runs["sentence-transformers + FAISS glue"] = [py, "-c", GLUE, model_dir, str(flat), QUERY, str(args.k)]

    times: dict[str, list[float]] = {name: [] for name in runs}
    order = list(runs)
    for r in range(args.rounds):
        for name in order if r % 2 == 0 else order[::-1]:  # who goes first alternates
            start = time.perf_counter()
            done = subprocess.run(runs[name], capture_output=True, text=True, cwd=REPO)
            times[name].append(time.perf_counter() - start)
            if done.returncode:
                sys.exit(f"cli_startup: {name} failed:\n{done.stderr[-2000:]}")

    glue = statistics.median(times["sentence-transformers + FAISS glue"])
    lines = [f"one query ({QUERY!r}, k = {args.k}) from a fresh process, {args.rounds} rounds taking turns; "
             "× is the ratio of medians to the glue's", "",
             "| run | median s | fastest s | × glue |", "|---|---:|---:|---:|"]
    for name, ts in times.items():
        lines.append(f"| {name} | {statistics.median(ts):.2f} | {min(ts):.2f} | {statistics.median(ts) / glue:.2f} |")
    print("\n".join(lines))
    if args.record:
        record("One-shot query from a fresh process", lines)
    tmp.cleanup()


if __name__ == "__main__":
    main()
