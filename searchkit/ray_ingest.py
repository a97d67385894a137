"""The ingest's prepare and embed stages on Ray Data (`searchkit ingest --ray`).

The driver scans and writes, as in a local ingest: only new and changed files go to Ray.
There, tasks read and chunk batches of files (`map_batches` over file lists) and a pool of
actors embeds them (`ActorPoolStrategy`), each actor loading the encoder once. The
prepared files and their vectors stream back, in the order the scan found them, to the
driver's `IndexWriter`, which hands out chunk ids and commits exactly as a local ingest
does: the same ids, chunks and vectors, the same crash safety.

Ray retries a task or restarts an actor that dies; a file's rows reach the driver once,
so nothing is duplicated.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .errors import BadInput, ModelMismatch, bad_value
from .ingest import content_reason, prepare
from .ingest_records import Batch, FileState, PreparedFile
from .resolve import resolve_model

INSTALL_HINT = "pip install 'searchkit[ray]'"
# For the worker-kill test (tests/test_ray.py), inert unless set: each embedding actor
# appends its pid to this file once its encoder is loaded.
ACTOR_PIDS_ENV = "SEARCHKIT_TEST_ACTOR_PIDS"
FILES_PER_TASK = 16  # files a read/chunk task prepares
# Files an embedding call takes. Bigger than a read/chunk task's share: the encoder sorts a
# call's chunks by length, so a call of a few dozen chunks pads more than one of hundreds.
FILES_PER_EMBED = 64


def import_ray():
    try:  # lazy: Ray is an optional extra, loaded only for --ray
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise BadInput(f"--ray needs Ray, which is not installed here: {INSTALL_HINT}") from None
    return ray


@dataclass(frozen=True)
class RayOptions:
    """`address`: "local" starts a Ray cluster on this machine for the run; anything else is
    given to `ray.init(address=...)` ("auto", "ray://host:10001"). `workers`: embedding
    actors (default: `default_workers`). `gpus_per_worker` may be fractional."""

    address: str = "local"
    workers: int | None = None
    gpus_per_worker: float = 0.0

    def __post_init__(self):
        if self.workers is not None and (isinstance(self.workers, bool) or not isinstance(self.workers, int)
                                         or self.workers < 1):
            raise bad_value("workers", self.workers, "must be a whole number from 1 up")
        gpus = self.gpus_per_worker
        if isinstance(gpus, bool) or not isinstance(gpus, (int, float)) or not 0 <= gpus <= 64:
            raise bad_value("gpus_per_worker", gpus, "must be a number from 0 to 64")
        if not isinstance(self.address, str) or not self.address.strip():
            raise bad_value("ray_address", self.address, "expected 'local', 'auto' or a cluster address")


MAX_DEFAULT_WORKERS = 8  # one encoder in memory per actor
MIN_TASK_CPUS = 0.25  # the least an actor or a read/chunk task asks for


def default_workers(cluster_cpus: float, cluster_gpus: float, gpus_per_worker: float) -> int:
    """Embedding actors when --workers is not given: as many as the cluster's GPUs hold at
    `gpus_per_worker` each; on CPUs one per CPU (up to 8), each running its own batches on
    a thread or two. Whole actors in parallel beat one actor's threads: on 2 CPUs two
    one-thread actors ingested SciFact in 1.00x a local ingest's time, one two-thread
    actor in 1.20x (bench/RESULTS.md)."""
    if gpus_per_worker:
        return max(1, int(cluster_gpus // gpus_per_worker))
    return max(1, min(MAX_DEFAULT_WORKERS, int(cluster_cpus)))


def check_pool(workers: int, cpus: float, cluster_cpus: float, gpus: float, cluster_gpus: float) -> None:
    """BadInput when the cluster cannot hold the pool: Ray would wait for it forever."""
    if gpus and workers * gpus > cluster_gpus + 1e-9:
        raise BadInput(f"--workers {workers} --gpus-per-worker {gpus:g}: the Ray cluster has "
                       f"{cluster_gpus:g} GPU{'s' * (cluster_gpus != 1)}")
    if workers * cpus + MIN_TASK_CPUS > cluster_cpus + 1e-9:  # and a read/chunk task must fit
        raise BadInput(f"--workers {workers}: a Ray cluster of {cluster_cpus:g} CPU{'s' * (cluster_cpus != 1)} "
                       f"holds at most {max(1, int((cluster_cpus - MIN_TASK_CPUS) / cpus))} embedding actors")


def actor_threads(reserved: float, node_cpus: int, workers: int, nodes: int) -> int:
    """Torch threads for an embedding actor: its node's CPUs shared among the actors it may
    hold, not just the CPUs it reserved. The reservation keeps a CPU free for the read/chunk
    tasks, which are light (tokenizing) and mostly done while the encoder runs; holding the
    encoder to the reserved share instead left one of two cores idle (1.9x a local ingest)."""
    per_node = -(-workers // max(1, nodes))  # ceil: actors a node may hold
    return max(1, int(reserved), node_cpus // per_node)


def actor_cpus(cluster_cpus: float, workers: int) -> float:
    """CPUs each embedding actor reserves: together at most all but one of the cluster's,
    so the read/chunk tasks always find a CPU. Actors that take every CPU starve them and
    the job never ends (two one-CPU actors on two CPUs hung for over 6 minutes)."""
    if cluster_cpus <= 1:
        return MIN_TASK_CPUS
    return max(MIN_TASK_CPUS, min(8.0, (cluster_cpus - 1) / workers))


@contextlib.contextmanager
def connected(options: RayOptions):
    """Ray, initialised for the run: a local cluster started (and stopped after) for
    "local", the given cluster joined otherwise; one already initialised is used as it is."""
    ray = import_ray()
    quiet_ray_logs()
    if ray.is_initialized():
        yield ray
        return
    # Ray's C++ core logs notices to stderr at error level (an actor's constructor
    # arguments held in the object store, say); the run's own errors come back as exceptions.
    os.environ.setdefault("RAY_BACKEND_LOG_LEVEL", "fatal")
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    if options.address == "local":
        ray.init(**kwargs)
    else:
        try:
            ray.init(address=options.address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise BadInput(f"--ray {options.address}: cannot join that Ray cluster ({str(exc).splitlines()[0]})") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def quiet_ray_logs() -> None:
    """Ray Data's progress notes stay out of the CLI's stderr, where our progress bar is."""
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(logging.ERROR)


# -- the stages, as Ray runs them ------------------------------------------------------------


@functools.lru_cache(maxsize=4)
def _tokenizer(model: str):
    from .encoder import load_tokenizer  # lazy: torch stays out of `import searchkit.index`

    return load_tokenizer(resolve_model(model))


def prepare_files(batch: dict, model: str, chunk_tokens: int | None, chunk_overlap: int | None,
                  max_bytes: int) -> dict:
    """Ray task: read and chunk a batch of files (`state` rows). One row out per file in:
    its prepared form as JSON ("" when skipped) and the skip reason ("" when prepared)."""
    prepared_out, skipped_out = [], []
    for state_json in batch["state"]:
        state = _state(json.loads(str(state_json)))
        prepared, skipped = prepare([state], _tokenizer(model), chunk_tokens, chunk_overlap, max_bytes)
        prepared_out.append(json.dumps(_prepared_dict(prepared[0])) if prepared else "")
        skipped_out.append(skipped[0][1] if skipped else "")
    return {"state": batch["state"], "prepared": np.array(prepared_out, dtype=object),
            "skipped": np.array(skipped_out, dtype=object)}


class EmbedFiles:
    """Ray actor: the encoder, loaded once; embeds the chunks of batches of prepared files."""

    def __init__(self, encoder_args: dict, weights_sha256: str, threads: int):
        import torch  # lazy: only a Ray actor loads torch and the encoder, not the driver's import

        from .encoder import Encoder

        torch.set_num_threads(max(1, threads))
        self.encoder = Encoder(encoder_args.pop("model"), **encoder_args)
        if self.encoder.weights_sha256 != weights_sha256:  # another node, another file
            raise ModelMismatch(f"{self.encoder.name}: a Ray worker found other weights than the driver's "
                                f"({self.encoder.weights_sha256[:12]}… vs {weights_sha256[:12]}…)")
        if os.environ.get(ACTOR_PIDS_ENV):
            with open(os.environ[ACTOR_PIDS_ENV], "a") as fh:
                fh.write(f"{os.getpid()}\n")

    def __call__(self, batch: dict) -> dict:
        texts, counts = [], []
        for prepared_json in batch["prepared"]:
            chunks = [c["text"] for doc in json.loads(prepared_json)["chunks"] for c in doc] if prepared_json else []
            texts += chunks
            counts.append(len(chunks))
        vectors = self.encoder.encode_documents(texts) if texts else np.zeros((0, self.encoder.dim), np.float32)
        parts = np.split(vectors, np.cumsum(counts)[:-1]) if counts else []
        return {**batch, "vectors": np.array([np.ascontiguousarray(p, np.float32).tobytes() for p in parts],
                                             dtype=object)}


def _state_dict(state: FileState) -> dict:
    return {**asdict(state), "path": str(state.path)}


def _state(d: dict) -> FileState:
    return FileState(**{**d, "path": Path(d["path"])})


def _prepared_dict(f: PreparedFile) -> dict:
    return {"reader": f.reader, "documents": f.documents, "chunks": f.chunks, "problems": f.problems}


# -- the driver's side -------------------------------------------------------------------------


def pipeline(ray, options: RayOptions, encoder, max_bytes: int):
    """An ingest pipeline (`ingest.Pipeline`) whose prepare and embed stages run on Ray."""

    def run(todo: list[FileState], settings) -> Iterator[tuple[Batch, np.ndarray | None]]:
        if not todo:
            return
        import ray.data  # lazy: as in import_ray
        from ray.data import ActorPoolStrategy

        ctx = ray.data.DataContext.get_current()
        ctx.execution_options.preserve_order = True  # the scan's order: chunk ids as a local ingest's
        ctx.enable_progress_bars = False  # the driver's own progress bar reports
        ctx.print_on_execution_start = False
        resources = ray.cluster_resources()
        cluster_cpus, cluster_gpus = float(resources.get("CPU", 1)), float(resources.get("GPU", 0))
        workers = options.workers or default_workers(cluster_cpus, cluster_gpus, options.gpus_per_worker)
        cpus = actor_cpus(cluster_cpus, workers)
        check_pool(workers, cpus, cluster_cpus, options.gpus_per_worker, cluster_gpus)
        nodes = [n for n in ray.nodes() if n.get("Alive") and n.get("Resources", {}).get("CPU")]
        node_cpus = min((int(n["Resources"]["CPU"]) for n in nodes), default=1)
        threads = actor_threads(cpus, node_cpus, workers, len(nodes))
        # A read/chunk task asks for what an actor asks for when the actors leave that much
        # free: Ray then fuses the two stages into the actors, which read, chunk and embed
        # in turn instead of a task's tokenizer fighting the encoder's threads for the cores
        # (on 2 CPUs, 1 actor: 1.22x a local ingest unfused). It never asks for more than
        # the actors leave free, so it can always be scheduled.
        prepare_cpus = max(MIN_TASK_CPUS, min(cpus, cluster_cpus - workers * cpus))
        encoder_args = {"model": encoder.name, "device": "cuda" if options.gpus_per_worker else "cpu",
                        "dtype": encoder.dtype_name if not options.gpus_per_worker else "auto",
                        "pooling": encoder.pooling, "layer": encoder.layer, "normalize": encoder.normalize,
                        "max_length": encoder.max_length, "query_prompt": encoder.query_prompt,
                        "document_prompt": encoder.document_prompt, "include_prompt": encoder.include_prompt,
                        "dim": encoder.truncate_dim}
        states = [{"state": json.dumps(_state_dict(s))} for s in todo]
        ds = ray.data.from_items(states, override_num_blocks=max(1, min(len(states) // FILES_PER_TASK, 200)))
        ds = ds.map_batches(prepare_files, batch_size=FILES_PER_TASK, num_cpus=prepare_cpus,
                            fn_kwargs={"model": encoder.name, "chunk_tokens": settings.chunk_tokens,
                                       "chunk_overlap": settings.chunk_overlap, "max_bytes": max_bytes})
        ds = ds.map_batches(EmbedFiles, batch_size=FILES_PER_EMBED, compute=ActorPoolStrategy(size=workers),
                            num_cpus=cpus, num_gpus=options.gpus_per_worker or None,
                            fn_constructor_kwargs={"encoder_args": encoder_args,
                                                   "weights_sha256": encoder.weights_sha256,
                                                   "threads": threads})
        done = 0
        for row in ds.iter_rows():
            state = _state(json.loads(row["state"]))
            done += state.size
            batch = Batch([], [], [], done)
            if row["prepared"]:
                d = json.loads(row["prepared"])
                batch.files.append(PreparedFile(state, d["reader"], d["documents"], d["chunks"], d["problems"]))
                vectors = np.frombuffer(row["vectors"], np.float32).reshape(-1, encoder.dim)
            else:
                batch.skipped.append((str(state.path), row["skipped"]))
                if state.old_id is not None and content_reason(row["skipped"]):
                    batch.emptied.append(state.old_id)
                vectors = None
            yield batch, vectors

    return run

