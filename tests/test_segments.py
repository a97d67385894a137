"""Vectors in segments (store/segments.py): a commit writes only what it added, searches over
all segments equal one combined index, deletes take effect at once and merges drop them,
the merge policy keeps segments few, format-1 indexes upgrade, a killed merge loses nothing."""

import json
import os
import sqlite3

import numpy as np
import pytest
from index_helpers import (
    chunks_of,
    generation,
    ingest_args,
    invoke,
    run,
    search_ok,
    segment_files,
    vectors_of,
    verify_ok,
    write_corpus,
)

import searchkit
from searchkit.store import segments as segmod
from searchkit.store.segments import Segments, merge_top_k, plan_merges
from searchkit.store.vectors import FaissVectors

DIM = 32


def unit(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, DIM)).astype("float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def committed(segs: Segments, written: FaissVectors | None, segment_id: int) -> None:
    """What a commit does to the in-memory state, without a folder."""
    row = segmod.SegmentRow(segment_id, f"s{segment_id}", written.held, None, written.kind) if written else None
    segs.committed(row, written)


def brute_force(ids: np.ndarray, x: np.ndarray, q: np.ndarray, k: int) -> np.ndarray:
    scores = q @ x.T
    return ids[np.lexsort((ids[None, :].repeat(len(q), 0), -scores), axis=1)[:, :k]]


# -- the vector side, without an index folder ---------------------------------------------------


def test_search_over_segments_equals_one_flat_index_with_deletes():
    segs = Segments(DIM, "flat")
    x = unit(3000, 0)
    ids = np.arange(1, 3001)
    for n, part in enumerate(np.array_split(np.arange(3000), 5), 1):  # five commits
        segs.add(ids[part], x[part])
        committed(segs, segs.to_write(), n)
    gone = ids[::7]  # dead in every segment
    assert segs.remove(gone) == len(gone)
    segs.add(np.arange(5001, 5101), unit(100, 1))  # and some pending
    live = np.setdiff1d(ids, gone)
    all_ids = np.concatenate([live, np.arange(5001, 5101)])
    all_x = np.concatenate([x[live - 1], unit(100, 1)])
    q = unit(20, 2)
    scores, got = segs.search(q, 10)
    np.testing.assert_array_equal(got, brute_force(all_ids, all_x, q, 10))
    np.testing.assert_allclose(scores, np.sort(q @ all_x.T, axis=1)[:, ::-1][:, :10], atol=1e-5)
    assert segs.count == len(all_ids) and sorted(segs.ids().tolist()) == sorted(all_ids.tolist())
    # a where-filter's ids: only those, dead ones never
    allowed = np.concatenate([gone[:5], live[:50]])
    _, filtered = segs.search(q, 10, ids=allowed)
    assert set(filtered[filtered >= 0].tolist()) <= set(live[:50].tolist())


def test_a_merge_drops_the_dead_and_keeps_the_rest():
    segs = Segments(DIM, "auto")
    x, ids = unit(600, 3), np.arange(1, 601)
    for n in range(3):
        segs.add(ids[n * 200:(n + 1) * 200], x[n * 200:(n + 1) * 200])
        committed(segs, segs.to_write(), n + 1)
    segs.remove(ids[:150])
    committed(segs, None, 0)
    merged = segs.merged([1, 2, 3])
    assert merged.count == 450 and sorted(merged.ids().tolist()) == ids[150:].tolist()
    np.testing.assert_allclose(merged.reconstruct(ids[150:]), x[150:], atol=1e-6)


def test_hnsw_segments_and_their_merge_find_the_neighbours():
    segs = Segments(DIM, "hnsw", {"M": 16, "efConstruction": 80, "efSearch": 64})
    x, ids = unit(4000, 4), np.arange(1, 4001)
    for n in range(4):
        segs.add(ids[n * 1000:(n + 1) * 1000], x[n * 1000:(n + 1) * 1000])
        written = segs.to_write()
        assert written.kind == "hnsw"
        committed(segs, written, n + 1)
    q = unit(50, 5)
    truth = brute_force(ids, x, q, 10)

    def recall(got):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)])

    assert recall(segs.search(q, 10)[1]) > 0.95
    merged = segs.merged([1, 2, 3, 4])
    assert merged.kind == "hnsw" and recall(merged.search(q, 10)[1]) > 0.9


def test_single_queries_search_segments_on_threads_with_the_serial_answer(monkeypatch):
    """Few queries search the segments in parallel (HNSW ones with a beam for their share):
    the answer is the serial one, and HNSW still finds the neighbours."""
    for choice in ("flat", "hnsw"):
        segs = Segments(DIM, choice, {"M": 16, "efConstruction": 80, "efSearch": 64} if choice == "hnsw" else {})
        x, ids = unit(4000, 8), np.arange(1, 4001)
        for n, part in enumerate(np.array_split(np.arange(4000), [2500, 3200, 3700]), 1):
            segs.add(ids[part], x[part])
            committed(segs, segs.to_write(), n)
        segs.remove(ids[::9])
        q = unit(12, 9)
        monkeypatch.setattr(segmod, "_threads", lambda: 2)
        threaded = [segs.search(row[None], 10) for row in q]
        monkeypatch.setattr(segmod, "_threads", lambda: 1)
        serial = [segs.search(row[None], 10) for row in q]
        for (s1, i1), (s2, i2) in zip(threaded, serial):
            np.testing.assert_array_equal(i1, i2)
            np.testing.assert_allclose(s1, s2)
        live = np.setdiff1d(ids, ids[::9])
        truth = brute_force(live, x[live - 1], q, 10)
        got = np.concatenate([i for _, i in threaded])
        assert np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth)]) > (0.999 if choice == "flat" else 0.9)
    assert segmod.beam_for(1.0) == 1.0 and segmod.beam_for(0.1) == pytest.approx(0.1 ** segmod.BEAM_EXPONENT)


def test_ivfpq_segments_share_one_quantiser_and_merge_by_their_codes(monkeypatch):
    monkeypatch.setattr(segmod, "IVF_MIN_TRAIN", 2000)
    segs = Segments(DIM, "ivfpq", {"nlist": 16, "m": 8, "nbits": 8, "nprobe": 16})
    x, ids = unit(3000, 6), np.arange(1, 3001)
    segs.add(ids[:2000], x[:2000])
    first = segs.to_write()
    assert first.kind == "flat"  # nothing trained yet
    committed(segs, first, 1)
    trained = segs.merged([1])  # 2000 vectors: the first IVF-PQ segment is trained on them
    assert trained.kind == "ivfpq"
    segs = Segments(DIM, "ivfpq", segs.params)
    committed(segs, trained, 2)
    segs.add(ids[2000:], x[2000:])
    encoded = segs.to_write()  # with the trained segment's quantiser
    assert encoded.kind == "ivfpq" and encoded.count == 1000
    committed(segs, encoded, 3)
    segs.remove(ids[:100])
    merged = segs.merged([2, 3])
    assert merged.kind == "ivfpq" and merged.count == 2900
    assert set(merged.ids().tolist()) == set(ids[100:].tolist())
    # the codes were copied, not re-encoded: the same reconstructions as before the merge
    np.testing.assert_array_equal(merged.reconstruct(ids[2000:2010]), encoded.reconstruct(ids[2000:2010]))
    _, got = merged.search(x[2500:2510], 1)
    assert (got[:, 0] == ids[2500:2510]).mean() >= 0.8


def test_merge_top_k_pads_and_breaks_ties_by_id():
    a = (np.array([[0.9, 0.5]], "float32"), np.array([[7, 3]]))
    b = (np.array([[0.9]], "float32"), np.array([[2]]))
    scores, ids = merge_top_k([a, b], 1, 4)
    assert ids.tolist() == [[2, 7, 3, -1]] and scores[0, 3] == -np.inf


@pytest.mark.parametrize("sizes, expected", [
    ([10] * 7, []),  # fewer than MERGE_FACTOR of a tier
    ([10] * 8, [list(range(1, 9))]),
    ([10] * 8 + [50_000], [list(range(1, 9))]),  # the big one is in a tier of its own
    ([2000] * 8 + [10] * 3, [list(range(1, 9))]),
])
def test_plan_merges_tiers(sizes, expected):
    live = {i + 1: n for i, n in enumerate(sizes)}
    assert plan_merges(live, dict(live)) == expected


def test_plan_merges_rewrites_a_mostly_dead_segment_and_optimize_takes_all():
    assert plan_merges({1: 60, 2: 5000}, {1: 100, 2: 5000}) == [[1]]
    assert plan_merges({1: 60, 2: 5000}, {1: 60, 2: 5000}, everything=True) == [[1, 2]]
    assert plan_merges({1: 60}, {1: 60}, everything=True) == []
    assert plan_merges({1: 60}, {1: 61}, everything=True) == [[1]]


def test_segment_count_stays_logarithmic_over_many_commits():
    segs = Segments(DIM, "flat")
    x = unit(40 * 250, 7)
    next_id = 1
    written_total = 0
    for step in range(40):  # 40 commits of 250 vectors, merging as an ingest does
        segs.add(np.arange(next_id, next_id + 250), x[step * 250:(step + 1) * 250])
        next_id += 250
        w = segs.to_write()
        written_total += w.count
        committed(segs, w, step * 100 + 1)
        while groups := plan_merges({s: segs.live_count(s) for s in segs.loaded},
                                    {s: v.held for s, v in segs.loaded.items()}):
            merged = segs.merged(groups[0])
            written_total += merged.count
            row = segmod.SegmentRow(step * 100 + 50 + len(segs.rows), "m", merged.count, None, merged.kind)
            segs.merge_committed(groups[0], row, merged)
    assert segs.count == 10_000
    assert len(segs.loaded) <= 2 * segmod.MERGE_FACTOR
    assert written_total / segs.count < 4  # each vector rewritten a few times at most


# -- through an index folder and the CLI --------------------------------------------------------


def test_a_small_change_leaves_the_other_segment_files_alone(tmp_path, small_bert):
    corpus = write_corpus(tmp_path / "corpus", ["pass", "while", "lambda", "del", "for", "if"])
    index = tmp_path / "index"
    assert invoke(*ingest_args(corpus, index, small_bert)).exit_code == 0
    [first] = segment_files(index)
    before = os.stat(index / first)
    (corpus / "del.txt").write_text("del\n\nremoves names: del x", encoding="utf-8")
    summary = json.loads(invoke(*ingest_args(corpus, index, small_bert)).stdout)
    assert summary["files_updated"] == 1
    files = segment_files(index)
    assert files[0] == first and len(files) == 2
    after = os.stat(index / first)
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    # the old chunks of del.txt are dead in the first segment, never hits
    hits = search_ok(index)
    assert all("names: del x" in h["text"] for h in hits if h["path"].endswith("del.txt"))
    verify_ok(index)


def test_deletes_are_excluded_at_once_and_optimize_drops_them(tmp_path, small_bert):
    corpus = write_corpus(tmp_path / "corpus", ["pass", "while", "lambda", "del", "for", "if", "try", "with"])
    index = tmp_path / "index"
    for names in (["pass", "while"], ["lambda", "del"], ["for", "if"]):  # three segments
        for n in names:
            (corpus / f"{n}.txt").touch()
        assert invoke(*ingest_args(corpus, index, small_bert)).exit_code == 0
    for n in ("while", "for"):
        (corpus / f"{n}.txt").unlink()
    summary = json.loads(invoke(*ingest_args(corpus, index, small_bert)).stdout)
    assert summary["files_removed"] == 2
    dead = {i for (i,) in sqlite3.connect(index / "catalog.db").execute("SELECT id FROM dead")}
    assert dead
    result = invoke("search", "loop while for", "--index", index, "-k", "200", "--json")
    assert not {h["chunk_id"] for h in json.loads(result.stdout)} & dead
    reference = vectors_of(index)
    optimized = invoke("optimize", "--index", index, "--json")
    assert optimized.exit_code == 0, optimized.output
    report = json.loads(optimized.stdout)
    assert report["segments"] == 1 and report["dead_dropped"] == len(dead)
    [only] = segment_files(index)
    import faiss

    held = set(faiss.vector_to_array(faiss.read_index(str(index / only)).id_map).tolist())
    assert not held & dead
    assert sorted(p.name for p in index.glob("segment.*")) == [only]
    after = vectors_of(index)
    assert after.keys() == reference.keys()
    for key in after:
        np.testing.assert_allclose(after[key], reference[key], atol=1e-6)
    info = invoke("info", "--index", index)
    assert "segments" in info.stdout
    verify_ok(index)


def make_format_1(index) -> None:
    """Turn an index folder into what format 1 wrote: one vectors.<generation>.faiss file
    holding every live vector, no segments listed."""
    import faiss

    from searchkit.hashing import sha256_file

    gen = generation(index)
    vectors = vectors_of(index)
    db = sqlite3.connect(index / "catalog.db")
    ids = {tuple(key): i for i, *key in db.execute(
        "SELECT chunks.id, files.path, documents.key, chunks.ordinal FROM chunks "
        "JOIN documents ON chunks.document_id = documents.id JOIN files ON documents.file_id = files.id")}
    flat = faiss.IndexIDMap2(faiss.IndexFlatIP(next(iter(vectors.values())).shape[0]))
    flat.add_with_ids(np.stack(list(vectors.values())), np.array([ids[tuple(k)] for k in vectors], dtype=np.int64))
    path = index / f"vectors.{gen:06d}.faiss"
    faiss.write_index(flat, str(path))
    for name in segment_files(index):
        (index / name).unlink()
    db.execute("DELETE FROM segments")
    db.execute("DELETE FROM dead")
    for key, value in (("format", 1), ("vectors_sha256", sha256_file(path))):
        db.execute("UPDATE settings SET value = ? WHERE key = ?", [json.dumps(value), key])
    db.execute("INSERT OR REPLACE INTO settings VALUES ('vectors_sha256', ?)", [json.dumps(sha256_file(path))])
    db.execute("DELETE FROM settings WHERE key = 'next_segment_id'")
    db.commit()
    db.close()


def test_a_format_1_index_searches_and_is_upgraded_by_the_next_ingest(tmp_path, small_bert):
    corpus = write_corpus(tmp_path / "corpus", ["pass", "while", "lambda", "del"])
    index = tmp_path / "index"
    assert invoke(*ingest_args(corpus, index, small_bert)).exit_code == 0
    reference = json.loads(invoke("search", "loop", "--index", index, "--json").stdout)
    make_format_1(index)
    legacy = f"vectors.{generation(index):06d}.faiss"
    assert json.loads(invoke("search", "loop", "--index", index, "--json").stdout) == reference
    verify_ok(index)
    # The next ingest lists the old file as a segment and adds a new one beside it.
    write_corpus(corpus, ["for"])
    (corpus / "while.txt").unlink()
    summary = json.loads(invoke(*ingest_args(corpus, index, small_bert)).stdout)
    assert summary["files_added"] == 1 and summary["files_removed"] == 1
    assert segment_files(index)[0] == legacy
    settings = dict(sqlite3.connect(index / "catalog.db").execute("SELECT key, value FROM settings").fetchall())
    assert json.loads(settings["format"]) == 2
    verify_ok(index)
    assert not [h for h in search_ok(index) if h["path"].endswith("while.txt")]
    assert invoke("optimize", "--index", index).exit_code == 0
    assert not (index / legacy).exists() and len(segment_files(index)) == 1
    verify_ok(index)


@pytest.mark.parametrize("point", ["after-vectors-save", "before-sqlite-commit", "after-sqlite-commit"])
def test_kill_9_during_a_merge_loses_nothing(tmp_path, small_bert, point):
    corpus = write_corpus(tmp_path / "corpus", ["pass", "while", "lambda", "del", "for", "if"])
    index = tmp_path / "index"
    for n in ("pass", "while", "lambda"):  # three segments, the last commit removing a file
        (corpus / f"{n}.txt").write_text(f"{n}\n\nchanged {n}", encoding="utf-8")
        assert invoke(*ingest_args(corpus, index, small_bert)).exit_code == 0
    (corpus / "del.txt").unlink()
    assert invoke(*ingest_args(corpus, index, small_bert)).exit_code == 0
    chunks, vectors = chunks_of(index), vectors_of(index)
    hits = json.loads(invoke("search", "loop", "--index", index, "--json").stdout)
    merge_generation = generation(index) + 1
    killed = run(["optimize", "--index", index], SEARCHKIT_TEST_CRASH_AT=f"{point}:{merge_generation}")
    assert killed.returncode == -9, killed.stderr
    assert chunks_of(index) == chunks
    assert vectors_of(index).keys() == vectors.keys()
    assert json.loads(invoke("search", "loop", "--index", index, "--json").stdout) == hits
    verify_ok(index)
    done = run(["optimize", "--index", index])
    assert done.returncode == 0, done.stderr
    listed = segment_files(index)
    assert len(listed) == 1 and sorted(p.name for p in index.glob("segment.*")) == listed
    assert json.loads(invoke("search", "loop", "--index", index, "--json").stdout) == hits
    verify_ok(index)


def test_an_index_of_a_newer_format_is_refused_by_name(tmp_path, small_bert):
    corpus = write_corpus(tmp_path / "corpus", ["pass"])
    index = tmp_path / "index"
    assert invoke(*ingest_args(corpus, index, small_bert)).exit_code == 0
    db = sqlite3.connect(index / "catalog.db")
    db.execute("UPDATE settings SET value = '3' WHERE key = 'format'")
    db.commit()
    db.close()
    result = invoke("search", "x", "--index", index)
    assert result.exit_code == 1 and "format 3 by a newer searchkit" in result.stderr


def test_ingest_merges_when_segments_pile_up(tmp_path, small_bert, monkeypatch):
    monkeypatch.setattr(segmod, "MERGE_FACTOR", 3)
    corpus = write_corpus(tmp_path / "corpus", ["pass"])
    index = searchkit.open_index(tmp_path / "index", model=small_bert, device="cpu", chunk_tokens=64)
    merges = 0
    for name in ["while", "lambda", "del", "for", "if"]:
        write_corpus(corpus, [name])
        merges += index.ingest([corpus]).merges
    assert merges >= 1 and len(index.vectors.loaded) < 3
    assert sorted(index.vectors.ids().tolist()) == index.catalog.chunk_ids()


def test_big_segments_are_memory_mapped_and_still_checked(tmp_path, small_bert, monkeypatch):
    monkeypatch.setattr(segmod, "MMAP_FROM", 1)  # every segment counts as big
    corpus = write_corpus(tmp_path / "corpus", ["pass", "while", "lambda"])
    index = tmp_path / "index"
    assert invoke(*ingest_args(corpus, index, small_bert)).exit_code == 0
    idx = searchkit.open_index(index)
    assert all(v.mapped for v in idx.vectors.loaded.values())
    assert idx.info()["segments_mapped"] == 1
    assert "1 memory-mapped" in invoke("info", "--index", index).stdout
    assert search_ok(index)
    verify_ok(index)  # hashes the mapped file itself
    [name] = segment_files(index)
    data = bytearray((index / name).read_bytes())
    data[len(data) // 2] ^= 0x55
    (index / name).write_bytes(bytes(data))
    checked = invoke("verify", "--index", index)
    assert checked.exit_code == 1 and "damaged since it was written" in checked.stderr
    truncated = (index / name).read_bytes()[:-8]
    (index / name).write_bytes(truncated)
    result = invoke("search", "loop", "--index", index)
    assert result.exit_code == 1 and "written as" in result.stderr


def test_an_auto_index_turns_to_hnsw_as_it_grows(tmp_path, small_bert, monkeypatch):
    monkeypatch.setattr(segmod, "AUTO_HNSW_AT", 20)
    corpus = write_corpus(tmp_path / "corpus", ["pass"])
    index = searchkit.open_index(tmp_path / "index", model=small_bert, device="cpu", chunk_tokens=64)
    index.ingest([corpus])
    assert {v.kind for v in index.vectors.loaded.values()} == {"flat"}
    write_corpus(corpus, ["while", "lambda", "del", "for", "if", "try"])
    index.ingest([corpus])
    assert index.vectors.count >= 20
    assert {v.kind for v in index.vectors.loaded.values()} == {"hnsw"}
    assert sorted(index.vectors.ids().tolist()) == index.catalog.chunk_ids()
    assert index.settings.index_type == "hnsw"
