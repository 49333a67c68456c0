"""Data passed between the face engine's stages."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge.core.quality import FaceQuality

__all__ = ["Face", "FaceObservation", "FaceQuality"]


@dataclass(frozen=True)
class Face:
    bbox: np.ndarray  # (4,) float32: x1, y1, x2, y2 in image pixels
    score: float
    landmarks: np.ndarray  # (5, 2) float32: eyes, nose, mouth corners as seen in the image

    @property
    def area(self) -> float:
        return float(max(self.bbox[2] - self.bbox[0], 0) * max(self.bbox[3] - self.bbox[1], 0))


@dataclass(frozen=True)
class FaceObservation:
    face: Face
    aligned: np.ndarray  # (112, 112, 3) uint8 BGR, ArcFace template
    quality: FaceQuality
    embedding: np.ndarray | None  # (d,) float32, L2-normalised
