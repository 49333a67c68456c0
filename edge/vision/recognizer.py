"""ArcFace-style recognizer: aligned 112x112 crops in, L2-normalised embeddings out."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.config import RuntimeConfig
from edge.core.align import arcface_transform
from edge.vision.session import create_session
from models.pack import ModelSpec


def align_face(image: np.ndarray, landmarks: np.ndarray, size: int = 112) -> np.ndarray:
    matrix = arcface_transform(landmarks, size)
    return cv2.warpAffine(image, matrix, (size, size), borderValue=0.0)


class ArcFaceRecognizer:
    """Batched embedding; input spec (size, batch axis) read from the session."""

    def __init__(self, path: Path, spec: ModelSpec, runtime: RuntimeConfig) -> None:
        self.spec = spec
        self.session = create_session(path, runtime)
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.output_name = self.session.get_outputs()[0].name
        self.dynamic_batch = not isinstance(inp.shape[0], int) or inp.shape[0] < 1
        self.input_size = (int(inp.shape[3]), int(inp.shape[2]))
        self.batch_size = 16
        self._check_signature(path)

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
