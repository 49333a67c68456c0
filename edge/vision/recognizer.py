"""ArcFace-style recognizers: aligned 112x112 crops in, L2-normalised embeddings out.

:class:`ArcFaceRecognizer` runs any ONNX file as it is; :class:`SFaceRecognizer` runs
OpenCV Zoo's SFace, whose shipped graph ONNX Runtime refuses to run until it is repaired
in memory (after its digest is checked).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from edge.config import RuntimeConfig
from edge.core.align import arcface_transform
from edge.core.errors import EngineError
from edge.vision.session import create_session
from models.pack import ModelSpec


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    matrix = arcface_transform(landmarks, size)
    return cv2.warpAffine(image, matrix, (size, size), borderValue=0.0)


class ArcFaceRecognizer:
    """Batched embedding; input spec (size, batch axis) read from the session."""

    def __init__(self, path: Path, spec: ModelSpec, runtime: RuntimeConfig) -> None:
        self.spec = spec
        self.session = self.open_session(path, runtime)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = self.session.get_outputs()[0].name
        self.dynamic_batch = not isinstance(inp.shape[0], int) or inp.shape[0] < 1
        self.input_size = (int(inp.shape[3]), int(inp.shape[2]))
        self.batch_size = 16
        self._check_signature(path)

    def open_session(self, path: Path, runtime: RuntimeConfig) -> ort.InferenceSession:
        return create_session(path, runtime)

    def _check_signature(self, path: Path) -> None:
        if self.input_size != tuple(self.spec.input_size):
            raise ValueError(f"{path.name}: input {self.input_size}, manifest says {self.spec.input_size}")
        probe = self.embed([np.zeros((*self.input_size[::-1], 3), np.uint8)])
        if probe.shape[1] != self.spec.embedding_size:
            raise ValueError(
                f"{path.name}: embedding size {probe.shape[1]}, manifest says {self.spec.embedding_size}"
            )

    def prepare(self, batch_size: int) -> None:
        self.batch_size = batch_size

    def _blob(self, crops: list[np.ndarray]) -> np.ndarray:
        return cv2.dnn.blobFromImages(
            crops, 1.0 / self.spec.std, self.input_size, (self.spec.mean,) * 3,
            swapRB=self.spec.color == "RGB",
        )

    def embed(self, crops: list[np.ndarray]) -> np.ndarray:
        if not crops:
            return np.zeros((0, self.spec.embedding_size), dtype=np.float32)
        step = self.batch_size if self.dynamic_batch else 1
        chunks = [
            self.session.run([self.output_name], {self.input_name: self._blob(crops[i : i + step])})[0]
            for i in range(0, len(crops), step)
        ]
        raw = np.vstack(chunks).reshape(len(crops), -1).astype(np.float32)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        return np.asarray(raw / np.maximum(norms, 1e-12), dtype=np.float32)


# --- SFace -----------------------------------------------------------------------------------


def dequantize_blocks(quantized: np.ndarray, scale: np.ndarray, zero_point: np.ndarray,
                      axis: int, block: int) -> np.ndarray:
    """ONNX DequantizeLinear with block quantisation: ``(x - zero_point) * scale``, each scale
    and zero point repeated ``block`` times along ``axis`` (blocked form, opset 21)."""
    def spread(values: np.ndarray) -> np.ndarray:
        if block <= 0:  # per-axis (or per-tensor when a scalar)
            shape = [1] * quantized.ndim
            if values.ndim:
                shape[axis] = -1
            return values.reshape(shape)
        return np.repeat(values, block, axis=axis).take(range(quantized.shape[axis]), axis=axis)

    centred = quantized.astype(np.int32) - spread(zero_point).astype(np.int32)
    return np.asarray(centred.astype(np.float32) * spread(scale).astype(np.float32), dtype=np.float32)


def repair_sface_graph(model_bytes: bytes) -> bytes:
    """The SFace graph ONNX Runtime accepts, with the same outputs (cosine 1.0 with OpenCV's
    ``FaceRecognizerSF``; shared/models/MANIFEST.md):

    * graph inputs that no node reads are dropped: the shipped file still declares 29 float
      weights, left behind when its weights were quantised, as required inputs, so ONNX
      Runtime loads it but refuses every run ("Required inputs ... are missing");
    * inputs that are initializers become plain constants;
    * the block-quantised int8 weights are dequantised to float32 once, here, instead of on
      every call (about a third faster; outputs equal to within 2e-6).
    """
    import onnx  # noqa: PLC0415  # only this model needs it, and only at load
    from onnx import helper, numpy_helper  # noqa: PLC0415

    model = onnx.load_from_string(model_bytes)
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    nodes, constants, spent = [], [], set()
    for node in graph.node:
        if node.op_type == "DequantizeLinear" and all(name in initializers for name in node.input):
            attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
            quantized, scale, *zero = (numpy_helper.to_array(initializers[name]) for name in node.input)
            zero_point = zero[0] if zero else np.zeros_like(scale, dtype=quantized.dtype)
            weights = dequantize_blocks(quantized, scale, zero_point, axis=int(attrs.get("axis", 1)),
                                        block=int(attrs.get("block_size", 0)))
            constants.append(numpy_helper.from_array(weights, node.output[0]))
            spent.update(node.input)
        else:
            nodes.append(node)
    read = {name for node in nodes for name in node.input}
    kept_initializers = [i for i in graph.initializer if i.name not in spent or i.name in read]
    inputs = [i for i in graph.input if i.name in read and i.name not in initializers]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.initializer[:]
    graph.initializer.extend(kept_initializers + constants)
    del graph.input[:]
    graph.input.extend(inputs)
    return bytes(model.SerializeToString())


class SFaceRecognizer(ArcFaceRecognizer):
    """OpenCV Zoo SFace (Apache-2.0, 128-d, fixed batch of 1): the aligned crop as RGB 0..255
    (the graph scales it itself), so the manifest says ``color = "RGB"``, mean 0, std 1.

    The file is read once; its sha256 must equal the manifest's before the graph is repaired
    (:func:`repair_sface_graph`) and handed to ONNX Runtime, so no unverified bytes are ever
    patched or run, whatever happens to the file after the pack's digest check.
    """

    def open_session(self, path: Path, runtime: RuntimeConfig) -> ort.InferenceSession:
        try:
            data = path.read_bytes()
        except OSError as err:
            raise EngineError(f"cannot read {path}: {err.strerror}") from err
        digest = hashlib.sha256(data).hexdigest()
        if not self.spec.sha256 or digest != self.spec.sha256:
            expected = self.spec.sha256 or "(none)"
            raise EngineError(f"{path.name}: sha256 {digest}, the manifest says {expected}; "
                              "the graph is repaired only for the file the manifest names")
        try:
            repaired = repair_sface_graph(data)
        except Exception as err:  # onnx raises its own errors for malformed protobufs
            raise EngineError(f"{path.name}: cannot repair the SFace graph: {err}") from err
        return create_session(path, runtime, repaired)


RECOGNIZERS: dict[str, type[ArcFaceRecognizer]] = {"arcface": ArcFaceRecognizer, "sface": SFaceRecognizer}
