"""Vector indexes under stable int64 ids (the SQLite chunk ids), saved atomically.

One small interface, `VectorIndex` (add, remove, search, save, load, count, ids,
settings, reconstruct), implemented once per kind (`KINDS`); a new kind is one class.
`FaissVectors` holds what they share: saving and loading, the thread policy, filters
and excluded ids routed to the kind's own search, the GPU copy.

- `FlatVectors`: `IndexFlatIP` under an `IndexIDMap2` (ids stay attached to their
  vectors across removals), exact. A single query scans every vector: 7 ms p50 per 100k
  vectors × 384 dims on one FAISS thread here, so "auto" keeps it only while an index is
  small (`AUTO_HNSW_AT`).
- `HNSWVectors`: `IndexHNSWFlat` (a graph over the raw vectors) under an IDMap,
  approximate, fast at any size. A graph cannot lose a vector: a removed id becomes a
  *tombstone* (its label set to -1) that searches skip with an `IDSelector`. Segments
  never remove from one (they mark ids dead and merges rebuild); files of format 1 may
  hold tombstones.
- `IVFPQVectors`: `IndexIVFPQ` (inverted lists of product-quantised codes) behind an OPQ
  rotation, approximate and small (`m` bytes a vector), trained on the vectors it is
  built from (`from_vectors`). It holds the ids itself (no IDMap, see `from_vectors`)
  with a hashtable direct map, so `remove_ids` finds each id without scanning the lists.
  Its reconstructions are approximate.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

import faiss
import numpy as np

from ..errors import BadInput, DiskFull, IndexCorrupt, bad_value
from . import gpu

KINDS = ("flat", "hnsw", "ivfpq")
INDEX_TYPES = ("auto", *KINDS)  # what --index-type takes: a kind, or auto (flat, then hnsw)
# Defaults per kind; the chosen values are recorded in the index settings (`index_params`).
DEFAULT_PARAMS = {
    "flat": {},
    # efSearch 384: recall@10 0.956, p50 3.5 ms on 1M vectors, 2 cores (bench/RESULTS.md);
    # 96 suffices on 100k (0.95, 0.5 ms), so the default holds up to 1M
    "hnsw": {"M": 32, "efConstruction": 80, "efSearch": 384},
    # nlist None: ~4·sqrt(n) at training; m None: the largest divisor of the dim up to 48
    # (48 bytes a vector for 384 and 768 dims, 32 for 256, 512 and 1024)
    "ivfpq": {"nlist": None, "m": None, "nbits": 8, "nprobe": 32},
}
# "auto" (no --index-type): flat, exact, until a single query's full scan nears 5 ms
# (15.5 ms p50 per 100k × 384 on 2 cores, bench/index_types.py), then hnsw (0.5 ms p50
# at recall@10 0.95 on 100k, 17% more memory than flat, 23 s to build 100k, 445 s 1M).
AUTO_HNSW_AT = 30_000
IVF_MIN_TRAIN = 10_000  # PQ's 256 centroids per sub-quantiser want ≥ 39·256 training vectors
EXACT_FILTER = 50_000  # a where-filter allowing at most this many ids: exact search among them
# Below this many queries FAISS runs on one thread. Its OpenMP threads (FAISS ships its own
# libgomp, apart from torch's) spin after a parallel search and take the cores from the
# next query's forward pass: on 2 cores, embed + search of one query took 18.1 ms against
# 10.4 ms for the embedding alone, and one thread scans a 300k flat index in 19.9 ms
# against 44 ms on two. From 20 queries on FAISS uses BLAS, where threads pay.
SERIAL_BELOW = 20
LIVE = faiss.IDSelectorRange(0, 2**62)  # chunk ids are positive; tombstones are labelled -1


# A vectors file whose sha256 differs from the one its commit recorded.
DAMAGED = "damaged since it was written (its sha256 is not the catalog's)"

# What FAISS can take (its fields are C ints) and what makes sense: HNSW degree 2 to 256,
# beams and lists up to about a million, 1 to 16 bits a code.
PARAM_RANGES = {"M": (2, 256), "efConstruction": (1, 1 << 20), "efSearch": (1, 1 << 20),
                "nlist": (1, 1 << 20), "m": (1, 1024), "nbits": (1, 16), "nprobe": (1, 1 << 20)}

SEARCH_PARAMS = ("efSearch", "nprobe")  # may change on a built index; the rest need a rebuild


def check_params(choice: str, params: dict, built: dict | None = None) -> dict:
    """Validate user-given `params` for an index of `choice` (a kind or "auto", which takes
    hnsw's). `built`: the parameters an existing index was built with, which only
    SEARCH_PARAMS may differ from. Returns `params` with int values."""
    kind = "hnsw" if choice == "auto" else choice
    allowed = DEFAULT_PARAMS[kind]
    out = {}
    for name, value in params.items():
        if name not in allowed:
            known = ", ".join(allowed) or "none"
            raise BadInput(f"index parameter {name!r}: not one of a {kind} index's ({known})")
        try:
            out[name] = int(value)
        except (TypeError, ValueError):
            raise BadInput(f"index parameter {name}={value!r}: expected a whole number") from None
        low, high = PARAM_RANGES[name]
        if not low <= out[name] <= high:
            raise BadInput(f"index parameter {name}={value}: must be from {low} to {high:,}")
        was = (built or {}).get(name)
        if name not in SEARCH_PARAMS and was is not None and int(was) != out[name]:
            raise BadInput(f"index parameter {name}={out[name]}: this index was built with {name}={was}; "
                           "changing it needs --rebuild")
    return out


def params_for(kind: str, params: dict | None = None) -> dict:
    """The full parameter set of `kind`: defaults overridden by `params`."""
    if kind not in KINDS:
        raise bad_value("index_type", kind, f"expected one of {', '.join(KINDS)}")
    unknown = set(params or {}) - set(DEFAULT_PARAMS[kind])
    if unknown:
        raise BadInput(f"index type {kind}: unknown parameters {', '.join(sorted(unknown))}")
    return {**DEFAULT_PARAMS[kind], **(params or {})}




@runtime_checkable
class VectorIndex(Protocol):
    """What the segments (store/segments.py) need of a vector index of any kind."""

    kind: str
    params: dict

    @property
    def count(self) -> int: ...  # live vectors
    @property
    def held(self) -> int: ...  # vectors in the file, removed ones a graph keeps included
    @property
    def dim(self) -> int: ...
    @property
    def settings(self) -> dict: ...
    def ids(self) -> np.ndarray: ...
    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None: ...
    def remove(self, ids: np.ndarray) -> int: ...
    def search(self, queries: np.ndarray, k: int, ids: np.ndarray | None = None,
               exclude: np.ndarray | None = None, beam: float = 1.0) -> tuple[np.ndarray, np.ndarray]: ...
    def reconstruct(self, ids: np.ndarray) -> np.ndarray: ...
    def save(self, path: Path) -> str: ...


class FaissVectors:
    """What every kind shares; `create`, `from_vectors` and `load` give the kind's class.

    >>> vectors = FaissVectors.create(384)
    >>> vectors.add(np.array([7]), np.ones((1, 384), "float32"))
    >>> vectors.search(np.ones((1, 384), "float32"), k=1)[1]
    array([[7]])
    >>> FaissVectors.from_vectors("hnsw", ids, x, efSearch=128).kind
    'hnsw'
    """

    kind: ClassVar[str] = ""
    exact: ClassVar[bool] = True  # scores are exact inner products (not PQ approximations)

    def __init__(self, index: faiss.Index, params: dict | None = None):
        self.index = index
        self.params = params_for(self.kind, self._read_params() if params is None else params)
        self._order: np.ndarray | None = None  # argsort of id_map, for id -> slot
        self._gpu: faiss.Index | None = None  # the search copy on a GPU (store/gpu.py)
        self._gpu_refused = False  # faiss-gpu would not take this index: search on the CPU
        self.file_sha256: str | None = None  # of the file it was loaded from (`load`)
        self.mapped = False  # memory-mapped from its file (`load(mmap=True)`): read-only
        self._apply_params()

    # -- making one ----------------------------------------------------------------------------

    @staticmethod
    def create(dim: int, kind: str = "flat", **params) -> FaissVectors:
        """An empty index of `kind` (flat or hnsw: ivfpq has to be trained, `from_vectors`)."""
        cls = _class_of(kind)
        p = params_for(kind, params)
        if cls is IVFPQVectors:
            raise BadInput("ivfpq: an IVF-PQ index is trained on its vectors: build it with from_vectors")
        return cls(cls.empty(dim, p), p)

    @staticmethod
    def from_vectors(kind: str, ids: np.ndarray, vectors: np.ndarray, **params) -> FaissVectors:
        """A new index of `kind` holding these vectors (ivfpq: trained on them)."""
        cls = _class_of(kind)
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(ids), -1)
        return cls.build(vectors.shape[1], ids, vectors, params_for(kind, params))

    @classmethod
    def empty(cls, dim: int, params: dict) -> faiss.Index:
        raise NotImplementedError

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vectors: np.ndarray, params: dict) -> FaissVectors:
        new = cls(cls.empty(dim, params), params)
        new.add(ids, vectors)
        return new

    def converted(self, kind: str, **params) -> FaissVectors:
        """A new index of `kind` holding this one's live vectors (a rebuild)."""
        ids = self.ids()
        return FaissVectors.from_vectors(kind, ids, self.reconstruct(ids), **params)

    def tune(self, params: dict | None) -> FaissVectors:
        """Re-apply recorded parameters of this kind (`write_index` does not keep nprobe)."""
        self.params.update({k: v for k, v in (params or {}).items() if k in DEFAULT_PARAMS[self.kind]})
        self._apply_params()
        return self

    # -- what the kind says ------------------------------------------------------------------

    def _read_params(self) -> dict:
        """The parameters a (loaded) FAISS index carries itself."""
        return {}

    def _apply_params(self) -> None:
        """Put the search parameters into the FAISS index."""

    def _inner(self) -> faiss.Index:
        """The index doing the work (under the IDMap)."""
        return faiss.downcast_index(self.index.index)

    @property
    def _id_map(self) -> np.ndarray:
        """The id of each slot (-1: a tombstone)."""
        return faiss.vector_to_array(self.index.id_map).astype(np.int64)

    def _raw(self) -> np.ndarray | None:
        """The stored vectors as an (ntotal, dim) view (None: codes, not vectors)."""
        return None

    def _search_all(self, queries: np.ndarray, k: int, sel=None, beam: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Top-k over every vector (`sel`: a FAISS IDSelector the hits must pass; `beam`:
        see `search`)."""
        return self.index.search(queries, k, params=faiss.SearchParameters(sel=sel) if sel is not None else None)

    def _search_among(self, queries: np.ndarray, k: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Top-k among these ids only (a where-filter): flat scans all and skips the others,
        so no hit is lost to the filter."""
        return self._search_all(queries, k, faiss.IDSelectorBatch(ids))

    # -- the interface ------------------------------------------------------------------------

    @property
    def settings(self) -> dict:
        """For the catalog: the kind and the parameters in use."""
        return {"index_type": self.kind, "index_choice": self.kind, "index_params": dict(self.params)}

    @property
    def dim(self) -> int:
        return int(self.index.d)

    @property
    def tombstones(self) -> int:
        return 0

    @property
    def held(self) -> int:
        """Vectors in the index, tombstones included."""
        return int(self.index.ntotal)

    @property
    def count(self) -> int:
        """Live vectors (tombstones not counted)."""
        return self.held - self.tombstones

    def ids(self) -> np.ndarray:
        """Every (live) id held, as int64."""
        ids = self._id_map
        return ids[ids >= 0]

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim or len(ids) != len(vectors):
            raise ValueError(f"add: expected {len(ids)} vectors of dim {self.dim}, got {vectors.shape}")
        if len(ids):
            self.index.add_with_ids(vectors, ids)
            self._order, self._gpu = None, None

    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids; returns how many were present."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return 0
        self._order, self._gpu = None, None
        return int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))

    def _slots(self, ids: np.ndarray) -> np.ndarray:
        """Inner-index positions of these ids (all must be live)."""
        id_map = self._id_map
        if self._order is None or len(self._order) != len(id_map):
            self._order = np.argsort(id_map, kind="stable")
        at = np.searchsorted(id_map[self._order], ids)
        slots = self._order[np.minimum(at, len(id_map) - 1)] if len(id_map) else at
        if not len(id_map) or (id_map[slots] != ids).any():
            raise KeyError("some ids are not in the index")
        return slots

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these ids, (n, dim); approximate for ivfpq."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return np.zeros((0, self.dim), "float32")
        raw = self._raw()
        if raw is not None:
            return raw[self._slots(ids)].copy()
        return np.stack([self.index.reconstruct(int(i)) for i in ids])

    def search(self, queries: np.ndarray, k: int, ids: np.ndarray | None = None,
               exclude: np.ndarray | None = None, beam: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query; ids are -1 where fewer than k vectors exist.
        `ids`: only these are candidates; `exclude`: these never are (a segment's dead ids).
        `beam`: the share of the search effort (HNSW's efSearch) to spend: a segment
        that holds part of an index needs less than the whole would (segments.py).

        Fewer than `SERIAL_BELOW` queries run on one FAISS thread (see there).
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if len(queries) >= SERIAL_BELOW:
            return self._search(queries, k, ids, exclude, beam)
        before = faiss.omp_get_max_threads()  # OpenMP settings are per calling thread
        faiss.omp_set_num_threads(1)
        try:
            return self._search(queries, k, ids, exclude, beam)
        finally:
            faiss.omp_set_num_threads(before)

    def _search(self, queries: np.ndarray, k: int, ids: np.ndarray | None,
                exclude: np.ndarray | None, beam: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """`exclude` goes to FAISS as a NOT selector (so on the CPU: faiss-gpu takes no
        selector); unfiltered searches may run on the GPU copy."""
        if ids is not None and exclude is not None:
            ids, exclude = np.setdiff1d(ids, exclude), None
        if ids is not None:
            ids = np.ascontiguousarray(ids, dtype=np.int64)
            return self._search_among(queries, max(1, min(int(k), max(len(ids), 1))), ids)
        k = max(1, min(int(k), max(self.count, 1)))
        if exclude is not None and len(exclude):
            batch = faiss.IDSelectorBatch(np.ascontiguousarray(exclude, dtype=np.int64))
            skip = faiss.IDSelectorNot(batch)
            return self._search_all(queries, k, skip, beam)
        copy = self._gpu_copy(k)
        if copy is not None:
            return gpu.search(copy, queries, k, self.params.get("nprobe"))
        return self._search_all(queries, k, beam=beam)

    @property
    def placement(self) -> str:
        """Where unfiltered searches run: "GPU 0" (faiss-gpu) or "CPU"."""
        on_gpu = self.kind in gpu.GPU_KINDS and not self._gpu_refused and gpu.gpu_count() > 0
        return f"GPU {gpu.DEVICE}" if on_gpu else "CPU"

    def _gpu_copy(self, k: int) -> faiss.Index | None:
        """The GPU copy to search with k, made on first use; None: search on the CPU."""
        if k > gpu.MAX_K or self.placement == "CPU" or not self.count:
            return None
        if self._gpu is None:
            self._gpu = gpu.to_gpu(self.index, self.kind)
            self._gpu_refused = self._gpu is None
        return self._gpu

    def save(self, path: Path) -> str:
        """Write to `path` atomically: temp file, fsync, rename, fsync the folder. Returns the
        file's sha256 (hashed as it is written), for the catalog to record: `verify` then
        finds any later damage. On any failure the temp file is removed; a full disk raises
        `DiskFull`."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp")
        digest = hashlib.sha256()
        try:
            with open(tmp, "wb") as fh:

                def write(chunk: bytes) -> None:
                    digest.update(chunk)
                    fh.write(chunk)

                # Through Python's file, so that a write error keeps its errno (FAISS's own
                # writer turns it into a RuntimeError string).
                writer = faiss.PyCallbackIOWriter(write)
                faiss.write_index(self.index, writer)
                del writer
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            fsync_dir(path.parent)
        except BaseException as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                raise DiskFull(f"disk full while writing {tmp}; free some space and run the command "
                               "again (the index keeps its last commit)") from None
            raise
        return digest.hexdigest()

    @staticmethod
    def load(path: Path, params: dict | None = None, sha256: str | None = None,
             mmap: bool = False) -> FaissVectors:
        """Read a saved index, as its kind's class; `params` (the settings' `index_params`)
        re-applies the search settings that `write_index` does not keep (IVF's nprobe).
        `sha256`: the digest its commit recorded; the bytes are hashed as FAISS reads them
        (about 0.5 s a GB more), and a file changed since it was written is refused rather
        than searched.

        `mmap`: map the vectors (flat codes, HNSW's storage, IVF lists) instead of reading
        them, so opening costs next to nothing whatever the size; nothing is hashed then
        (`verify` does), and the index must not be changed (segments never are)."""
        digest = hashlib.sha256()
        try:
            if mmap:
                index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_MMAP)
            else:
                with open(path, "rb") as fh:

                    def read(size: int) -> bytes:
                        chunk = fh.read(size)
                        digest.update(chunk)
                        return chunk

                    reader = faiss.PyCallbackIOReader(read)
                    index = faiss.read_index(reader)
                    del reader
                    digest.update(fh.read())  # anything past what FAISS read is part of the file too
        except FileNotFoundError:
            raise IndexCorrupt(f"{path}: missing") from None
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
            raise IndexCorrupt(f"{path}: not a readable FAISS index ({first[:160]})") from None
        if sha256 and not mmap and digest.hexdigest() != sha256:
            raise IndexCorrupt(f"{path}: {DAMAGED}; `searchkit verify --repair` re-embeds it from the catalog")
        try:
            cls = _class_of(_kind_of(index))
        except TypeError as exc:
            raise IndexCorrupt(f"{path}: {exc}") from None
        vectors = cls(index).tune(params)
        vectors.mapped = mmap
        vectors.file_sha256 = None if mmap else digest.hexdigest()
        return vectors


class FlatVectors(FaissVectors):
    """Exact: every query scans every vector."""

    kind = "flat"

    @classmethod
    def empty(cls, dim: int, params: dict) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    def _raw(self) -> np.ndarray | None:
        return _vectors_of(self._inner(), self.dim)


class HNSWVectors(FaissVectors):
    """An HNSW graph over the raw vectors; removals are tombstones (see the module docstring)."""

    kind = "hnsw"

    def __init__(self, index: faiss.Index, params: dict | None = None):
        super().__init__(index, params)
        self._dead = int((self._id_map < 0).sum())

    @classmethod
    def empty(cls, dim: int, params: dict) -> faiss.Index:
        inner = faiss.IndexHNSWFlat(dim, int(params["M"]), faiss.METRIC_INNER_PRODUCT)
        inner.hnsw.efConstruction = int(params["efConstruction"])
        return faiss.IndexIDMap2(inner)

    def _read_params(self) -> dict:
        inner = self._inner()
        return {"M": int(inner.hnsw.nb_neighbors(1)), "efConstruction": int(inner.hnsw.efConstruction),
                "efSearch": int(inner.hnsw.efSearch)}

    def _apply_params(self) -> None:
        self._inner().hnsw.efSearch = int(self.params["efSearch"])

    @property
    def tombstones(self) -> int:
        return self._dead

    def _raw(self) -> np.ndarray | None:
        return _vectors_of(faiss.downcast_index(self._inner().storage), self.dim)

    def remove(self, ids: np.ndarray) -> int:
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        id_map = self._id_map
        dead = np.isin(id_map, ids[ids >= 0])
        n = int(dead.sum())
        if n:
            id_map[dead] = -1
            faiss.copy_array_to_vector(id_map, self.index.id_map)
            self.index.construct_rev_map()
            self._order, self._gpu, self._dead = None, None, self._dead + n
        return n

    def _search_all(self, queries: np.ndarray, k: int, sel=None, beam: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        if self.tombstones:
            sel = faiss.IDSelectorAnd(LIVE, sel) if sel is not None else LIVE
        params = faiss.SearchParametersHNSW(efSearch=max(round(int(self.params["efSearch"]) * beam), k))
        if sel is not None:
            params.sel = sel
        return self.index.search(queries, k, params=params)

    def _search_among(self, queries: np.ndarray, k: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The few (≤ `EXACT_FILTER`) exactly among their raw vectors; for the many, the
        graph with the filter and a beam widened by 1 / the share of ids allowed."""
        if len(ids) <= EXACT_FILTER:
            return _exact_among(self, queries, k, ids)
        live = self.count
        widen = max(1, math.ceil(live / max(len(ids), 1)))
        selector = faiss.IDSelectorBatch(ids)  # kept alive in this frame during the search
        ef = min(max(int(self.params["efSearch"]) * widen, k), max(live, 1))
        return self.index.search(queries, k, params=faiss.SearchParametersHNSW(sel=selector, efSearch=ef))


class IVFPQVectors(FaissVectors):
    """IVF-PQ codes behind an OPQ rotation, holding its own ids (see `build`)."""

    kind = "ivfpq"
    exact = False

    @classmethod
    def build(cls, dim: int, ids: np.ndarray, vectors: np.ndarray, params: dict) -> FaissVectors:
        p = dict(params)
        p["m"] = int(p["m"] or _default_m(dim))
        if dim % p["m"]:
            raise BadInput(f"ivfpq: m={p['m']} must divide the dimension {dim}")
        if len(ids) < 256:
            raise BadInput(f"ivfpq: {len(ids)} vectors are too few to train on")
        nlist = int(p["nlist"] or min(max(16, round(4 * math.sqrt(len(ids)))), len(ids) // 39))
        quantizer = faiss.IndexFlatIP(dim)
        inner = faiss.IndexIVFPQ(quantizer, dim, nlist, int(p["m"]), int(p["nbits"]), faiss.METRIC_INNER_PRODUCT)
        inner.cp.seed = inner.pq.cp.seed = 1234
        inner.pq.cp.niter = 10  # PQ training dominates the build (48 k-means); 10 rounds suffice
        # OPQ: a learned rotation that spreads the variance evenly over the m sub-spaces
        # before they are quantised: recall@10 0.41 -> 0.54 at nprobe 128 on 1M clustered
        # vectors (bench/index_types.py), same 48 bytes a vector. Its reverse serves reconstruct.
        opq = faiss.OPQMatrix(dim, int(p["m"]))
        opq.niter = 20  # of 50: half the training time, recall@10 0.69 -> 0.67 (tests' data)
        index = faiss.IndexPreTransform(opq, inner)
        sample = max(39 * nlist, 256 * 39)
        rng = np.random.default_rng(1234)
        train = vectors if len(vectors) <= sample else vectors[np.sort(rng.choice(len(vectors), sample, replace=False))]
        index.train(np.ascontiguousarray(train, dtype=np.float32))
        # Not under an IndexIDMap2: IVF keeps its own ids in the lists, and an IDMap over
        # IVF goes wrong after remove_ids (it compacts id_map, the lists keep their old
        # positions, so later hits map to the wrong ids). The direct map serves reconstruct.
        inner.set_direct_map_type(faiss.DirectMap.Hashtable)
        new = cls(index, {**p, "nlist": nlist})
        new._keep = (quantizer, opq, inner)  # the wrapper points at them: keep them alive
        new.add(ids, vectors)
        return new

    def empty_like(self) -> IVFPQVectors:
        """An empty index with this one's trained quantiser and rotation (segments share
        them, so their codes merge: store/segments.py)."""
        index = faiss.clone_index(self.index)
        index.reset()
        return IVFPQVectors(index, dict(self.params))

    def _inner(self) -> faiss.Index:
        return faiss.downcast_index(faiss.extract_index_ivf(self.index))

    def _read_params(self) -> dict:  # nprobe is not kept in the file: `tune` puts it back
        inner = self._inner()
        return {"nlist": int(inner.nlist), "m": int(inner.pq.M), "nbits": int(inner.pq.nbits)}

    def _apply_params(self) -> None:
        inner = self._inner()
        inner.nprobe = int(self.params["nprobe"])
        self.params["nlist"] = int(inner.nlist)

    @property
    def _id_map(self) -> np.ndarray:
        """The ids in its lists, in list order."""
        ivf = self._inner()
        lists = ivf.invlists
        parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                 for i in range(ivf.nlist) if lists.list_size(i)]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    def remove(self, ids: np.ndarray) -> int:
        """Its hashtable direct map finds each id without a scan (given present ones only)."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        present = ids[np.isin(ids, self._id_map)]
        self._order, self._gpu = None, None
        return int(self.index.remove_ids(faiss.IDSelectorArray(present))) if len(present) else 0

    def _search_all(self, queries: np.ndarray, k: int, sel=None, beam: float = 1.0, nprobe: int | None = None):
        params = faiss.SearchParametersIVF(nprobe=int(nprobe or self.params["nprobe"]))
        if sel is not None:
            params.sel = sel
        return self.index.search(queries, k, params=params)

    def _search_among(self, queries: np.ndarray, k: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """More lists probed the fewer the ids: all of them for ≤ `EXACT_FILTER`."""
        nlist = int(self.params["nlist"])
        widen = max(1, math.ceil(self.count / max(len(ids), 1)))
        nprobe = nlist if len(ids) <= EXACT_FILTER else min(nlist, int(self.params["nprobe"]) * widen)
        selector = faiss.IDSelectorBatch(ids)  # kept alive in this frame during the search
        return self._search_all(queries, k, selector, nprobe=nprobe)


KIND_CLASSES: dict[str, type[FaissVectors]] = {c.kind: c for c in (FlatVectors, HNSWVectors, IVFPQVectors)}


def _vectors_of(flat: faiss.IndexFlat, dim: int) -> np.ndarray:
    """A flat index's stored vectors as an (ntotal, dim) view, not a copy."""
    if not flat.ntotal:
        return np.zeros((0, dim), "float32")
    return faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * dim).reshape(-1, dim)


def _class_of(kind: str) -> type[FaissVectors]:
    if kind not in KIND_CLASSES:
        raise bad_value("index_type", kind, f"expected one of {', '.join(KINDS)}")
    return KIND_CLASSES[kind]


def _exact_among(vectors: FaissVectors, queries: np.ndarray, k: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Top-k among `ids` by inner products with their raw vectors."""
    ids = np.unique(ids)
    id_map = vectors._id_map
    ids = ids[np.isin(ids, id_map[id_map >= 0])]
    scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    labels = np.full((len(queries), k), -1, dtype=np.int64)
    if not len(ids):
        return scores, labels
    sims = queries @ vectors.reconstruct(ids).T  # (Q, n)
    top = min(k, len(ids))
    part = np.argpartition(-sims, top - 1, axis=1)[:, :top]
    for row, cand in enumerate(part):
        cand = cand[np.argsort(-sims[row, cand], kind="stable")]
        scores[row, :top], labels[row, :top] = sims[row, cand], ids[cand]
    return scores, labels


def _default_m(dim: int) -> int:
    """PQ sub-quantisers: the largest divisor of `dim` up to 48."""
    return max(m for m in range(1, 49) if dim % m == 0)


def _kind_of(index: faiss.Index) -> str:
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexPreTransform):  # OPQ + IVF-PQ
        index = faiss.downcast_index(index.index)
    if isinstance(index, faiss.IndexIVFPQ):  # (bare: indexes built before OPQ)
        return "ivfpq"
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else None
    for kind, cls in (("flat", faiss.IndexFlat), ("hnsw", faiss.IndexHNSW), ("ivfpq", faiss.IndexIVFPQ)):
        if isinstance(inner, cls):
            return kind
    raise TypeError(f"unsupported FAISS index {type(index).__name__}/{type(inner).__name__}")


def fsync_dir(folder: Path) -> None:
    """Make a rename inside `folder` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
