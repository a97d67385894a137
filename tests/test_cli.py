"""The `searchkit` command through click's CliRunner: output shapes and one-line errors."""

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_index import write_topics

from searchkit.cli import main
from searchkit.encoder import Encoder


@pytest.fixture(scope="module")
def runner():
    return CliRunner()


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory, runner):
    corpus = write_topics(tmp_path_factory.mktemp("corpus"), ["lambda", "del", "with", "import"])
    index = tmp_path_factory.mktemp("idx") / "index"
    result = runner.invoke(main, ["ingest", str(corpus), "--index", str(index), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    for key in ("files_seen", "files_added", "files_updated", "files_removed", "files_skipped",
                "chunks_added", "chunks_removed", "seconds"):
        assert key in summary
    assert summary["files_added"] == 4
    return index


@pytest.mark.parametrize("command", sorted(main.commands))
def test_every_command_has_help(runner, command):
    result = runner.invoke(main, [command, "--help"])
    assert result.exit_code == 0
    assert main.commands[command].help, f"{command} has no help text"


def test_search_json(runner, index_dir):
    result = runner.invoke(main, ["search", "delete a name binding", "--index", str(index_dir), "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    hits = json.loads(result.stdout)
    assert len(hits) == 3
    assert set(hits[0]) >= {"rank", "score", "path", "chunk_id", "text", "start", "end"}
    assert Path(hits[0]["path"]).name == "del.txt"
    doc = Path(hits[0]["path"]).read_text(encoding="utf-8")
    assert doc[hits[0]["start"]:hits[0]["end"]] == hits[0]["text"]


def test_search_human(runner, index_dir):
    result = runner.invoke(main, ["search", "context manager", "--index", str(index_dir), "-k", "2"])
    assert result.exit_code == 0
    assert "with.txt" in result.stdout and " 1." in result.stdout


def test_reingest_json_counts_unchanged(runner, index_dir, tmp_path):
    info = json.loads(runner.invoke(main, ["info", "--index", str(index_dir), "--json"]).stdout)
    assert info["files"] == 4 and info["vectors"] == info["chunks"]
    assert info["settings"]["model"] == "all-MiniLM-L6-v2"


def test_embed_json(runner):
    result = runner.invoke(main, ["embed", "this is a test", "another", "--json"])
    assert result.exit_code == 0
    out = json.loads(result.stdout)
    assert out["model"] == "all-MiniLM-L6-v2" and out["dim"] == 384
    assert len(out["embeddings"]) == 2 and len(out["embeddings"][0]) == 384
    assert sum(x * x for x in out["embeddings"][0]) == pytest.approx(1.0, abs=1e-5)


def test_embed_no_normalize(runner):
    out = json.loads(runner.invoke(main, ["embed", "this is a test", "--no-normalize", "--json"]).stdout)
    assert abs(sum(x * x for x in out["embeddings"][0]) - 1.0) > 0.01


def test_similarity_all_metrics(runner):
    result = runner.invoke(main, ["similarity", "The cat sits outside", "The cat plays in the garden",
                                  "--all-metrics", "--json"])
    out = json.loads(result.stdout)
    assert out["cosine"] == pytest.approx(0.68, abs=0.006)
    assert out["dot"] == pytest.approx(out["cosine"], abs=1e-5)  # normalised vectors
    assert out["euclidean"] == pytest.approx((2 - 2 * out["cosine"]) ** 0.5, abs=1e-4)
    assert out["manhattan"] > out["euclidean"]


@pytest.mark.parametrize(
    "args,message",
    [
        (["search", "x", "--index", "{tmp}/nope"], "no index here"),
        (["search", "", "--index", "{index}"], "empty query"),
        (["search", "x", "--index", "{index}", "-k", "0"], "-k 0"),
        (["search", "x", "--index", "{index}", "-k", "-2"], "-k -2"),
        (["ingest", "{tmp}/missing", "--index", "{tmp}/i2"], "no such file or directory"),
        (["embed", "x", "--model", "no-such-model"], "unknown model 'no-such-model'"),
        (["embed", "x", "--model", "{tmp}"], "not a model folder"),
        (["embed", "x", "--dtype", "fp8"], "--dtype 'fp8'"),
        (["embed", "x", "--layer", "99"], "--layer 99"),
        (["ingest", "{tmp}", "--index", "{index}", "--pooling", "cls"], "pooling"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(runner, index_dir, tmp_path, args, message):
    args = [a.format(tmp=tmp_path, index=index_dir) for a in args]
    result = runner.invoke(main, args)
    assert result.exit_code != 0
    err = result.stderr.strip()
    assert message in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_unknown_model_lists_available(runner):
    result = runner.invoke(main, ["embed", "x", "--model", "nope"])
    assert "all-MiniLM-L6-v2" in result.stderr


def test_parity_command(runner, tmp_path):
    pytest.importorskip("transformers")
    plot = tmp_path / "p.png"
    result = runner.invoke(main, ["parity", "--json", "--plot", str(plot)])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["passed"] and report["layers"][0]["name"] == "embeddings"
    assert len(report["layers"]) == 7
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_info_reports_the_machine(runner, index_dir):
    import torch

    from searchkit.store.gpu import gpu_count

    info = json.loads(runner.invoke(main, ["info", "--index", str(index_dir), "--json"]).stdout)
    machine = info["machine"]
    assert machine["torch"] == torch.__version__
    assert machine["auto_device"] == ("cuda" if torch.cuda.is_available() else "cpu")
    assert machine["auto_dtype"] == ("fp16" if torch.cuda.is_available() else "fp32")
    assert isinstance(machine["cpu_instructions"], list) and machine["cpu_model"]
    speeds = info["cpu_dtypes"]  # measured only by --retime (test_info_answers_at_once_and_times_only_when_asked)
    assert speeds["measured"] == [] or [d["dtype"] for d in speeds["measured"]] == ["fp32", "bf16", "int8"]
    assert info["searches_on"] == ("GPU 0" if gpu_count() else "CPU")  # CI: faiss-cpu
    assert machine["cpu_batch_streams"] == min(2, machine["cpu_threads"])  # cpu_streams.py


def test_info_says_how_batches_share_the_cpu(runner, index_dir, monkeypatch):
    import torch

    from searchkit.cpu_streams import ENV

    def machine_line(streams: str) -> str:
        monkeypatch.setenv(ENV, streams)
        return " ".join(runner.invoke(main, ["info", "--index", str(index_dir)]).stdout.split())

    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        assert "CPU batches: 2 side by side, threads 2+1 (SEARCHKIT_CPU_STREAMS)" in machine_line("2")
        assert "CPU batches: 3 side by side, 1 thread each" in machine_line("3")
        assert "CPU batches: one at a time" in machine_line("1")
    finally:
        torch.set_num_threads(before)


def test_search_with_fastest_takes_the_dtype_fastest_for_single_queries(runner, index_dir, monkeypatch):
    from searchkit import dtype_speed
    from searchkit.dtype_speed import DtypeSpeed

    # int8 is the pick for single queries here, and not for batches (where nothing beats fp32)
    monkeypatch.setattr(dtype_speed, "measured", lambda model, refresh=False: [
        DtypeSpeed("fp32", 1000.0, 1.0, True, 5.0), DtypeSpeed("bf16", 1000.0, 0.9999, True, 5.0),
        DtypeSpeed("int8", 1000.0, 0.999, True, 2.0)])
    seen = []
    real_init = Encoder.__init__

    def recording_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        seen.append(self.dtype_name)

    monkeypatch.setattr(Encoder, "__init__", recording_init)
    result = runner.invoke(main, ["search", "delete a name", "--index", str(index_dir), "--dtype", "fastest", "--json"])
    assert result.exit_code == 0, result.output
    assert seen == ["int8"] and json.loads(result.stdout)
    seen.clear()
    result = runner.invoke(main, ["embed", "delete a name", "--dtype", "fastest", "--json"])
    assert result.exit_code == 0, result.output
    assert seen == ["fp32"]  # embedding texts: the batch figures, where int8 gains nothing


def test_info_answers_at_once_and_times_only_when_asked(runner, index_dir, tmp_path, monkeypatch):
    """Timing the dtypes took `info` a minute on a busy CPU, every run: now it shows cached
    figures or says there are none, `--retime` measures, and nothing claims a cache not written."""
    from searchkit import dtype_speed
    from searchkit.dtype_speed import DtypeSpeed

    monkeypatch.setenv("SEARCHKIT_CACHE_DIR", str(tmp_path / "cache"))
    runs = []

    def fake_measure(model, steady=True):
        runs.append(model)
        return [DtypeSpeed("fp32", 1000.0, 1.0, steady, 5.0), DtypeSpeed("bf16", 2000.0, 0.9999, steady, 3.0),
                DtypeSpeed("int8", 500.0, 0.999, steady, 2.0)]

    monkeypatch.setattr(dtype_speed, "measure", fake_measure)
    args = ["info", "--index", str(index_dir)]

    def line(*extra):
        result = runner.invoke(main, [*args, *extra])
        assert result.exit_code == 0, result.output
        return " ".join(result.stdout.split()), result.stderr

    text, err = line()  # nothing cached: nothing timed, and it says so
    assert runs == [] and err == ""
    assert "dtypes not measured on this CPU yet; `searchkit info --retime` measures them (about a minute)" in text
    speeds = json.loads(runner.invoke(main, [*args, "--json"]).stdout)["cpu_dtypes"]
    assert speeds["measured"] == [] and speeds["fastest"] is None and not speeds["cached"] and runs == []

    text, err = line("--retime")  # measured on purpose, and cached
    assert len(runs) == 1 and "timing" in err and "cached" not in err
    cache = dtype_speed.cache_file()
    assert cache.exists() and "fastest = bf16 for batches, int8 for single queries (cached in /" in text
    speeds = json.loads(runner.invoke(main, [*args, "--json"]).stdout)["cpu_dtypes"]
    assert (speeds["fastest"], speeds["fastest_for_queries"], speeds["cached"]) == ("bf16", "int8", True)
    assert speeds["cache_file"] == str(cache)
    assert len(runs) == 1  # read from the cache

    monkeypatch.setattr(dtype_speed, "measure", lambda model: fake_measure(model, steady=False))
    text, err = line("--retime")
    assert len(runs) == 2 and "cached in" not in text
    assert "fastest = fp32 for batches, fp32 for single queries (the CPU was busy: these figures are not cached" in text
    text, _ = line()  # the busy run replaced nothing
    assert "bf16 2,000 tok/s, 3.0 ms a query" in text and "fastest = bf16 for batches, int8 for single queries" in text

    monkeypatch.setattr(dtype_speed, "measure", fake_measure)
    monkeypatch.setenv("SEARCHKIT_CACHE_DIR", str(cache))  # a file where the folder should be: unwritable
    text, _ = line("--retime")
    assert len(runs) == 3 and "(not cached: could not write /" in text




def test_control_characters_in_names_are_escaped_in_plain_output(runner, tmp_path, small_bert):
    """A name holding a newline split the hit line; plain output escapes it, JSON keeps it."""
    from index_helpers import ingest_args

    corpus = tmp_path / "corpus"
    corpus.mkdir()
    text = "Lighthouses guide ships past the rocks at night."
    (corpus / "a\nline.txt").write_text(text, encoding="utf-8")
    (corpus / "b\tcopy\x1b[31m.txt").write_text(text, encoding="utf-8")
    (corpus / "c\nbad.png").write_bytes(b"\x89PNG")
    index = tmp_path / "index"
    ingested = runner.invoke(main, ingest_args(corpus, index, small_bert)[:-1])  # plain, not --json
    assert ingested.exit_code == 0, ingested.output
    assert f"skipped {corpus}/c\\nbad.png: unsupported type .png\n" in ingested.stderr
    assert len(ingested.stderr.splitlines()) == 1
    hits = runner.invoke(main, ["search", "lighthouse", "--index", str(index), "--distinct"])
    assert hits.exit_code == 0, hits.output
    lines = hits.stdout.splitlines()
    assert len(lines) == 3, lines  # the hit, its text, its copy
    assert "a\\nline.txt" in lines[0] and "same text: " in lines[2] and "b\\tcopy\\x1b[31m.txt" in lines[2]
    raw = json.loads(runner.invoke(main, ["search", "lighthouse", "--index", str(index), "--json"]).stdout)
    assert sorted(Path(h["path"]).name for h in raw) == ["a\nline.txt", "b\tcopy\x1b[31m.txt"]
