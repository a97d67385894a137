"""FAISS vectors under stable int64 ids (the SQLite chunk ids), saved atomically.

The index is an `IndexIDMap2` over an inner-product index: ids stay attached to their
vectors across removals (a plain Flat index would shift every id above a removed one).
Three kinds (`KINDS`):

- `flat`: `IndexFlatIP`, exact. A single query scans every vector: 7 ms p50 per 100k
  vectors × 384 dims on one FAISS thread here, so it is the default only while an index
  is small (`AUTO_HNSW_AT`).
- `hnsw`: `IndexHNSWFlat` (graph over the raw vectors), approximate, fast at any size.
  HNSW cannot remove a vector: a removed id becomes a *tombstone*, its slot's label in
  the IDMap's `id_map` set to -1, so it is saved in the same file (same generation)
  and every search skips it with an `IDSelector`; past `COMPACT_AT` tombstones the
  graph is rebuilt from the live vectors (HNSWFlat keeps them exactly).
- `ivfpq`: `IndexIVFPQ` (inverted lists of product-quantised codes) behind an OPQ
  rotation, approximate and small (`m` bytes a vector); trained on its first
  `IVF_MIN_TRAIN` vectors, and held as `flat` until it has that many. It holds the ids
  itself (no IDMap, see `converted`) with a hashtable direct map, so `remove_ids` finds
  each id without scanning the lists (plain IVF `remove_ids` scans them all: fine at our
  sizes too). Its reconstructions are approximate.
"""

from __future__ import annotations

import errno
import hashlib
import math
import os
from pathlib import Path

import faiss
import numpy as np

from ..errors import BadInput, DiskFull, IndexCorrupt, bad_value
from . import gpu

KINDS = ("flat", "hnsw", "ivfpq")
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
COMPACT_AT = 0.2  # rebuild an HNSW graph once this share of its slots are tombstones
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


class FaissVectors:
    """A small vector-index interface over FAISS: add, remove, search, save, load, count.

    >>> vectors = FaissVectors.create(384)
    >>> vectors.add(np.array([7]), np.ones((1, 384), "float32"))
    >>> vectors.search(np.ones((1, 384), "float32"), k=1)[1]
    array([[7]])
    >>> FaissVectors.create(384, "hnsw", efSearch=128).kind
    'hnsw'
    """

    def __init__(self, index: faiss.Index, kind: str | None = None, params: dict | None = None):
        self.index = index
        self.kind = kind or _kind_of(index)
        if params is None:
            params = self._read_params()
        self.params = params_for(self.kind, params if self.kind != "flat" else {})
        self.aim(self.kind, self.params)
        self._order: np.ndarray | None = None  # argsort of id_map, for id -> slot
        self._dead = int((self._id_map < 0).sum()) if self.kind == "hnsw" else 0  # tombstones
        self._gpu: faiss.Index | None = None  # the search copy on a GPU (store/gpu.py)
        self._gpu_refused = False  # faiss-gpu would not take this index: search on the CPU
        self.file_sha256: str | None = None  # of the file it was loaded from (`load`)
        self.mapped = False  # memory-mapped from its file (`load(mmap=True)`): read-only
        self._apply_params()

    @classmethod
    def create(cls, dim: int, kind: str = "flat", **params) -> "FaissVectors":
        """An empty index of `kind` (`KINDS`, or "auto"). "auto" starts flat and becomes
        hnsw at `AUTO_HNSW_AT` vectors; ivfpq starts flat and is trained once it holds
        `IVF_MIN_TRAIN` vectors (both happen inside `add`)."""
        if kind == "auto":
            vectors = cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), "flat")
            return vectors.aim("auto", params)
        p = params_for(kind, params)
        if kind == "hnsw":
            inner = faiss.IndexHNSWFlat(dim, int(p["M"]), faiss.METRIC_INNER_PRODUCT)
            inner.hnsw.efConstruction = int(p["efConstruction"])
            return cls(faiss.IndexIDMap2(inner), "hnsw", p)
        if kind == "ivfpq":
            p["m"] = int(p["m"] or _default_m(dim))
            if dim % p["m"]:
                raise BadInput(f"ivfpq: m={p['m']} must divide the dimension {dim}")
        return cls(faiss.IndexIDMap2(faiss.IndexFlatIP(dim)), "flat").aim(kind, p)

    def aim(self, choice: str, params: dict | None = None) -> "FaissVectors":
        """What this index is meant to become: `choice` is a kind or "auto" (hnsw params)."""
        self.want = choice
        self.want_params = params_for("hnsw" if choice == "auto" else choice, params)
        return self

    def tune(self, params: dict | None) -> "FaissVectors":
        """Re-apply recorded parameters of this kind (`write_index` does not keep nprobe)."""
        self.params.update({k: v for k, v in (params or {}).items() if k in DEFAULT_PARAMS[self.kind]})
        self._apply_params()
        return self

    @property
    def settings(self) -> dict:
        """For the catalog: the kind held now, the one chosen, and the parameters in use
        (the chosen kind's while an index still waits, flat, to become it)."""
        waiting = self.kind == "flat" and self.want != "flat"
        return {"index_type": self.kind, "index_choice": self.want,
                "index_params": dict(self.want_params if waiting else self.params)}

    def _read_params(self) -> dict:
        """The parameters a (loaded) FAISS index carries itself; nprobe is not among them."""
        inner = self._inner()
        if self.kind == "hnsw":
            return {"M": int(inner.hnsw.nb_neighbors(1)), "efConstruction": int(inner.hnsw.efConstruction),
                    "efSearch": int(inner.hnsw.efSearch)}
        if self.kind == "ivfpq":
            return {"nlist": int(inner.nlist), "m": int(inner.pq.M), "nbits": int(inner.pq.nbits)}
        return {}

    def _apply_params(self) -> None:
        inner = self._inner()
        if self.kind == "hnsw":
            inner.hnsw.efSearch = int(self.params["efSearch"])
        elif self.kind == "ivfpq":
            inner.nprobe = int(self.params["nprobe"])
            self.params["nlist"] = int(inner.nlist)

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def _inner(self) -> faiss.Index:
        """The index doing the work: HNSW or flat under the IDMap, IVF-PQ (under its OPQ)."""
        if self.kind == "ivfpq":
            return faiss.downcast_index(faiss.extract_index_ivf(self.index))
        return faiss.downcast_index(self.index.index)

    @property
    def _id_map(self) -> np.ndarray:
        """The id of each slot (-1: a tombstone); ivfpq: the ids in its lists, in list order."""
        if self.kind != "ivfpq":
            return faiss.vector_to_array(self.index.id_map).astype(np.int64)
        ivf = self._inner()
        lists = ivf.invlists
        parts = [faiss.rev_swig_ptr(lists.get_ids(i), lists.list_size(i)).copy()
                 for i in range(ivf.nlist) if lists.list_size(i)]
        return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)

    @property
    def tombstones(self) -> int:
        return self._dead

    @property
    def count(self) -> int:
        """Live vectors (tombstones not counted)."""
        return int(self.index.ntotal) - self._dead

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
        if self.kind == "flat" and self.want != "flat":
            due = {"hnsw": 0, "ivfpq": IVF_MIN_TRAIN, "auto": AUTO_HNSW_AT}[self.want]
            if self.count >= due:
                self._become(self.converted("hnsw" if self.want == "auto" else self.want, **self.want_params))

    def remove(self, ids: np.ndarray) -> int:
        """Remove these ids; returns how many were present. HNSW: tombstones (see the
        module docstring), compacted past `COMPACT_AT`."""
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        if not len(ids):
            return 0
        self._order, self._gpu = None, None
        if self.kind == "ivfpq":  # its hashtable direct map finds each id without a scan
            present = ids[np.isin(ids, self._id_map)]
            return int(self.index.remove_ids(faiss.IDSelectorArray(present))) if len(present) else 0
        if self.kind == "flat":
            return int(self.index.remove_ids(faiss.IDSelectorBatch(ids)))
        id_map = self._id_map
        dead = np.isin(id_map, ids[ids >= 0])
        n = int(dead.sum())
        if n:
            id_map[dead] = -1
            faiss.copy_array_to_vector(id_map, self.index.id_map)
            self.index.construct_rev_map()
            self._order, self._dead = None, self._dead + n
            if self.tombstones > COMPACT_AT * self.index.ntotal:
                self._become(self.converted("hnsw", **self.params))
        return n

    def _become(self, other: "FaissVectors") -> None:
        self.index, self.kind, self.params, self._order = other.index, other.kind, other.params, None
        self._dead, self._gpu, self._gpu_refused = other._dead, None, False
        self._keep = getattr(other, "_keep", None)

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

    def _raw(self) -> np.ndarray | None:
        """The stored vectors as an (ntotal, dim) view, for flat and HNSW (None for PQ codes)."""
        inner = self._inner()
        flat = inner if self.kind == "flat" else faiss.downcast_index(inner.storage) if self.kind == "hnsw" else None
        if flat is None or not flat.ntotal:
            return None if flat is None else np.zeros((0, self.dim), "float32")
        return faiss.rev_swig_ptr(flat.get_xb(), flat.ntotal * self.dim).reshape(-1, self.dim)

    def reconstruct(self, ids: np.ndarray) -> np.ndarray:
        """The stored vectors of these ids, (n, dim); approximate for ivfpq."""
        ids = np.asarray(ids, dtype=np.int64)
        if not len(ids):
            return np.zeros((0, self.dim), "float32")
        raw = self._raw()
        if raw is not None:
            return raw[self._slots(ids)].copy()
        return np.stack([self.index.reconstruct(int(i)) for i in ids])

    def converted(self, kind: str, **params) -> "FaissVectors":
        """A new index of `kind` holding this one's live vectors (a rebuild)."""
        ids = self.ids()
        raw = self._raw()
        vectors = raw[self._slots(ids)] if raw is not None else self.reconstruct(ids)
        p = params_for(kind, params)
        if kind != "ivfpq":
            new = FaissVectors.create(self.dim, kind, **p)
            new.add(ids, vectors)
            return new
        p["m"] = int(p["m"] or _default_m(self.dim))
        if len(ids) < 256:
            raise BadInput(f"ivfpq: {len(ids)} vectors are too few to train on")
        nlist = int(p["nlist"] or min(max(16, round(4 * math.sqrt(len(ids)))), len(ids) // 39))
        quantizer = faiss.IndexFlatIP(self.dim)
        inner = faiss.IndexIVFPQ(quantizer, self.dim, nlist, int(p["m"]), int(p["nbits"]), faiss.METRIC_INNER_PRODUCT)
        inner.cp.seed = inner.pq.cp.seed = 1234
        inner.pq.cp.niter = 10  # PQ training dominates the build (48 k-means); 10 rounds suffice
        # OPQ: a learned rotation that spreads the variance evenly over the m sub-spaces
        # before they are quantised: recall@10 0.41 -> 0.54 at nprobe 128 on 1M clustered
        # vectors (bench/index_types.py), same 48 bytes a vector. Its reverse serves reconstruct.
        opq = faiss.OPQMatrix(self.dim, int(p["m"]))
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
        new = FaissVectors(index, "ivfpq", {**p, "nlist": nlist})
        new._keep = (quantizer, opq, inner)  # the wrapper points at them: keep them alive
        new.add(ids, vectors)
        return new

    def search(self, queries: np.ndarray, k: int, ids: np.ndarray | None = None,
               exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores, ids) per query; ids are -1 where fewer than k vectors exist.
        `ids`: only these are candidates; `exclude`: these never are (a segment's dead ids).

        Fewer than `SERIAL_BELOW` queries run on one FAISS thread (see there).
        """
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        if len(queries) >= SERIAL_BELOW:
            return self._search(queries, k, ids, exclude)
        before = faiss.omp_get_max_threads()  # OpenMP settings are per calling thread
        faiss.omp_set_num_threads(1)
        try:
            return self._search(queries, k, ids, exclude)
        finally:
            faiss.omp_set_num_threads(before)

    def _search(self, queries: np.ndarray, k: int, ids: np.ndarray | None,
                exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """`search` on float32 (Q, dim) queries.

        With `ids`, only those vectors are candidates: flat scans all and skips the others,
        so no hit is lost to the filter; hnsw searches the few (≤ `EXACT_FILTER`) exactly
        among their raw vectors, and widens its beam for the many; ivfpq probes more lists
        the fewer the ids (all of them for ≤ `EXACT_FILTER`). `exclude` goes to FAISS as a
        NOT selector (so on the CPU: faiss-gpu takes no selector)."""
        live = self.count
        if ids is not None and exclude is not None:
            ids, exclude = np.setdiff1d(ids, exclude), None
        if exclude is not None and len(exclude):
            k = max(1, min(int(k), max(live, 1)))
            batch = faiss.IDSelectorBatch(np.ascontiguousarray(exclude, dtype=np.int64))
            skip = faiss.IDSelectorNot(batch)
            if self.kind == "hnsw":
                sel = faiss.IDSelectorAnd(LIVE, skip) if self.tombstones else skip
                params = faiss.SearchParametersHNSW(sel=sel, efSearch=max(int(self.params["efSearch"]), k))
            elif self.kind == "ivfpq":
                params = faiss.SearchParametersIVF(sel=skip, nprobe=int(self.params["nprobe"]))
            else:
                params = faiss.SearchParameters(sel=skip)
            return self.index.search(queries, k, params=params)
        if ids is None:
            k = max(1, min(int(k), max(live, 1)))
            copy = self._gpu_copy(k)
            if copy is not None:
                return gpu.search(copy, queries, k, self.params["nprobe"] if self.kind == "ivfpq" else None)
            if self.kind == "flat":
                return self.index.search(queries, k)
            if self.kind == "hnsw":
                params = faiss.SearchParametersHNSW(efSearch=max(int(self.params["efSearch"]), k))
                if self.tombstones:
                    params.sel = LIVE
                return self.index.search(queries, k, params=params)
            return self.index.search(queries, k, params=faiss.SearchParametersIVF(nprobe=int(self.params["nprobe"])))
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        k = max(1, min(int(k), max(len(ids), 1)))
        selector = faiss.IDSelectorBatch(ids)  # kept alive in this frame during the search
        widen = max(1, math.ceil(live / max(len(ids), 1)))  # 1 / the share of ids allowed
        if self.kind == "flat":
            return self.index.search(queries, k, params=faiss.SearchParameters(sel=selector))
        if self.kind == "hnsw":
            if len(ids) <= EXACT_FILTER:
                return self._exact_among(queries, k, ids)
            ef = min(max(int(self.params["efSearch"]) * widen, k), max(live, 1))
            return self.index.search(queries, k, params=faiss.SearchParametersHNSW(sel=selector, efSearch=ef))
        nlist = int(self.params["nlist"])
        nprobe = nlist if len(ids) <= EXACT_FILTER else min(nlist, int(self.params["nprobe"]) * widen)
        return self.index.search(queries, k, params=faiss.SearchParametersIVF(sel=selector, nprobe=nprobe))

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

    def _exact_among(self, queries: np.ndarray, k: int, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ids = np.unique(ids)
        id_map = self._id_map
        ids = ids[np.isin(ids, id_map[id_map >= 0])]
        scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
        labels = np.full((len(queries), k), -1, dtype=np.int64)
        if not len(ids):
            return scores, labels
        sims = queries @ self.reconstruct(ids).T  # (Q, n)
        top = min(k, len(ids))
        part = np.argpartition(-sims, top - 1, axis=1)[:, :top]
        for row, cand in enumerate(part):
            cand = cand[np.argsort(-sims[row, cand], kind="stable")]
            scores[row, :top], labels[row, :top] = sims[row, cand], ids[cand]
        return scores, labels

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

    @classmethod
    def load(cls, path: Path, params: dict | None = None, sha256: str | None = None,
             mmap: bool = False) -> "FaissVectors":
        """Read a saved index; `params` (the settings' `index_params`) re-applies the search
        settings that `write_index` does not keep (IVF's nprobe). `sha256`: the digest its
        commit recorded; the bytes are hashed as FAISS reads them (about 0.5 s a GB more),
        and a file changed since it was written is refused rather than searched.

        `mmap`: map the vectors (flat codes, HNSW's storage, IVF lists) instead of reading
        them, so opening costs next to nothing whatever the size; nothing is hashed then
        (`verify` does), and the index must not be changed (segments never are)."""
        if mmap:
            try:
                index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_MMAP)
            except RuntimeError as exc:
                first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unreadable"
                raise IndexCorrupt(f"{path}: not a readable FAISS index ({first[:160]})") from None
            vectors = cls(index, _kind_of(index)).tune(params)
            vectors.mapped = True
            return vectors
        digest = hashlib.sha256()
        try:
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
        if sha256 and digest.hexdigest() != sha256:
            raise IndexCorrupt(f"{path}: {DAMAGED}; `searchkit verify --repair` re-embeds it from the catalog")
        try:
            kind = _kind_of(index)
        except TypeError as exc:
            raise IndexCorrupt(f"{path}: {exc}") from None
        vectors = cls(index, kind).tune(params)
        vectors.file_sha256 = digest.hexdigest()
        return vectors


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
