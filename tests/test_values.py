"""Values that used to go wrong quietly or loudly (issue 12): text that is not valid UTF-8,
a parity plot path that cannot be written, a --where value that starts with an operator,
cosines past 1, and `eval --index` on a user's own index. Each is refused in one line
before anything is computed or written, or comes out exact."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from index_helpers import REPO, chunks_of, env, fails_with, ingest_args, invoke, write_corpus
from test_evaluate import _beir

from searchkit.encoder import Encoder
from searchkit.errors import BadInput, MissingDependency
from searchkit.evaluate import evaluate
from searchkit.filters import compile_where
from searchkit.index import Index
from searchkit.parity import check_plot_path
from searchkit.similarity import compare, cosine

BAD = "caf\udce9 \udcff"  # what Python makes of the bytes b"caf\xe9 \xff" on a command line
SHOWN = r"'caf\xe9 \xff'"


@pytest.fixture(scope="module")
def enc(small_bert):
    return Encoder(small_bert, device="cpu", dtype="fp32")


@pytest.fixture(scope="module")
def built(tmp_path_factory, small_bert):
    """A user's index of four files, built by `searchkit ingest` with the small BERT."""
    root = tmp_path_factory.mktemp("built")
    corpus, index = write_corpus(root / "corpus", ["pass", "while", "lambda", "del"]), root / "index"
    result = invoke(*ingest_args(corpus, index, small_bert))
    assert result.exit_code == 0, result.output
    return index


def _listing(folder: Path) -> dict:
    """Every file under `folder` with its size and mtime (SQLite's -wal/-shm aside)."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and not p.name.endswith(("-wal", "-shm"))}


# ------------------------------------------------------------------ text not valid UTF-8


def test_encoder_refuses_text_that_is_not_utf8(enc):
    with pytest.raises(BadInput) as err:
        enc.encode(["fine", BAD])
    assert str(err.value) == f"text {SHOWN} is not valid UTF-8 (byte 0xe9 at character 4)"
    with pytest.raises(BadInput, match=r"^query 'caf\\xe9 \\xff' is not valid UTF-8"):
        enc.encode([BAD], what="query")
    with pytest.raises(BadInput, match=r"'a\\nb\\ud800' is not valid UTF-8 \(lone surrogate U\+D800 at character 4\)"):
        enc.encode(["a\nb\ud800"])  # one line, whatever the text holds
    with pytest.raises(BadInput, match=r"'…x{30}\\xff y+…' is"):
        enc.encode(["x" * 100 + "\udcff " + "y" * 100])  # a long text is shown around the bad byte
    with pytest.raises(BadInput, match="text 2 is bytes, not str: decode it first"):
        enc.encode(["ok", b"caf\xc3\xa9"])
    assert enc.encode(["café ☕", "naïve"]).shape == (2, enc.dim)  # valid non-ASCII text is fine


def test_embed_and_similarity_cli_refuse_text_not_utf8(small_bert):
    fails_with(invoke("embed", "fine", BAD, "--model", small_bert, "--device", "cpu"), SHOWN, "not valid UTF-8")
    fails_with(invoke("similarity", BAD, "fine", "--model", small_bert, "--device", "cpu", "--json"), SHOWN)


@pytest.mark.parametrize("mode", ["dense", "lexical", "hybrid"])
def test_search_refuses_query_not_utf8_in_every_mode(built, mode):
    index = Index(built, device="cpu")
    try:
        # lexical used to drop the bad bytes silently and search for "caf"
        with pytest.raises(BadInput, match=r"'caf\\xe9 \\xff' is not valid UTF-8"):
            index.search(BAD, mode=mode)
        assert index.search("café loop", k=1, mode=mode)  # valid non-ASCII still searches
    finally:
        index.close()
    fails_with(invoke("search", BAD, "--index", built, "--device", "cpu", "--mode", mode), SHOWN)


def test_search_process_with_a_non_utf8_argument(built):
    """The real thing: bytes that are not UTF-8 on the command line of a `searchkit` process."""
    proc = subprocess.run(
        [sys.executable, "-m", "searchkit", "search", b"caf\xe9 \xff", "--index", str(built), "--device", "cpu"],
        cwd=REPO, env=env(LC_ALL="C.UTF-8"), capture_output=True, timeout=120,
    )
    err = proc.stderr.decode("utf-8").strip()
    assert proc.returncode == 1, err
    assert err.splitlines() == [f"searchkit: error: text {SHOWN} is not valid UTF-8 (byte 0xe9 at character 4)"] \
        or err.splitlines() == [f"searchkit: error: query {SHOWN} is not valid UTF-8 (byte 0xe9 at character 4)"], err


# ------------------------------------------------------------------ parity --plot path


def test_check_plot_path(tmp_path):
    assert check_plot_path(tmp_path / "p.png") == tmp_path / "p.png"
    assert check_plot_path(tmp_path / "p.PDF") == tmp_path / "p.PDF"
    with pytest.raises(BadInput, match=r"^plot /no/such/dir/p.png: the folder /no/such/dir does not exist$"):
        check_plot_path("/no/such/dir/p.png")
    with pytest.raises(BadInput, match="is a folder"):
        check_plot_path(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(BadInput, match="is not a folder"):
        check_plot_path(tmp_path / "file" / "p.png")
    with pytest.raises(BadInput, match=r"p.txt: expected a .png file name \(or .*\.svg"):
        check_plot_path(tmp_path / "p.txt")
    with pytest.raises(BadInput, match="expected a .png file name"):
        check_plot_path(tmp_path / "p")  # matplotlib would write p.png, not p


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_check_plot_path_unwritable(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o555)
    with pytest.raises(BadInput, match="not writable"):
        check_plot_path(tmp_path / "ro" / "p.png")


def test_check_plot_path_without_matplotlib(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "matplotlib" else real(name, *a))
    with pytest.raises(MissingDependency, match="needs matplotlib"):
        check_plot_path(tmp_path / "p.png")


def test_parity_cli_checks_the_plot_path_before_loading_anything(small_bert, monkeypatch):
    def loads(*args, **kwargs):
        raise AssertionError("the encoder was loaded before the plot path was checked")

    monkeypatch.setattr("searchkit.encoder.Encoder", loads)
    monkeypatch.setattr("searchkit.parity.load_reference", loads)
    fails_with(invoke("parity", "--model", small_bert, "--plot", "/no/such/dir/p.png"), "/no/such/dir/p.png")


# ------------------------------------------------------------------ --where values


@pytest.mark.parametrize(
    "where,meant",
    [
        ("field.year=>2019", "field.year>=2019"),
        ("field.year=<2019", "field.year<=2019"),
        ("field.year==2019", "field.year=2019"),
        ("field.year<>2019", "field.year!=2019"),
        ("field.lang=!de", "field.lang!=de"),
        ("field.year>==2019", "field.year>=2019"),
        ("field.year = >2019", "field.year>=2019"),
        ("mtime=>2024-01-01", "mtime>=2024-01-01"),
        ("mtime=<2024-01-01", "mtime<=2024-01-01"),
        ("mtime>>2024-01-01", "mtime>2024-01-01"),
    ],
)
def test_where_value_starting_with_an_operator_is_refused(where, meant):
    with pytest.raises(BadInput) as err:
        compile_where(where)
    message = str(err.value)
    assert repr(where) in message and message.endswith(f"did you mean {meant}?") and "\n" not in message


@pytest.mark.parametrize("where", ["mtime>=<2024", "field.year=>"])
def test_where_operator_garble_without_a_guess(where):
    with pytest.raises(BadInput, match="is not an operator"):
        compile_where(where)


def test_where_legitimate_values_still_parse():
    assert compile_where("field.year>=2019").params == ('$."year"', '$."year"', 2019)
    assert compile_where("field.delta=-5").params == ('$."delta"', -5, "-5")
    assert compile_where("field.eq=a=b").params == ('$."eq"', '$."eq"', "a=b")  # '=' inside a value is fine
    assert compile_where("path:=odd.md").params == ("*/=odd.md",)  # path and type take any text
    assert compile_where({"field.f": ">2019"}).params == ('$."f"', '$."f"', ">2019")  # the dict form takes any


def test_where_cli_names_the_condition_and_the_fix(built):
    fails_with(invoke("search", "loop", "--index", built, "--where", "field.year=>2019"),
               "'field.year=>2019'", "did you mean field.year>=2019?")


# ------------------------------------------------------------------ cosine within [-1, 1]


def test_cosine_of_a_vector_with_itself_is_exactly_one():
    v = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    v /= np.linalg.norm(v)  # a float32 unit vector whose dot / norms gives 1.0000000000000002
    assert cosine(v, v) == 1.0 and compare(v, v)["cosine"] == 1.0
    assert cosine(v, -v) == -1.0 and cosine(v, 2 * v) == 1.0
    assert cosine(v, np.zeros_like(v)) == 0.0


def test_cosine_agrees_with_the_textbook_formula():
    rng = np.random.default_rng(1)
    for i in range(300):
        a, b = rng.standard_normal(64), rng.standard_normal(64)
        b = (a, -a, np.zeros(64))[i % 3] + 1e-3 * b if i % 2 else b  # near-parallel and near-opposite too
        value = cosine(a, b)
        assert -1.0 <= value <= 1.0
        assert value == pytest.approx(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)), abs=1e-12)


def test_similarity_cli_identical_texts_give_exactly_one():
    result = invoke("similarity", "a b", "a b", "--device", "cpu", "--json", "--all-metrics")
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["cosine"] == 1.0


# ------------------------------------------------------------------ eval --index


def test_eval_refuses_a_user_index_and_writes_nothing_to_it(built, tmp_path):
    dataset = _beir(tmp_path / "ds")
    before, listing = chunks_of(built), _listing(built)
    with pytest.raises(BadInput, match=r"already an index of 4 other files .* would add the ds corpus"):
        evaluate(dataset, index_dir=built, device="cpu")
    fails_with(invoke("eval", dataset, "--index", built, "--device", "cpu"), str(built), "other files")
    assert chunks_of(built) == before and _listing(built) == listing
    assert not (built / "eval-corpus").exists()


def test_eval_reuses_its_own_index_and_refuses_another_dataset_in_it(tmp_path, small_bert):
    index = tmp_path / "eval-index"
    first = evaluate(_beir(tmp_path / "ds"), index_dir=index, model=small_bert, device="cpu")
    assert first.chunks_embedded == 4 and first.index == str(index)
    again = evaluate(tmp_path / "ds", index_dir=index, model=small_bert, device="cpu")
    assert again.chunks_embedded == 0 and again.runs == first.runs
    smaller = evaluate(tmp_path / "ds", index_dir=index, model=small_bert, device="cpu", limit_docs=3)
    assert smaller.chunks == 3  # the same dataset, cut: still its own corpus
    with pytest.raises(BadInput, match="would add the other corpus"):
        evaluate(_beir(tmp_path / "other"), index_dir=index, model=small_bert, device="cpu")
