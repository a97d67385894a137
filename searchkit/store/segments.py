"""An index's vectors as immutable segment files, listed in the catalog.

A commit writes one new segment file holding only the vectors it added, and records the
ids it removed as *dead* (in the catalog's `dead` table, with the segment that holds
them); a search asks every segment for its top-k without its dead ids and merges the
lists. So a commit costs what changed, not the size of the index, and files holding
vectors a commit did not touch are never rewritten.

Segments are merged now and then (`plan_merges`: tiered, as Lucene's TieredMergePolicy
is): segments of about the same size are rewritten as one once `MERGE_FACTOR` of them
pile up, and a segment that is mostly dead is rewritten alone, so the number of segments
stays logarithmic in the size of the index and dead vectors do not pile up. Merging
drops the dead vectors. The kind of each segment follows the index's choice:

- `flat`: every segment flat (exact).
- `hnsw`: every segment an HNSW graph, built from raw vectors when written (HNSW graphs
  cannot be merged: a merge rebuilds one from the segments' vectors, which HNSWFlat keeps).
- `auto`: flat segments while the index holds fewer than `AUTO_HNSW_AT` vectors, HNSW ones
  from then on; its flat segments are rewritten as HNSW then (`conversions`).
- `ivfpq`: commits write flat segments until a merge holds `IVF_MIN_TRAIN` vectors and
  trains the first IVF-PQ segment; from then on every IVF-PQ segment is encoded with that
  segment's trained quantiser, so IVF-PQ segments merge by copying their codes
  (`merge_from`), never re-encoding approximate vectors.

The order of every write is the one of a single vectors file before: the new file is
durable before the SQLite transaction that names it; superseded files go after it.
"""

from __future__ import annotations

import functools
import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from ..errors import IndexCorrupt
from .vectors import AUTO_HNSW_AT, IVF_MIN_TRAIN, SERIAL_BELOW, FaissVectors, params_for

DAMAGED_HINT = "damaged since it was written; `searchkit verify --repair` re-embeds it from the catalog"

SEGMENT_NAME = re.compile(r"segment\.(\d{6,})\.faiss")
MERGE_FACTOR = 8  # segments of one size tier that make a merge
TIER_FLOOR = 1000  # segments below this many vectors all count as the smallest tier
DEAD_SHARE = 0.3  # a segment with this share of dead vectors is rewritten without them
# Segment files from this size on are memory-mapped, not read (FaissVectors.load): a search
# from a fresh process then starts at once however large the index. Below it, files are
# read and hashed as they load.
MMAP_FROM = 64 * 2**20
# See beam_for. Measured on 300k clustered vectors, one query at a time on 2 cores, recall@10
# against exact search (one combined graph: 0.974): in 7 segments of 40k and 4 of 5k (the
# shape of a 1M ingest), 0.7 gives 0.972 at 1.16x the combined p50 (0.6: 0.980 at 1.37x;
# 0.8: 0.964 at 1.01x); in one of 160k and seven of 20k, 0.7 gives 0.978.
BEAM_EXPONENT = 0.7


def segment_name(segment_id: int) -> str:
    return f"segment.{segment_id:06d}.faiss"


@dataclass(frozen=True)
class SegmentRow:
    """One live segment as the catalog lists it."""

    id: int
    name: str  # its file in the index folder
    count: int  # vectors in the file, dead ones included
    sha256: str | None  # of the file, as written
    kind: str
    bytes: int = 0  # the file's size, as written (0: not recorded)


class Segments:
    """The vectors of an index: its committed segments, their dead ids, and the additions
    and removals not committed yet. Behaves as one vector index (`add`, `remove`,
    `search`, `count`, `ids`, `reconstruct`), whose search equals one combined index's.

    >>> segs = Segments(384, "auto", {})
    >>> segs.add(np.array([1, 2]), vectors)
    >>> segs.search(vectors[:1], k=1)[1]
    array([[1]])
    """

    def __init__(self, dim: int, choice: str, params: dict | None = None):
        self.dim, self.choice = dim, choice
        self.params = dict(params or {})
        self.rows: dict[int, SegmentRow] = {}
        self.loaded: dict[int, FaissVectors] = {}
        self._ids: dict[int, np.ndarray] = {}  # sorted ids held by each segment's file
        self.dead: dict[int, np.ndarray] = {}  # sorted committed dead ids, per segment
        self.pending = FaissVectors.create(dim, "flat")
        self.pending_dead: dict[int, np.ndarray] = {}  # removed since the last commit

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def open(cls, folder: Path, rows: list[SegmentRow], dead: list[tuple[int, int]], dim: int, choice: str,
             params: dict, previous: Segments | None = None, check_sha256: bool = True,
             broken: list[tuple[SegmentRow, str]] | None = None) -> Segments:
        """The committed state: `rows` from the catalog, `dead` its (chunk id, segment id)
        pairs. Segments already loaded in `previous` (immutable files) are reused, so taking
        in another process's commit reads only the segments it wrote. A segment that is
        missing or unreadable raises `IndexCorrupt`, or, given a `broken` list, is left out
        and listed there with the reason (`verify`, `repair`)."""
        segs = cls(dim, choice, params)
        for row in rows:
            old = previous.loaded.get(row.id) if previous is not None else None
            if old is not None and previous.rows[row.id] == row:
                segs.loaded[row.id], segs._ids[row.id] = old, previous._ids[row.id]
            else:
                try:
                    vectors = _load(folder / row.name, row, dim, params, check_sha256)
                except IndexCorrupt as exc:
                    if broken is None:
                        raise
                    broken.append((row, str(exc)))
                    continue
                segs.loaded[row.id], segs._ids[row.id] = vectors, np.sort(vectors.ids())
            segs.rows[row.id] = row
        by_segment: dict[int, list[int]] = {}
        for chunk_id, segment_id in dead:
            by_segment.setdefault(segment_id, []).append(chunk_id)
        segs.dead = {s: np.sort(np.array(ids, dtype=np.int64)) for s, ids in by_segment.items()}
        return segs

    # -- what it holds ----------------------------------------------------------------------

    def _dead_of(self, segment_id: int) -> np.ndarray:
        parts = [a for a in (self.dead.get(segment_id), self.pending_dead.get(segment_id)) if a is not None]
        return np.concatenate(parts) if len(parts) > 1 else parts[0] if parts else np.zeros(0, np.int64)

    def live_count(self, segment_id: int) -> int:
        return self.loaded[segment_id].count - len(self._dead_of(segment_id))

    @property
    def count(self) -> int:
        """Live vectors: committed ones less the dead, plus pending additions."""
        return sum(self.live_count(s) for s in self.loaded) + self.pending.count

    def ids(self) -> np.ndarray:
        parts = [np.setdiff1d(self._ids[s], self._dead_of(s), assume_unique=True) for s in self.loaded]
        parts.append(self.pending.ids())
        return np.concatenate(parts) if parts else np.zeros(0, np.int64)

    @property
    def kind(self) -> str:
        """The kind holding most of the vectors (flat for an empty index)."""
        sizes: dict[str, int] = {}
        for vectors in self.loaded.values():
            sizes[vectors.kind] = sizes.get(vectors.kind, 0) + vectors.count
        return max(sizes, key=sizes.get) if sizes else "flat"

    @property
    def kinds(self) -> set[str]:
        return {v.kind for v in self.loaded.values()} | {"flat"}

    @property
    def settings(self) -> dict:
        kind = self.kind if self.loaded else ("hnsw" if self.choice == "hnsw" else "flat")
        return {"index_type": kind, "index_choice": self.choice,
                "index_params": params_for("hnsw" if self.choice == "auto" else self.choice, self.params)}

    @property
    def placement(self) -> str:
        places = {v.placement for v in self.loaded.values()}
        return "GPU 0" if "GPU 0" in places else "CPU"

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these (live) ids, (n, dim); approximate in IVF-PQ segments."""
        ids = np.asarray(ids, dtype=np.int64)
        out = np.zeros((len(ids), self.dim), dtype=np.float32)
        found = np.zeros(len(ids), dtype=bool)
        for s, vectors in [*self.loaded.items(), (None, self.pending)]:
            held = self._ids[s] if s is not None else np.sort(vectors.ids())
            here = np.isin(ids, held) & ~found
            if s is not None:
                here &= ~np.isin(ids, self._dead_of(s))
            if here.any():
                out[here] = vectors.reconstruct(ids[here])
                found |= here
        if not found.all():
            raise KeyError("some ids are not in the index")
        return out

    # -- changes ---------------------------------------------------------------------------

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        self.pending.add(ids, vectors)

    def remove(self, ids: np.ndarray) -> int:
        """Mark these ids dead (committed ones) or drop them (pending ones); returns how many
        were live."""
        ids = np.unique(np.asarray(ids, dtype=np.int64))
        n = self.pending.remove(ids) if self.pending.count else 0
        for s in self.loaded:
            hit = ids[np.isin(ids, self._ids[s])]
            hit = hit[~np.isin(hit, self._dead_of(s))]
            if len(hit):
                self.pending_dead[s] = np.sort(np.concatenate([self.pending_dead.get(s, np.zeros(0, np.int64)), hit]))
                n += len(hit)
        return n

    @property
    def changed(self) -> bool:
        return bool(self.pending.count or self.pending_dead)

    def to_write(self) -> FaissVectors | None:
        """The pending additions as the segment a commit writes, of the choice's kind
        (None: nothing was added)."""
        if not self.pending.count:
            return None
        return self._as_kind(self.pending)

    def committed(self, row: SegmentRow | None, written: FaissVectors | None) -> None:
        """The commit that wrote `row` (None: removals only) went through: pending becomes committed."""
        if row is not None:
            self.rows[row.id], self.loaded[row.id] = row, written
            self._ids[row.id] = np.sort(written.ids())
        for s, ids in self.pending_dead.items():
            self.dead[s] = np.union1d(self.dead.get(s, np.zeros(0, np.int64)), ids)
        self.pending = FaissVectors.create(self.dim, "flat")
        self.pending_dead = {}

    def merge_committed(self, group: list[int], row: SegmentRow | None, written: FaissVectors | None) -> None:
        """The commit replacing the segments of `group` by `row` (None: nothing was live)
        went through."""
        for s in group:
            for table in (self.rows, self.loaded, self._ids, self.dead, self.pending_dead):
                table.pop(s, None)
        if row is not None:
            self.rows[row.id], self.loaded[row.id], self._ids[row.id] = row, written, np.sort(written.ids())

    def dead_pairs(self) -> list[tuple[int, int]]:
        """The removals since the last commit, as (chunk id, segment id) rows."""
        return [(int(i), s) for s, ids in self.pending_dead.items() for i in ids]

    # -- searching --------------------------------------------------------------------------

    def search(self, queries: np.ndarray, k: int, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query over every segment, dead ids left out; -1 ids pad
        the rows where fewer than k vectors qualify. `ids`: only these are candidates.

        Each HNSW segment searches with a beam for its share of the index (`beam_for`);
        a few queries search the segments on parallel threads (FAISS gives one query one
        thread, so one combined graph could not use the others)."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = int(k)
        total = max(sum(v.count for v in self.loaded.values()), 1)
        jobs = []
        for s, vectors in self.loaded.items():
            if not vectors.count:
                continue
            dead = self._dead_of(s)
            if ids is not None:
                allowed = ids[np.isin(ids, self._ids[s])]
                allowed = np.setdiff1d(allowed, dead) if len(dead) else allowed
                if len(allowed):
                    jobs.append(functools.partial(vectors.search, queries, k, ids=allowed))
            else:
                jobs.append(functools.partial(vectors.search, queries, k, exclude=dead if len(dead) else None,
                                              beam=beam_for(vectors.count / total)))
        if self.pending.count:
            jobs.append(functools.partial(self.pending.search, queries, k, ids=ids))
        if len(jobs) > 1 and len(queries) < SERIAL_BELOW and _threads() > 1:
            lists = list(_pool().map(lambda job: job(), jobs))
        else:
            lists = [job() for job in jobs]
        return merge_top_k(lists, len(queries), k)

    # -- merging ----------------------------------------------------------------------------

    def merged(self, group: list[int]) -> FaissVectors:
        """One segment holding the live vectors of the segments in `group`, of the kind the
        choice gives for its size (see the module docstring)."""
        parts = [(self.loaded[s], np.setdiff1d(self._ids[s], self._dead_of(s), assume_unique=True)) for s in group]
        total = sum(len(live) for _, live in parts)
        if self.choice == "ivfpq" and (total >= IVF_MIN_TRAIN or self._ivf_template() is not None):
            return self._merged_ivfpq(parts)
        ids = np.concatenate([live for _, live in parts]) if parts else np.zeros(0, np.int64)
        vectors = np.concatenate([v.reconstruct(live) for v, live in parts]) if parts else np.zeros((0, self.dim), "float32")
        flat = FaissVectors.create(self.dim, "flat")
        flat.add(ids, vectors)
        return self._as_kind(flat)

    def _as_kind(self, flat: FaissVectors) -> FaissVectors:
        if self.choice == "hnsw" or (self.choice == "auto" and self.count >= AUTO_HNSW_AT):
            return flat.converted("hnsw", **params_for("hnsw", self.params))
        if self.choice == "ivfpq" and self._ivf_template() is not None:
            return self._merged_ivfpq([(flat, flat.ids())])
        return flat

    def conversions(self) -> list[list[int]]:
        """Segments of a kind the index has outgrown, as merge groups: each flat segment of
        an `auto` index past AUTO_HNSW_AT vectors (rewritten as HNSW) or of a trained
        `ivfpq` one (encoded with its quantiser); all flat segments of an `ivfpq` index
        that reached IVF_MIN_TRAIN vectors untrained (the first IVF-PQ segment)."""
        flat = sorted(s for s, v in self.loaded.items() if v.kind == "flat" and self.live_count(s))
        if not flat:
            return []
        if self.choice == "auto" and self.count >= AUTO_HNSW_AT:
            return [[s] for s in flat]
        if self.choice == "ivfpq":
            if self._ivf_template() is not None:
                return [[s] for s in flat]
            if sum(self.live_count(s) for s in flat) >= IVF_MIN_TRAIN:
                return [flat]
        return []

    def _ivf_template(self) -> FaissVectors | None:
        """A trained IVF-PQ segment, whose quantiser every other IVF-PQ segment shares."""
        trained = [v for v in self.loaded.values() if v.kind == "ivfpq"]
        return trained[0] if trained else None

    def _merged_ivfpq(self, parts: list[tuple[FaissVectors, np.ndarray]]) -> FaissVectors:
        template = self._ivf_template()
        if template is None:  # the first: trained on these vectors
            flat = FaissVectors.create(self.dim, "flat")
            for vectors, live in parts:
                flat.add(live, vectors.reconstruct(live))
            return flat.converted("ivfpq", **params_for("ivfpq", self.params))
        out = template.empty_like()
        index = out.index
        ivf = faiss.extract_index_ivf(index)
        for vectors, live in parts:
            if vectors.kind == "ivfpq":  # same quantiser: copy the codes, then drop the dead
                other = faiss.clone_index(vectors.index)
                source = faiss.extract_index_ivf(other)
                for each in (ivf, source):
                    each.set_direct_map_type(faiss.DirectMap.NoMap)  # merge_from needs none
                ivf.merge_from(source, 0)
                ivf.set_direct_map_type(faiss.DirectMap.Hashtable)
                index.ntotal = ivf.ntotal
                gone = np.setdiff1d(vectors.ids(), live)
                if len(gone):
                    out.remove(gone)
            elif len(live):
                out.add(live, vectors.reconstruct(live))
        return out


def beam_for(share: float) -> float:
    """The share of HNSW's efSearch that a segment holding `share` of the index's vectors
    searches with: share^BEAM_EXPONENT. A smaller graph reaches the same recall with a
    narrower beam, and each segment need only find its part of the top k."""
    return min(1.0, max(share, 1e-6) ** BEAM_EXPONENT)


@functools.cache
def _threads() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_threads(), thread_name_prefix="searchkit-segment")


def _load(path: Path, row: SegmentRow, dim: int, params: dict, check_sha256: bool) -> FaissVectors:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise IndexCorrupt(f"{path}: missing (the catalog lists it as a segment); `searchkit verify --repair` "
                           "re-embeds its chunks from the catalog") from None
    if check_sha256 and row.bytes and size != row.bytes:
        raise IndexCorrupt(f"{path}: {size:,} bytes, written as {row.bytes:,}; {DAMAGED_HINT}")
    big = size >= MMAP_FROM
    vectors = FaissVectors.load(path, params, sha256=row.sha256 if check_sha256 and not big else None, mmap=big)
    if vectors.dim != dim:
        raise IndexCorrupt(f"{path}: vectors of dim {vectors.dim}, the catalog says {dim}")
    return vectors


def merge_top_k(lists: list[tuple[np.ndarray, np.ndarray]], queries: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query, the k best of several (scores, ids) lists: by score, ties by lower id."""
    if not lists:
        return np.full((queries, k), -np.inf, np.float32), np.full((queries, k), -1, np.int64)
    scores = np.concatenate([s for s, _ in lists], axis=1)
    ids = np.concatenate([i for _, i in lists], axis=1)
    scores = np.where(ids >= 0, scores, -np.inf)
    order = np.lexsort((ids, -scores), axis=1)[:, :k]
    top_s, top_i = np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1)
    if top_s.shape[1] < k:
        pad = k - top_s.shape[1]
        top_s = np.pad(top_s, ((0, 0), (0, pad)), constant_values=-np.inf)
        top_i = np.pad(top_i, ((0, 0), (0, pad)), constant_values=-1)
    return top_s.astype(np.float32), top_i.astype(np.int64)


def plan_merges(live: dict[int, int], held: dict[int, int], everything: bool = False) -> list[list[int]]:
    """Which segments to merge: groups of segment ids. `live[s]` / `held[s]`: live vectors
    and vectors in the file. Segments are put in tiers by size (powers of MERGE_FACTOR
    above TIER_FLOOR); a tier with MERGE_FACTOR segments is merged into one, which lands in
    a higher tier; a segment with DEAD_SHARE dead is rewritten alone. `everything`: all
    into one (`searchkit optimize`).

    >>> plan_merges({1: 10, 2: 10, 3: 10}, {1: 10, 2: 10, 3: 10}, everything=True)
    [[1, 2, 3]]
    """
    if everything:
        needs = len(live) > 1 or any(held[s] > live[s] for s in live)
        return [sorted(live)] if live and needs else []
    tiers: dict[int, list[int]] = {}
    for s, n in live.items():
        tier = 0 if n < TIER_FLOOR else 1 + int(math.log(n / TIER_FLOOR, MERGE_FACTOR))
        tiers.setdefault(tier, []).append(s)
    groups = [sorted(members) for _, members in sorted(tiers.items()) if len(members) >= MERGE_FACTOR]
    merging = {s for g in groups for s in g}
    groups += [[s] for s in sorted(live) if s not in merging and held[s] and (held[s] - live[s]) >= DEAD_SHARE * held[s]]
    return groups
