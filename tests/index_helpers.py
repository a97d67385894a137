"""Helpers for the tests that drive `searchkit` as a separate process and look inside an
index folder with plain sqlite3 and FAISS (as another process would), not through `Index`.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from searchkit.cli import main

REPO = Path(__file__).resolve().parent.parent

# 45 short and middling pydoc topics (~60 kB): about 300 chunks of 64 tokens.
CRASH_TOPICS = [
    "pass", "numbers", "typesfunctions", "continue", "lambda", "break", "lists", "imaginary",
    "shifting", "else", "if", "conversions", "dynamic-features", "while", "bltin-code-objects",
    "atom-literals", "yield", "bitwise", "unary", "attribute-references", "truth", "floating",
    "nonlocal", "del", "return", "typesmodules", "assert", "exprlists", "atom-identifiers",
    "power", "integers", "specialattrs", "booleans", "global", "in", "typesmethods", "slicings",
    "context-managers", "id-classes", "for", "augassign", "dict", "exceptions", "subscriptions",
    "class",
]


def env(**extra) -> dict:
    """The environment for a `python -m searchkit` child: offline, this checkout first."""
    out = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    out.pop("SEARCHKIT_TEST_CRASH_AT", None)
    out.pop("SEARCHKIT_TEST_PAUSE_AT", None)
    out.pop("SEARCHKIT_TEST_PAUSE_SECONDS", None)
    out.update({k: str(v) for k, v in extra.items()})
    return out


def _default_sigint() -> None:
    # A shell starts background jobs with SIGINT ignored, children inherit that, and Python
    # then installs no KeyboardInterrupt handler: a test run from `make test &` would see
    # its Ctrl-C go nowhere. Give the child the default, as a terminal would.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def start(args: list[str], **extra_env) -> subprocess.Popen:
    """`python -m searchkit ARGS` in the background, stdout and stderr captured."""
    return subprocess.Popen(
        [sys.executable, "-m", "searchkit", *map(str, args)],
        cwd=REPO, env=env(**extra_env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_sigint,
    )


def run(args: list[str], timeout: float = 120, **extra_env) -> subprocess.CompletedProcess:
    """`python -m searchkit ARGS` to the end."""
    return subprocess.run(
        [sys.executable, "-m", "searchkit", *map(str, args)],
        cwd=REPO, env=env(**extra_env), capture_output=True, text=True, timeout=timeout,
    )


def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def kill(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> tuple[int, str, str]:
    if proc.poll() is None:
        proc.send_signal(sig)
    return finish(proc)


def wait_for(condition, proc: subprocess.Popen | None = None, timeout: float = 60, step: float = 0.01):
    """Poll `condition()` until true; fails if `proc` ends first or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process ended (rc {proc.returncode}) before the condition held: "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        time.sleep(step)
    raise AssertionError("timed out waiting")


def query(folder: Path, sql: str, params=()) -> list[tuple]:
    """Rows of `sql` on the folder's catalog, on a connection of its own (closed after)."""
    db = sqlite3.connect(folder / "catalog.db", timeout=30)
    try:
        return db.execute(sql, params).fetchall()
    finally:
        db.close()


def generation(folder: Path) -> int:
    """The committed generation, read as another process would (0 when there is no catalog)."""
    if not (folder / "catalog.db").is_file():
        return 0
    try:
        rows = query(folder, "SELECT value FROM settings WHERE key = 'generation'")
    except sqlite3.OperationalError:
        return 0  # no settings table yet
    return int(json.loads(rows[0][0])) if rows else 0


def chunks_of(folder: Path) -> list[tuple]:
    """Every chunk as (path, document key, ordinal, start, end, text), sorted: what a clean
    build of the same files must equal, whatever the chunk ids."""
    return sorted(query(
        folder,
        "SELECT files.path, documents.key, chunks.ordinal, chunks.start, chunks.end, chunks.text "
        "FROM chunks JOIN documents ON chunks.document_id = documents.id "
        "JOIN files ON documents.file_id = files.id",
    ))


def segment_files(folder: Path) -> list[str]:
    """The names of the segment files the committed generation lists, oldest first."""
    if generation(folder) == 0:
        return []
    return [name for (name,) in query(folder, "SELECT name FROM segments ORDER BY id")]


def vectors_of(folder: Path) -> dict[tuple, np.ndarray]:
    """(path, key, ordinal) -> the stored vector of that chunk, for the committed generation,
    read from the segment files with FAISS (a chunk's id is in exactly one of them)."""
    import faiss

    rows = query(
        folder,
        "SELECT chunks.id, files.path, documents.key, chunks.ordinal "
        "FROM chunks JOIN documents ON chunks.document_id = documents.id "
        "JOIN files ON documents.file_id = files.id",
    )
    dead = {(i, s) for i, s in query(folder, "SELECT id, segment FROM dead")} if generation(folder) else set()
    found: dict[int, np.ndarray] = {}
    for segment_id, name in query(folder, "SELECT id, name FROM segments") if generation(folder) else []:
        index = faiss.read_index(str(folder / name))
        for i in faiss.vector_to_array(index.id_map).tolist():
            if i >= 0 and (i, segment_id) not in dead:
                assert i not in found, f"chunk {i} is live in two segments"
                found[i] = index.reconstruct(int(i))
    return {(p, k, o): found[i] for i, p, k, o in rows}


def write_corpus(folder: Path, names=CRASH_TOPICS) -> Path:
    from pydoc_data.topics import topics

    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / f"{name}.txt").write_text(f"{name}\n\n{topics[name]}", encoding="utf-8")
    return folder


CHUNK_TOKENS = 64


def ingest_args(corpus: Path, index: Path, model: Path, *extra) -> list[str]:
    return ["ingest", str(corpus), "--index", str(index), "--model", str(model),
            "--chunk-tokens", str(CHUNK_TOKENS), "--device", "cpu", "--json", *extra]


def verify_ok(index: Path) -> dict:
    """`searchkit verify --json` exits 0 and reports vectors and chunks in equal number."""
    result = CliRunner().invoke(main, ["verify", "--index", str(index), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] and report["counts"]["vectors"] == report["counts"]["chunks"]
    return report


def search_ok(index: Path, disk: bool = False) -> list[dict]:
    """A search succeeds and each hit is its document's slice (and the file's, with `disk`:
    after a killed update the index rightly holds the old text of changed files)."""
    result = CliRunner().invoke(main, ["search", "loop over a sequence", "--index", str(index), "-k", "5", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    for hit in hits:
        [(text,)] = query(index, "SELECT documents.text FROM chunks JOIN documents "
                                 "ON chunks.document_id = documents.id WHERE chunks.id = ?", [hit["chunk_id"]])
        assert text[hit["start"]:hit["end"]] == hit["text"]
        if disk:
            assert Path(hit["path"]).read_text(encoding="utf-8") == text
    return hits


def invoke(*args):
    """`searchkit ARGS` in this process (CliRunner), every argument made a string."""
    return CliRunner().invoke(main, [*map(str, args)])


def fails_with(result, *needles) -> str:
    """Exit 1 and exactly one stderr line, `searchkit: error: ...`, holding each needle."""
    assert result.exit_code == 1, (result.exit_code, result.output, result.exception)
    err = result.stderr.strip()
    assert result.stderr == err + "\n", result.stderr  # one line: no blank line before it either
    assert err.startswith("searchkit: error: ") and "Traceback" not in err
    for needle in needles:
        assert str(needle) in err, (needle, err)
    return err


def usage_fails(result, *needles) -> str:
    """A usage error: exit 2 and exactly one stderr line, `searchkit: error: ...`, holding each needle."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    err = result.stderr.strip()
    assert result.stderr == err + "\n", result.stderr
    assert err.startswith("searchkit: error: ") and "Usage:" not in err
    for needle in needles:
        assert str(needle) in err, (needle, err)
    return err
