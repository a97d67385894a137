"""`-` reads standard input: `embed -`, `similarity -`, `similarity TEXT -`,
`similarity --matrix -` and `search -` (one JSON line per query)."""

import io
import json
import os
from dataclasses import asdict

import numpy as np
import pytest
from click.testing import CliRunner
from index_helpers import fails_with
from test_index import write_topics

import searchkit
from searchkit.cli import main
from searchkit.similarity import cosine

CPU = ("--device", "cpu", "--dtype", "fp32")


def run(args, stdin: bytes):
    return CliRunner().invoke(main, [*map(str, args)], input=stdin)


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, minilm):
    corpus = write_topics(tmp_path_factory.mktemp("corpus"), ["del", "with", "if"])
    folder = tmp_path_factory.mktemp("idx") / "index"
    searchkit.open_index(folder, encoder=minilm, chunk_tokens=64).ingest([corpus])
    return folder


def test_embed_stdin_equals_arguments():
    stdin = "this is a test\n\n   \nanother one\r\n".encode()
    piped = run(["embed", "-", "--json", *CPU], stdin)
    assert piped.exit_code == 0, piped.output
    direct = run(["embed", "this is a test", "another one", "--json", *CPU], b"")
    assert json.loads(piped.stdout) == json.loads(direct.stdout)
    assert len(json.loads(piped.stdout)["embeddings"]) == 2  # blank lines skipped, \r\n stripped


def test_embed_stdin_with_other_texts_keeps_order():
    out = json.loads(run(["embed", "first", "-", "last", "--json", *CPU], b"middle\n").stdout)
    ref = json.loads(run(["embed", "first", "middle", "last", "--json", *CPU], b"").stdout)
    assert out == ref


@pytest.mark.parametrize("args", [["embed", "-"], ["similarity", "--matrix", "-"], ["similarity", "x", "-"],
                                  ["similarity", "-"]])
def test_invalid_utf8_names_the_line(args):
    fails_with(run([*args, *CPU], b"fine\n\nstill fine\n\xc3\x28 broken\n"), "stdin line 4: not valid UTF-8")


def test_blank_stdin_is_one_line_error():
    fails_with(run(["embed", "-", *CPU], b"\n  \n"), "stdin: no texts")


def test_similarity_matrix_from_stdin(minilm):
    texts = ["The cat sits outside", "The cat plays in the garden", "I love pasta"]
    result = run(["similarity", "--matrix", "-", "--json", *CPU], "\n".join(texts).encode())
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["texts"] == texts and out["metric"] == "cosine"
    vectors = minilm.encode(texts)
    expected = [[cosine(a, b) for b in vectors] for a in vectors]
    assert np.abs(np.array(out["matrix"]) - expected).max() < 1e-6
    human = run(["similarity", "--matrix", *texts, "--metric", "euclidean", *CPU], b"")
    assert human.exit_code == 0 and "euclidean" in human.stdout and "3. I love pasta" in human.stdout


def test_similarity_text_against_each_line(minilm):
    result = run(["similarity", "a kitten", "-", "--json", *CPU], b"a cat\n\nthe stock market\n")
    assert result.exit_code == 0, result.output
    pairs = json.loads(result.stdout)["pairs"]
    assert [(p["line"], p["sentence1"], p["sentence2"]) for p in pairs] == [(1, "a kitten", "a cat"),
                                                                           (3, "a kitten", "the stock market")]
    q, cat, market = minilm.encode(["a kitten", "a cat", "the stock market"])
    assert pairs[0]["score"] == pytest.approx(cosine(q, cat), abs=1e-6)
    assert pairs[1]["score"] == pytest.approx(cosine(q, market), abs=1e-6)


def test_similarity_dash_reads_tab_separated_pairs():
    result = run(["similarity", "-", "--json", *CPU], b"a cat\ta kitten\nstocks\tshares\n")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["source"] == "stdin" and [p["sentence2"] for p in out["pairs"]] == ["a kitten", "shares"]
    assert out["metrics"] is None  # no labels


def test_search_stdin_json_lines(index_dir, minilm):
    queries = ["delete a name binding", "conditional execution", "context manager"]
    stdin = ("\n".join([queries[0], "", queries[1], "   ", queries[2]]) + "\n").encode()
    result = run(["search", "-", "--index", index_dir, "-k", "2", "--json"], stdin)
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["query"] for r in rows] == queries
    index = searchkit.open_index(index_dir, encoder=minilm)
    for row in rows:  # each line's hits are the ones the query alone gets
        alone = index.search(row["query"], k=2)
        assert row["hits"] == json.loads(json.dumps([asdict(h) for h in alone]))  # JSON has no tuples
    assert [r["hits"][0]["path"].rsplit("/", 1)[-1] for r in rows] == ["del.txt", "if.txt", "with.txt"]


def test_search_stdin_human_groups_by_query(index_dir):
    result = run(["search", "-", "--index", index_dir, "-k", "1"], b"delete a name binding\ncontext manager\n")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.index("query: delete a name binding") < out.index("del.txt") < out.index("query: context manager")
    assert out.index("query: context manager") < out.index("with.txt")


def test_search_stdin_bad_line_after_good_ones(index_dir):
    result = run(["search", "-", "--index", index_dir, "-k", "1", "--json"], b"delete a name\n\xff\n")
    fails_with(result, "stdin line 2: not valid UTF-8")


def test_search_stdin_from_a_pipe_answers_each_query_before_the_next(index_dir):
    """A program that writes one query and waits for its JSON line gets it: queries from a
    pipe are not held back to fill a batch."""
    import queue
    import subprocess
    import sys
    import threading

    from index_helpers import REPO, env

    proc = subprocess.Popen(
        [sys.executable, "-m", "searchkit", "search", "-", "--index", str(index_dir), "-k", "1", "--json", *CPU],
        cwd=REPO, env=env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    try:
        for query, found in [("delete a name binding", "del.txt"), ("context manager", "with.txt")]:
            proc.stdin.write(query + "\n")
            proc.stdin.flush()
            row = json.loads(lines.get(timeout=90))  # queue.Empty rather than a hang
            assert row["query"] == query and row["hits"][0]["path"].endswith(found)
        proc.stdin.close()
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_search_stdin_batches_only_what_is_all_there(tmp_path):
    from searchkit.cli.search import _query_batch_size

    file = tmp_path / "queries.txt"
    file.write_text("a\nb\n")
    with open(file, "rb") as regular:
        assert _query_batch_size(regular) == 64
    read, write = os.pipe()
    with os.fdopen(read, "rb") as pipe, os.fdopen(write, "wb"):
        assert _query_batch_size(pipe) == 1
    assert _query_batch_size(io.BytesIO(b"a\n")) == 64  # in memory (CliRunner's input)
