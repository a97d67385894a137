"""sentence-transformers' CPU backends, as users who want speed set them up: ONNX fp32,
ONNX dynamic int8 and OpenVINO (its default precision, and f32), each exported here from the
packaged model folder.

They need `sentence-transformers[onnx]` (and openvino + optimum-intel for OpenVINO, which
are optional: the `peers-openvino` extra), which pins transformers 4.x: it lives in its own
environment (`make bench-venv`, `.venv-bench`) so that the test environment keeps the
transformers the parity tests compare against. Without it the benches run the torch peer
alone and say so.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

INSTALL_HINT = "make bench-venv, then run the bench with .venv-bench/bin/python"


def missing() -> str | None:
    """Why the ONNX backends cannot run here, or None when they can."""
    try:
        import onnxruntime  # noqa: F401
        import optimum.onnxruntime  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed ({INSTALL_HINT})"
    return None


def openvino_missing() -> str | None:
    """Why the OpenVINO backend cannot run here, or None when it can. It is optional: on
    2026-12-06 pip could not resolve `sentence-transformers[openvino]`, though
    `pip install openvino optimum-intel` into the bench venv worked the same day."""
    try:
        import openvino  # noqa: F401
        import optimum.intel  # noqa: F401
    except ImportError as exc:
        return f"{exc.name} is not installed"
    return None


def int8_config() -> str:
    """The quantisation preset of `export_dynamic_quantized_onnx_model` that fits this CPU:
    the one a user of this machine would pick (VNNI when the CPU has it)."""
    from searchkit.cpu_info import cpu_flags

    flags = cpu_flags()
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    return "avx512" if "avx512f" in flags else "avx2"


def load(model_dir: Path, workdir: Path) -> dict:
    """{label: SentenceTransformer} for each backend, exported into a copy of `model_dir`
    under `workdir` (the packaged folder stays as installed)."""
    from sentence_transformers import SentenceTransformer, export_dynamic_quantized_onnx_model

    folder = workdir / "peer-model"
    if not folder.exists():
        shutil.copytree(model_dir, folder)
    onnx = SentenceTransformer(str(folder), device="cpu", backend="onnx")
    onnx.save_pretrained(str(folder))  # writes onnx/model.onnx, which the int8 export reads
    config = int8_config()
    export_dynamic_quantized_onnx_model(onnx, config, str(folder))
    int8 = SentenceTransformer(str(folder), device="cpu", backend="onnx",
                               model_kwargs={"file_name": f"onnx/model_qint8_{config}.onnx"})
    peers = {"ST onnx fp32": onnx, f"ST onnx int8 ({config})": int8}
    why_not = openvino_missing()
    if why_not is None:
        # As a user gets it, OpenVINO's CPU plugin picks its own precision: bf16 where the
        # CPU has AVX-512 BF16 (so its "fp32" model ran bf16 here). Both runs are labelled
        # with the precision the compiled model reports; the second asks for f32.
        default = SentenceTransformer(str(folder), device="cpu", backend="openvino")
        default.save_pretrained(str(folder))  # the IR, so that the second load does not export again
        f32 = SentenceTransformer(str(folder), device="cpu", backend="openvino",
                                  model_kwargs={"ov_config": {"INFERENCE_PRECISION_HINT": "f32"}})
        peers[f"ST openvino, default ({openvino_precision(default)})"] = default
        peers[f"ST openvino, f32 hint ({openvino_precision(f32)})"] = f32
    print(f"peers: {', '.join(peers)} exported into {folder} (int8 preset {config})"
          + (f"; OpenVINO not run: {why_not}" if why_not else ""), file=sys.stderr)
    return peers


def openvino_precision(model) -> str:
    """The precision OpenVINO compiled a sentence-transformers model to run in ("bf16", "f32")."""
    try:
        return model[0].auto_model.request.get_property("INFERENCE_PRECISION_HINT").get_type_name()
    except Exception as exc:  # an optimum-intel that keeps the compiled model elsewhere
        return f"precision unknown: {type(exc).__name__}"
