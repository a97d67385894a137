"""Where searches run when faiss-gpu and a GPU are there (store/gpu.py).

CI has no GPU and installs faiss-cpu, so faiss-gpu's entry points are stood in for by a
CPU clone that counts its searches: what is tested is the placement (which searches go
to the copy, when it is remade, what stays on the CPU), not faiss-gpu itself.
"""

import warnings

import faiss
import numpy as np
import pytest

from searchkit.store import gpu
from searchkit.store.vectors import FaissVectors


class CountingCopy:
    """What index_cpu_to_gpu returns here: a CPU clone whose searches are counted."""

    def __init__(self, index, fake):
        self.inner, self.fake = faiss.clone_index(index), fake

    def search(self, queries, k):
        self.fake.searches += 1
        return self.inner.search(queries, k)


class FakeFaissGpu:
    def __init__(self):
        self.copies, self.searches, self.nprobes, self.refuse, self.tries = 0, 0, [], False, 0

    def index_cpu_to_gpu(self, resources, device, index, options):
        self.tries += 1
        if self.refuse:
            raise RuntimeError("Error in GpuIndexIVFPQ: unsupported number of sub-quantizers")
        self.copies += 1
        return CountingCopy(index, self)

    def parameter_space(self):
        fake = self

        class Space:
            def set_index_parameter(self, copy, name, value):
                fake.nprobes.append(value)
                faiss.ParameterSpace().set_index_parameter(copy.inner, name, value)

        return Space()


@pytest.fixture
def fake_gpu(monkeypatch):
    fake = FakeFaissGpu()
    monkeypatch.setattr(faiss, "StandardGpuResources", object, raising=False)
    monkeypatch.setattr(faiss, "GpuClonerOptions", type("GpuClonerOptions", (), {}), raising=False)
    monkeypatch.setattr(faiss, "GpuParameterSpace", fake.parameter_space, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", fake.index_cpu_to_gpu, raising=False)
    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 1)
    monkeypatch.delenv(gpu.GPU_ENV, raising=False)
    gpu.gpu_count.cache_clear()
    gpu._resources.cache_clear()
    yield fake
    gpu.gpu_count.cache_clear()
    gpu._resources.cache_clear()


def unit(n, dim=32, seed=0):
    x = np.random.default_rng(seed).standard_normal((n, dim)).astype("float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_without_faiss_gpu_everything_stays_on_the_cpu(monkeypatch):
    monkeypatch.delattr(faiss, "StandardGpuResources", raising=False)  # what faiss-cpu lacks
    gpu.gpu_count.cache_clear()
    vectors = FaissVectors.create(32)
    vectors.add(np.arange(1, 11), unit(10))
    assert vectors.placement == "CPU"
    assert vectors._gpu_copy(10) is None
    gpu.gpu_count.cache_clear()  # the next caller asks the real faiss again


def test_flat_searches_run_on_the_gpu_copy_and_give_the_cpu_answer(fake_gpu):
    vectors = FaissVectors.create(32)
    vectors.add(np.arange(1, 201), unit(200))
    queries = unit(5, seed=1)
    assert vectors.placement == "GPU 0"
    scores, ids = vectors.search(queries, 10)
    assert (fake_gpu.copies, fake_gpu.searches) == (1, 1)
    cpu_scores, cpu_ids = vectors.index.search(queries, 10)
    np.testing.assert_array_equal(ids, cpu_ids)
    vectors.search(queries, 10)
    assert (fake_gpu.copies, fake_gpu.searches) == (1, 2)  # the copy is kept between searches


def test_a_change_to_the_index_remakes_the_copy(fake_gpu):
    vectors = FaissVectors.create(32)
    vectors.add(np.arange(1, 101), unit(100))
    vectors.search(unit(1, seed=1), 5)
    new = unit(1, seed=7)
    vectors.add(np.array([500]), new)
    assert vectors.search(new, 1)[1][0, 0] == 500  # not a stale copy
    vectors.remove(np.array([500]))
    assert 500 not in vectors.search(new, 5)[1][0]
    assert fake_gpu.copies == 3


def test_filtered_searches_big_k_and_hnsw_stay_on_the_cpu(fake_gpu):
    vectors = FaissVectors.create(32)
    vectors.add(np.arange(1, 3001), unit(3000))
    q = unit(1, seed=3)
    scores, ids = vectors.search(q, 5, ids=np.array([3, 4, 5]))
    assert set(ids[0][ids[0] >= 0]) <= {3, 4, 5}
    vectors.search(q, gpu.MAX_K + 1)
    assert fake_gpu.searches == 0
    graph = FaissVectors.create(32, "hnsw")
    graph.add(np.arange(1, 101), unit(100))
    assert graph.placement == "CPU"
    graph.search(q, 5)
    assert fake_gpu.copies == 0


def test_ivfpq_takes_its_nprobe_to_the_gpu(fake_gpu):
    vectors = FaissVectors.from_vectors("ivfpq", np.arange(1, 12_001), unit(12_000), nlist=16, m=8, nprobe=4)
    assert vectors.kind == "ivfpq"
    q = unit(3, seed=2)
    vectors.search(q, 10)
    assert fake_gpu.searches == 1 and fake_gpu.nprobes == [4]
    vectors.tune({"nprobe": 16})
    vectors.search(q, 10)
    assert fake_gpu.nprobes == [4, 16]


def test_an_index_faiss_gpu_refuses_stays_on_the_cpu_with_one_warning(fake_gpu):
    fake_gpu.refuse = True
    vectors = FaissVectors.create(32)
    vectors.add(np.arange(1, 101), unit(100))
    q = unit(1, seed=4)
    with pytest.warns(UserWarning, match="stays on the CPU"):
        scores, ids = vectors.search(q, 5)
    assert ids[0, 0] == vectors.index.search(q, 1)[1][0, 0]
    assert vectors.placement == "CPU"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second warning would raise here
        vectors.search(q, 5)
    assert fake_gpu.tries == 1


def test_searchkit_faiss_gpu_0_keeps_the_index_on_the_cpu(fake_gpu, monkeypatch):
    monkeypatch.setenv(gpu.GPU_ENV, "0")
    gpu.gpu_count.cache_clear()
    vectors = FaissVectors.create(32)
    vectors.add(np.arange(1, 11), unit(10))
    assert vectors.placement == "CPU"
    vectors.search(unit(1), 3)
    assert fake_gpu.copies == 0
