"""Passive liveness: MiniFASNet V2 (crop 2.7x) + V1SE (crop 4.0x) ensemble.

Crop rules from shared/models/MANIFEST.md: a square crop of ``crop_scale``
times the detector box, centred, shrunk if it cannot fit, and shifted to stay
inside the frame; resized to 80x80; raw BGR 0..255; softmax; the manifest's
``live_index`` is the live class.  The ensemble score is the mean.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from edge.config import RuntimeConfig
from edge.vision.session import create_session
from edge.vision.types import Face
from models.pack import ModelSpec


def square_crop_box(bbox: np.ndarray, scale: float, width: int, height: int) -> tuple[int, int, int, int]:
    """(x1, y1, x2, y2) of a square ``scale`` times the box's larger side, inside the frame."""
    bw, bh = float(bbox[2] - bbox[0]), float(bbox[3] - bbox[1])
    side = max(bw, bh, 1.0)
    scale = min(scale, (height - 1) / side, (width - 1) / side)
    crop = side * scale
    cx, cy = float(bbox[0]) + bw / 2, float(bbox[1]) + bh / 2
    x1 = min(max(cx - crop / 2, 0.0), width - 1 - crop)
    y1 = min(max(cy - crop / 2, 0.0), height - 1 - crop)
    return round(x1), round(y1), round(x1 + crop), round(y1 + crop)


def softmax(logits: np.ndarray) -> npt.NDArray[np.float64]:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    e = np.exp(shifted)
    return np.asarray(e / e.sum(axis=-1, keepdims=True), dtype=np.float64)


class MiniFASNet:
    def __init__(self, path: Path, spec: ModelSpec, runtime: RuntimeConfig) -> None:
        self.spec = spec
        self.session = create_session(path, runtime)
        self.input_name = self.session.get_inputs()[0].name

    def live_probability(self, image: np.ndarray, face: Face) -> float:
        x1, y1, x2, y2 = square_crop_box(face.bbox, self.spec.crop_scale, image.shape[1], image.shape[0])
        crop = image[y1 : y2 + 1, x1 : x2 + 1]
        blob = cv2.dnn.blobFromImage(
            crop, 1.0 / self.spec.std, tuple(self.spec.input_size), (self.spec.mean,) * 3,
            swapRB=self.spec.color == "RGB",
        )
        logits = self.session.run(None, {self.input_name: blob})[0]
        return float(softmax(logits.reshape(-1))[self.spec.live_index])


class LivenessEnsemble:
    def __init__(self, models: list[MiniFASNet]) -> None:
        self.models = models

    def score(self, image: np.ndarray, face: Face) -> float:
        return float(np.mean([m.live_probability(image, face) for m in self.models]))

    def scores(self, image: np.ndarray, face: Face) -> list[float]:
        return [m.live_probability(image, face) for m in self.models]
