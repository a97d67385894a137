"""Which CPU dtype is fastest on this machine, measured rather than read off CPU flags.

The same flag (AVX-512 BF16) came with bf16 at 2.2x fp32 on one host and slower than fp32
on another, so `--dtype fastest` times a few batches in each CPU dtype, checks that each
one's vectors stay within `MIN_COSINE` of fp32's, and picks the fastest that does. The
figures are kept per CPU model, torch version, thread count and model in a small JSON file
(`cache_file()`), so a machine pays the few seconds once. fp32 stays the default (`auto`):
it is the parity reference; `fastest` is the opt-in.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import asdict, dataclass
from pathlib import Path

CANDIDATES = ("fp32", "bf16", "int8")
MIN_COSINE = 0.995  # lowest cosine to fp32's vector, over the probe texts
PROBE_PASSES = 3  # timed passes per dtype; the fastest counts
CACHE_ENV = "SEARCHKIT_CACHE_DIR"


@dataclass(frozen=True)
class DtypeSpeed:
    dtype: str
    tokens_per_s: float
    min_cosine: float  # to fp32's vectors of the same texts

    @property
    def good_enough(self) -> bool:
        return self.min_cosine >= MIN_COSINE


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def cache_file() -> Path:
    base = os.environ.get(CACHE_ENV) or Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "searchkit"
    return Path(base) / "cpu-dtype-speed.json"


def host_key(model: str) -> str:
    import torch

    return f"{cpu_model()} | torch {torch.__version__} | {torch.get_num_threads()} threads | {model}"


def probe_texts() -> list[str]:
    """Texts of everyday lengths (parity's, a few to a few hundred tokens), 32 of them."""
    from .parity import DEFAULT_TEXTS

    return [DEFAULT_TEXTS[i % len(DEFAULT_TEXTS)] for i in range(32)]


def measure(model: str, texts: list[str] | None = None, passes: int = PROBE_PASSES) -> list[DtypeSpeed]:
    """Tokens/s and cosine to fp32 of each CPU dtype on `texts`, the dtypes taking turns."""
    from .encoder import Encoder

    texts = texts or probe_texts()
    encoders = {d: Encoder(model, device="cpu", dtype=d) for d in CANDIDATES}
    tokens = sum(len(ids) for ids in encoders["fp32"].tokenize(texts))
    vectors = {d: enc.encode(texts) for d, enc in encoders.items()}  # also the warm-up
    best = dict.fromkeys(CANDIDATES, float("inf"))
    for _ in range(passes):
        for d, enc in encoders.items():
            t = time.perf_counter()
            enc.encode(texts)
            best[d] = min(best[d], time.perf_counter() - t)
    return [DtypeSpeed(d, tokens / best[d], float((vectors[d] * vectors["fp32"]).sum(1).min())) for d in CANDIDATES]


def _read_cache() -> dict:
    try:
        return json.loads(cache_file().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}  # none yet, or unreadable: measure again


def is_cached(model: str) -> bool:
    return host_key(model) in _read_cache()


def measured(model: str, refresh: bool = False) -> list[DtypeSpeed]:
    """This host's figures for `model`, from the cache or measured now (and then cached)."""
    key = host_key(model)
    cache = _read_cache()
    if not refresh and key in cache:
        try:
            return [DtypeSpeed(**row) for row in cache[key]]
        except TypeError:
            pass  # written by another version: measure again
    speeds = measure(model)
    cache[key] = [asdict(s) for s in speeds]
    path = cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(cache, indent=1), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: the figures serve this process only
    return speeds


def fastest(speeds: list[DtypeSpeed]) -> str:
    """The fastest dtype whose vectors stay within MIN_COSINE of fp32's (fp32 on a tie)."""
    ok = [s for s in speeds if s.good_enough or s.dtype == "fp32"]
    return max(ok, key=lambda s: (s.tokens_per_s, s.dtype == "fp32")).dtype
