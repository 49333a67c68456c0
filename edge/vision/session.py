"""ONNX Runtime sessions, configured deliberately.

Threads, graph optimisation and providers come from ``[runtime]``.  Asking for
the GPU when no GPU provider is available is an error, never a silent fallback
to the CPU (a frequent complaint about insightface, see peers.md).
"""

from __future__ import annotations

import logging
from pathlib import Path

import onnxruntime as ort

from edge.config import RuntimeConfig
from edge.core.errors import EngineError

log = logging.getLogger(__name__)

GPU_PROVIDERS = ("CUDAExecutionProvider", "ROCMExecutionProvider", "DmlExecutionProvider")
_OPT_LEVELS = {
    "disabled": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}


def select_providers(runtime: RuntimeConfig, available: list[str] | None = None) -> list[str]:
    available = available if available is not None else ort.get_available_providers()
    gpus = [p for p in GPU_PROVIDERS if p in available]
    if runtime.device == "gpu" and not gpus:
        raise EngineError(
            "runtime.device = 'gpu' but ONNX Runtime offers no GPU provider "
            f"(available: {', '.join(available)}); install onnxruntime-gpu or set device = 'cpu'"
        )
    if runtime.device == "cpu" or not gpus:
        return ["CPUExecutionProvider"]
    return [gpus[0], "CPUExecutionProvider"]


def session_options(runtime: RuntimeConfig) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = runtime.intra_op_threads
    opts.inter_op_num_threads = runtime.inter_op_threads
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = _OPT_LEVELS[runtime.graph_optimization]
    opts.log_severity_level = 3
    return opts


def create_session(path: Path, runtime: RuntimeConfig, model: bytes | None = None) -> ort.InferenceSession:
    """A session for the file at ``path``, or for ``model`` (the serialized graph read from
    ``path`` and changed in memory; ``path`` then only names it)."""
    providers = select_providers(runtime)
    options: list[dict[str, str]] = [{} for _ in providers]
    if providers[0] != "CPUExecutionProvider":
        options[0] = {"device_id": str(runtime.gpu_device_id)}
    try:
        session = ort.InferenceSession(
            str(path) if model is None else model, sess_options=session_options(runtime),
            providers=providers, provider_options=options,
        )
    except Exception as err:  # ORT raises its own untyped errors for bad files
        raise EngineError(f"ONNX Runtime cannot load {path}: {err}") from err
    used = session.get_providers()
    if runtime.device == "gpu" and used[0] == "CPUExecutionProvider":
        raise EngineError(f"{path.name}: GPU requested but the session fell back to the CPU")
    log.info("loaded %s on %s", path.name, used[0])
    return session
