"""Ingest on Ray Data (ray_ingest.py), against a real local Ray cluster of 2 CPUs and a
simulated two-node one: the result equals a local ingest's (chunk ids, chunks, vectors,
hits), incremental re-runs included; two embedding actors on two CPUs finish; a killed
driver leaves its last commit, a killed actor is replaced; without Ray, `--ray` says how to install it."""

import json
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from index_helpers import (
    CHUNK_TOKENS,
    fails_with,
    generation,
    ingest_args,
    invoke,
    query,
    run,
    vectors_of,
    verify_ok,
    write_corpus,
)

import searchkit

ray = pytest.importorskip("ray", reason="the ray extra is not installed (make test installs it)")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def ids_and_chunks(folder):
    return sorted(query(folder, "SELECT chunks.id, files.path, documents.key, chunks.ordinal, chunks.start, "
                                "chunks.end, chunks.text FROM chunks JOIN documents ON chunks.document_id = documents.id "
                                "JOIN files ON documents.file_id = files.id"))


def assert_same_index(a, b):
    assert ids_and_chunks(a) == ids_and_chunks(b)  # the same chunk ids for the same chunks
    va, vb = vectors_of(a), vectors_of(b)
    assert va.keys() == vb.keys()
    assert max(float(np.abs(va[key] - vb[key]).max()) for key in va) <= 1e-6
    for query_text in ("what does a with statement do", "raise an exception"):
        hits = [[(h.chunk_id, h.path) for h in searchkit.open_index(f).search(query_text, k=8)] for f in (a, b)]
        assert hits[0] == hits[1]


def test_a_ray_ingest_equals_a_local_one_and_so_do_its_reruns(tmp_path, small_bert, cluster):
    corpus = write_corpus(tmp_path / "corpus")
    (corpus / "empty.txt").write_text("")  # skipped in both
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    options = {"model": small_bert, "device": "cpu", "chunk_tokens": CHUNK_TOKENS}
    searchkit.open_index(local, **options).ingest([corpus])
    summary = searchkit.open_index(on_ray, **options).ingest([corpus], engine="ray", workers=1)
    assert summary.files_skipped == 1 and summary.chunks_added == len(ids_and_chunks(on_ray))
    assert_same_index(local, on_ray)
    # incremental: one file changed, one added, one deleted, one emptied
    names = sorted(p.name for p in corpus.glob("*.txt") if p.name != "empty.txt")
    (corpus / names[0]).write_text("changed text about the with statement and context managers\n" * 5)
    (corpus / "new.txt").write_text("a new file on raising exceptions and tracebacks\n" * 4)
    (corpus / names[1]).unlink()
    (corpus / names[2]).write_text("")
    first = searchkit.open_index(local).ingest([corpus])
    again = searchkit.open_index(on_ray).ingest([corpus], engine="ray", workers=1)
    assert (again.files_added, again.files_updated, again.files_removed) == (1, 1, 2)
    assert (first.files_added, first.files_updated, first.files_removed) == (1, 1, 2)
    assert_same_index(local, on_ray)
    assert searchkit.open_index(on_ray).ingest([corpus], engine="ray").chunks_added == 0  # nothing new: no Ray work
    verify_ok(on_ray)


def test_two_embedding_actors_on_two_cpus_finish(tmp_path, small_bert):
    """Actors that took both CPUs would starve the read/chunk tasks and hang the job; the
    pool is sized so that one CPU stays free. Run in a child with a deadline."""
    corpus = write_corpus(tmp_path / "corpus")
    script = textwrap.dedent(f"""
        import ray, searchkit
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        index = searchkit.open_index({str(tmp_path / "index")!r}, model={str(small_bert)!r}, device="cpu",
                                     chunk_tokens={CHUNK_TOKENS})
        print(index.ingest([{str(corpus)!r}], engine="ray", workers=2).chunks_added)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) > 0
    from searchkit.ray_ingest import actor_cpus

    assert 2 * actor_cpus(2, 2) <= 1 and actor_cpus(1, 1) < 1 and actor_cpus(16, 3) == 5


def test_an_actor_uses_its_nodes_cores_not_only_the_cpus_it_reserved():
    from searchkit.ray_ingest import actor_threads

    assert actor_threads(1.0, 2, 1, 1) == 2  # one actor on 2 CPUs reserves 1, runs on both
    assert actor_threads(0.5, 2, 2, 1) == 1
    assert actor_threads(5.0, 16, 3, 1) == 5
    assert actor_threads(1.0, 8, 4, 2) == 4  # 4 actors over 2 nodes: 2 a node


def test_the_default_pool_fits_the_cluster():
    from searchkit.ray_ingest import default_workers

    assert default_workers(2, 0, 0) == 2 and default_workers(1, 0, 0) == 1 and default_workers(64, 0, 0) == 8
    assert default_workers(16, 4, 1) == 4 and default_workers(16, 1, 0.5) == 2


def test_a_pool_the_cluster_cannot_hold_is_refused_not_waited_for():
    from searchkit.errors import BadInput
    from searchkit.ray_ingest import actor_cpus, check_pool

    check_pool(2, actor_cpus(2, 2), 2, 0, 0)
    with pytest.raises(BadInput, match="--workers 8: a Ray cluster of 1 CPU holds at most 3 embedding actors"):
        check_pool(8, actor_cpus(1, 8), 1, 0, 0)
    with pytest.raises(BadInput, match="--gpus-per-worker 1: the Ray cluster has 0 GPUs"):
        check_pool(1, 1, 2, 1, 0)


def test_the_cli_runs_on_ray_and_refuses_ray_options_alone(tmp_path, small_bert):
    corpus = write_corpus(tmp_path / "corpus")
    index = tmp_path / "index"
    done = run(["ingest", corpus, "--index", index, "--model", small_bert, "--device", "cpu",
                "--chunk-tokens", CHUNK_TOKENS, "--ray", "local", "--workers", 1, "--json"], timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["chunks_added"] > 0  # stdout holds the JSON alone
    assert "core_worker" not in done.stderr and "streaming_executor" not in done.stderr, done.stderr[-2000:]
    alone = invoke("ingest", corpus, "--index", index, "--workers", 2)
    assert alone.exit_code == 2 and "--workers and --gpus-per-worker go with --ray" in alone.output


def test_without_ray_the_flag_says_how_to_install_it(tmp_path, small_bert, monkeypatch):
    corpus = write_corpus(tmp_path / "corpus")
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if not installed
    result = invoke("ingest", str(corpus), "--index", str(tmp_path / "index"), "--model", str(small_bert),
                    "--ray", "local")
    message = fails_with(result, "pip install 'searchkit[ray]'")
    assert len(message.strip().splitlines()) == 1
    assert not (tmp_path / "index").exists()  # refused before anything was written


def test_killing_the_driver_leaves_the_last_commit_and_a_rerun_carries_on(tmp_path, small_bert):
    """SIGKILL of a `--ray local` ingest inside its second commit: the first commit stands,
    and a re-run on Ray ends equal to a local ingest."""
    corpus = write_corpus(tmp_path / "corpus")
    index, local = tmp_path / "index", tmp_path / "local"
    searchkit.open_index(local, model=small_bert, device="cpu", chunk_tokens=CHUNK_TOKENS).ingest([corpus])
    args = ingest_args(corpus, index, small_bert, "--commit-chunks", "40", "--ray", "local")
    killed = run(args, timeout=300, SEARCHKIT_TEST_CRASH_AT="after-vectors-save:2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert generation(index) == 1
    verify_ok(index)
    again = run(args, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert_same_index(local, index)
    verify_ok(index)


def test_a_two_node_cluster_gives_the_local_result(tmp_path, small_bert):
    """Two Ray nodes of one CPU each, simulated on this machine (`ray.cluster_utils.Cluster`),
    joined by address as `--ray ADDRESS` does: the index equals a local ingest's."""
    corpus = write_corpus(tmp_path / "corpus")
    local, on_ray = tmp_path / "local", tmp_path / "ray"
    searchkit.open_index(local, model=small_bert, device="cpu", chunk_tokens=CHUNK_TOKENS).ingest([corpus])
    script = textwrap.dedent(f"""
        import searchkit
        from ray.cluster_utils import Cluster
        cluster = Cluster(initialize_head=True, head_node_args={{"num_cpus": 1}})
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        try:
            index = searchkit.open_index({str(on_ray)!r}, model={str(small_bert)!r}, device="cpu",
                                         chunk_tokens={CHUNK_TOKENS})
            summary = index.ingest([{str(corpus)!r}], engine="ray", ray_address=cluster.address, workers=1)
            print(summary.chunks_added)
        finally:
            cluster.shutdown()
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.split()[-1]) == len(ids_and_chunks(local))
    assert_same_index(local, on_ray)


def test_a_killed_embedding_actor_is_replaced_and_nothing_is_duplicated(tmp_path, small_bert):
    """SIGKILL the first embedding actor as soon as it is up: Ray starts another and retries
    its work; the index equals a local ingest's, each chunk once."""
    import os
    import time

    from index_helpers import start

    corpus = write_corpus(tmp_path / "corpus")
    index, local = tmp_path / "index", tmp_path / "local"
    searchkit.open_index(local, model=small_bert, device="cpu", chunk_tokens=CHUNK_TOKENS).ingest([corpus])
    pids = tmp_path / "actor-pids"
    proc = start(ingest_args(corpus, index, small_bert, "--ray", "local"), SEARCHKIT_TEST_ACTOR_PIDS=pids)
    deadline = time.time() + 120
    while not (pids.exists() and pids.read_text().strip()) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    first = int(pids.read_text().split()[0])
    os.kill(first, signal.SIGKILL)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    assert len(pids.read_text().split()) >= 2  # a new actor took over
    assert_same_index(local, index)
    verify_ok(index)  # no chunk twice, every chunk a vector
