"""Index types (flat, hnsw, ivfpq): recall against exact search, removal, filters,
save/load, the auto switch to hnsw, and `searchkit ingest --index-type` end to end."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from searchkit.cli import main
from searchkit.errors import BadInput
from searchkit.index import Index
from searchkit.store import vectors as vmod
from searchkit.store.vectors import FaissVectors
from searchkit.verify import repair, verify

DIM = 384
N = 12_000  # ivfpq trains from IVF_MIN_TRAIN (10,000) vectors
# recall@10 against exact search, at the default efSearch / nprobe; ivfpq's m=16 codes
# (16 bytes a vector, for a fast test) are coarse: its bound is about ranking, not exactness
# (0.67 here with the OPQ rotation; plain PQ gets about 0.4).
KINDS = {"flat": ({}, 1.0), "hnsw": ({}, 0.95), "ivfpq": ({"m": 16}, 0.55)}


def clustered(n: int, seed: int = 0) -> np.ndarray:
    """Unit vectors around 100 centres, on a 16-d manifold plus a little noise: near
    neighbours that mean something (uniform noise in 384-d has none)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((100, DIM)).astype("float32")
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    basis = rng.standard_normal((16, DIM)).astype("float32") / np.sqrt(DIM)
    x = (centres[rng.integers(0, 100, n)] + 0.5 * rng.standard_normal((n, 16)).astype("float32") @ basis
         + 0.02 * rng.standard_normal((n, DIM)).astype("float32"))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def data():
    x = clustered(N)
    rng = np.random.default_rng(1)
    q = x[rng.choice(N, 40, replace=False)] + 0.02 * rng.standard_normal((40, DIM)).astype("float32")
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    return np.arange(1, N + 1, dtype=np.int64), x, q


@pytest.fixture(scope="module", params=list(KINDS))
def built(request, data):
    ids, x, _ = data
    params, bound = KINDS[request.param]
    vectors = FaissVectors.from_vectors(request.param, ids, x, **params)
    return request.param, vectors, bound


def exact(x: np.ndarray, ids: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    top = np.argsort(-(q @ x.T), axis=1, kind="stable")[:, :k]
    return ids[top]


def recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(g) & set(w)) / len(w) for g, w in zip(got, want)]))


def test_kind_and_recall(built, data):
    kind, vectors, bound = built
    ids, x, q = data
    assert vectors.kind == kind and vectors.count == N
    assert vectors.settings["index_type"] == kind
    _, got = vectors.search(q, 10)
    assert recall(got, exact(x, ids, q, 10)) >= bound


def test_remove_save_load_filter(built, data, tmp_path):
    kind, original, bound = built
    ids, x, q = data
    vectors = FaissVectors.load(_saved(original, tmp_path / "a.faiss"), original.settings["index_params"])
    gone = ids[::10]  # 10%: hnsw keeps them as tombstones
    assert vectors.remove(gone) == len(gone)
    assert vectors.remove(gone) == 0
    assert vectors.count == N - len(gone)
    if kind == "hnsw":
        assert vectors.tombstones == len(gone)
    loaded = FaissVectors.load(_saved(vectors, tmp_path / "b.faiss"), vectors.settings["index_params"])
    assert loaded.kind == kind and loaded.count == N - len(gone) and loaded.params == vectors.params
    assert set(loaded.ids().tolist()) == set(ids.tolist()) - set(gone.tolist())
    live = np.setdiff1d(ids, gone)
    for v in (vectors, loaded):
        _, got = v.search(q, 10)
        assert (got >= 0).all(), "k live hits despite the removals"
        assert not set(got.ravel()) & set(gone.tolist())
        assert recall(got, exact(x[live - 1], live, q, 10)) >= bound
    # where-filters: only allowed ids, k of them, ranked as the exact search among them
    allowed = live[::37]
    _, got = loaded.search(q, 10, ids=np.concatenate([allowed, gone[:50]]))
    assert (got >= 0).all() and set(got.ravel()) <= set(allowed.tolist())
    if kind != "ivfpq":
        assert recall(got, exact(x[allowed - 1], allowed, q, 10)) == 1.0
    _, few = loaded.search(q[:2], 10, ids=allowed[:3])
    assert sorted(few[0][:3]) == sorted(allowed[:3]) and (few[:, 3:] == -1).all()


def test_broad_filters_search_the_index(built, data, monkeypatch):
    """Past EXACT_FILTER allowed ids, hnsw and ivfpq search their own structure with the
    filter as an IDSelector (a wider beam, more lists probed): still only allowed ids."""
    kind, vectors, bound = built
    ids, x, q = data
    monkeypatch.setattr(vmod, "EXACT_FILTER", 10)
    allowed = ids[::3]
    _, got = vectors.search(q, 10, ids=allowed)
    assert (got >= 0).all() and set(got.ravel()) <= set(allowed.tolist())
    assert recall(got, exact(x[allowed - 1], allowed, q, 10)) >= bound


def test_ivfpq_m_fits_the_dim():
    assert [vmod._default_m(d) for d in (384, 1024, 32)] == [48, 32, 32]


def test_each_kind_is_one_class_of_the_interface(data):
    ids, x, _ = data
    for kind, cls in vmod.KIND_CLASSES.items():
        vectors = FaissVectors.from_vectors(kind, ids[:3000], x[:3000], **KINDS[kind][0])
        assert type(vectors) is cls and vectors.kind == kind and isinstance(vectors, vmod.VectorIndex)
        assert vectors.settings["index_type"] == kind and vectors.count == vectors.held == 3000
    with pytest.raises(BadInput, match="trained on its vectors"):
        FaissVectors.create(DIM, "ivfpq")


def _saved(vectors: FaissVectors, path) -> str:
    vectors.save(path)
    return path


def test_hnsw_removals_are_tombstones_that_searches_skip(data):
    ids, x, q = data
    vectors = FaissVectors.from_vectors("hnsw", ids[:3000], x[:3000])
    assert vectors.remove(ids[:700]) == 700
    assert vectors.tombstones == 700 and vectors.held == 3000 and vectors.count == 2300
    assert np.allclose(vectors.reconstruct(ids[700:705]), x[700:705])
    _, got = vectors.search(q, 10)
    assert (got > 700).all()
    rebuilt = vectors.converted("hnsw")
    assert rebuilt.tombstones == 0 and rebuilt.held == rebuilt.count == 2300


def test_unknown_type_and_params():
    with pytest.raises(BadInput):
        FaissVectors.create(DIM, "lsh")
    with pytest.raises(BadInput):
        FaissVectors.create(DIM, "hnsw", nprobe=3)
    with pytest.raises(BadInput):
        Index("x", index_type="annoy")


@pytest.fixture()
def corpus(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(12):
        (folder / f"doc{i}.txt").write_text(f"Document {i} about topic {i % 3}. " * 40)
    return folder


def test_cli_ingest_hnsw_end_to_end(corpus, tmp_path, small_bert):
    index_dir = str(tmp_path / "index")
    runner = CliRunner()
    base = ["--index", index_dir, "--model", str(small_bert), "--device", "cpu"]
    result = runner.invoke(main, ["ingest", str(corpus), *base, "--index-type", "hnsw", "--chunk-tokens", "32"])
    assert result.exit_code == 0, result.output
    index = Index(index_dir)
    assert index.settings.index_type == "hnsw" and index.settings.index_choice == "hnsw"
    assert index.vectors.kind == "hnsw"
    hits = index.search("topic 1", k=5)
    assert len(hits) == 5
    assert len(index.search("topic 1", k=5, where=["path:*doc1.txt"])) == 5
    # a changed and a deleted file: their old vectors become dead ids, never hits
    (corpus / "doc1.txt").write_text("Completely new words here. " * 30)
    (corpus / "doc2.txt").unlink()
    index.close()
    assert runner.invoke(main, ["ingest", str(corpus), *base]).exit_code == 0
    index = Index(index_dir)
    assert verify(index).ok
    chunk_ids = set(index.catalog.chunk_ids())
    for hit in index.search("topic 2", k=50):
        assert hit.chunk_id in chunk_ids and not hit.path.endswith("doc2.txt")
    info = runner.invoke(main, ["info", "--index", index_dir])
    assert "hnsw (M=32" in info.output, info.output
    # another type on an existing index: refused without --rebuild, done with it
    refused = runner.invoke(main, ["ingest", str(corpus), *base, "--index-type", "flat"])
    assert refused.exit_code == 1 and "--rebuild" in refused.output
    rebuilt = runner.invoke(main, ["ingest", str(corpus), *base, "--index-type", "flat", "--rebuild"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert json.loads(runner.invoke(main, ["info", "--index", index_dir, "--json"]).stdout)["settings"]["index_type"] == "flat"


def test_repair_keeps_the_type(corpus, tmp_path, small_bert):
    index = Index(tmp_path / "index", model=str(small_bert), device="cpu", index_type="hnsw", chunk_tokens=32)
    index.ingest([corpus])
    for row in index.vectors.rows.values():
        (index.folder / row.name).write_bytes(b"broken")
    assert not verify(index).ok
    report = repair(index)
    assert report.ok, report.problems
    assert index.vectors.kind == "hnsw" and index.settings.index_type == "hnsw"


def test_legacy_flat_ip_settings_stay_flat(corpus, tmp_path, small_bert):
    index = Index(tmp_path / "index", model=str(small_bert), device="cpu", chunk_tokens=32)
    index.ingest([corpus])
    assert index.settings.index_type == "flat" and index.settings.index_choice == "auto"
    with index.catalog.write():
        index.catalog.put_settings({"index_type": "flat-ip", "index_choice": None, "index_params": None})
    reopened = Index(index.folder)
    assert reopened.vectors.kind == "flat" and reopened.vectors.choice == "flat"
    assert len(reopened.search("topic", k=3)) == 3


def ef_search(index: Index) -> set[int]:
    """The efSearch each HNSW segment of the index searches with."""
    return {v._inner().hnsw.efSearch for v in index.vectors.loaded.values()}


def test_cli_index_params(corpus, tmp_path, small_bert):
    index_dir = str(tmp_path / "index")
    runner = CliRunner()
    base = ["--index", index_dir, "--model", str(small_bert), "--device", "cpu"]
    new = ["ingest", str(corpus), *base, "--index-type", "hnsw", "--chunk-tokens", "32"]
    # refused before anything is written: unknown name, bad value, malformed
    for bad, message in ((["--index-param", "nprobe=4"], "not one of a hnsw index's"),
                         (["--index-param", "M=0"], "M=0: must be from 2 to 256"),
                         (["--index-param", "M=lots"], "expected a whole number"),
                         (["--index-param", "M"], "expected NAME=VALUE")):
        result = runner.invoke(main, [*new, *bad])
        assert result.exit_code != 0 and message in result.output, result.output
        assert not (tmp_path / "index" / "catalog.db").exists()
    built = runner.invoke(main, [*new, "--index-param", "M=12", "--index-param", "efSearch=40"])
    assert built.exit_code == 0, built.output
    index = Index(index_dir)
    assert index.settings.index_params == {"M": 12, "efConstruction": 80, "efSearch": 40}
    assert ef_search(index) == {40}
    # efSearch may change on a built index (and is recorded at the next commit); M may not
    (corpus / "doc0.txt").write_text("Fresh words about topic 0. " * 30)
    changed = runner.invoke(main, ["ingest", str(corpus), *base, "--index-param", "efSearch=64"])
    assert changed.exit_code == 0, changed.output
    assert Index(index_dir).settings.index_params["efSearch"] == 64
    refused = runner.invoke(main, ["ingest", str(corpus), *base, "--index-param", "M=16"])
    assert refused.exit_code == 1 and "built with M=12" in refused.output and "--rebuild" in refused.output
    # search-time overrides, for this search only
    searched = runner.invoke(main, ["search", "topic 1", "--index", index_dir, "--ef-search", "7", "--json"])
    assert searched.exit_code == 0 and len(json.loads(searched.stdout)) == 10
    tuned = Index(index_dir, index_params={"efSearch": 7})
    assert ef_search(tuned) == {7}
    assert Index(index_dir).settings.index_params["efSearch"] == 64
    wrong = runner.invoke(main, ["search", "topic 1", "--index", index_dir, "--nprobe", "3"])
    assert wrong.exit_code == 1 and "not one of a hnsw index's" in wrong.output


def test_few_queries_search_on_one_faiss_thread_and_restore_it(built, data, monkeypatch):
    kind, vectors, _ = built
    _, _, q = data
    seen = []
    search = vectors._search

    def spy(*args):
        seen.append(vmod.faiss.omp_get_max_threads())
        return search(*args)

    monkeypatch.setattr(vectors, "_search", spy)
    before = vmod.faiss.omp_get_max_threads()
    one = vectors.search(q[:1], 10)
    many = vectors.search(np.repeat(q[:1], vmod.SERIAL_BELOW, axis=0), 10)
    assert seen == [1, before] and vmod.faiss.omp_get_max_threads() == before
    np.testing.assert_array_equal(one[1][0], many[1][0])


def test_bare_ivfpq_files_from_before_opq_still_load(data, tmp_path):
    ids, x, q = data
    quantizer = vmod.faiss.IndexFlatIP(DIM)
    bare = vmod.faiss.IndexIVFPQ(quantizer, DIM, 64, 16, 8, vmod.faiss.METRIC_INNER_PRODUCT)
    bare.train(x[:4000])
    bare.set_direct_map_type(vmod.faiss.DirectMap.Hashtable)
    bare.add_with_ids(x, ids)
    vmod.faiss.write_index(bare, str(tmp_path / "old.faiss"))
    loaded = FaissVectors.load(tmp_path / "old.faiss", {"nprobe": 8})
    assert loaded.kind == "ivfpq" and loaded.params["m"] == 16 and loaded.params["nlist"] == 64
    assert loaded._inner().nprobe == 8 and loaded.count == N
    assert loaded.search(q[:1], 5)[1].shape == (1, 5)
    assert loaded.remove(ids[:10]) == 10 and loaded.count == N - 10
    assert set(loaded.search(x[:1], 10)[1][0]).isdisjoint(ids[:10].tolist())
