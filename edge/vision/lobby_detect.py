"""SCRFD on a rectangular input for lobby frames.

The face engine letterboxes every image into a square (right for photos); a
16:9 camera frame then wastes 44 % of the detector's work on black padding.
SCRFD's input is dynamic in height and width (multiples of 32), so the lobby
resizes the frame's long side to ``lobby.detect_size`` and pads only up to the
next multiple of 32: 640x384 instead of 640x640 for 1080p, about 40 % less
detector time for the same faces (README "Lobby pipeline" has the numbers).
"""

from __future__ import annotations

import cv2
import numpy as np

from edge.vision.detector import SCRFDDetector, nms, order_primary_first
from edge.vision.types import Face

STRIDE_ALIGN = 32


def padded(length: int) -> int:
    return -(-length // STRIDE_ALIGN) * STRIDE_ALIGN


class RectSCRFD:
    """Shares the engine detector's ONNX session and thresholds; only the input shape differs."""

    def __init__(self, base: SCRFDDetector, long_side: int) -> None:
        self.base = base
        self.long_side = long_side
        self._anchors: dict[tuple[int, int, int], np.ndarray] = {}

    def _canvas(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        h, w = image.shape[:2]
        scale = self.long_side / max(h, w)
        new_w, new_h = max(1, round(w * scale)), max(1, round(h * scale))
        canvas = np.zeros((padded(new_h), padded(new_w), 3), dtype=np.uint8)
        canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        return canvas, scale

    def _centers(self, rows: int, cols: int, stride: int) -> np.ndarray:
        key = (rows, cols, stride)
        if key not in self._anchors:
            ys, xs = np.mgrid[:rows, :cols]
            grid = np.stack([xs, ys], axis=-1).astype(np.float32)
            centers = (grid * stride).reshape(-1, 2)
            self._anchors[key] = np.repeat(centers, self.base.num_anchors, axis=0)
        return self._anchors[key]

    def _decode(self, outputs: list[np.ndarray], shape: tuple[int, int]) -> tuple[np.ndarray, ...]:
        boxes, scores, kps = [], [], []
        for i, stride in enumerate(self.base.strides):
            s = outputs[i].reshape(-1)
            keep = np.where(s >= self.base.score_threshold)[0]
            c = self._centers(shape[0] // stride, shape[1] // stride, stride)[keep]
            d = outputs[i + 3].reshape(-1, 4)[keep] * stride
            k = outputs[i + 6].reshape(-1, 10)[keep] * stride
            boxes.append(np.hstack([c - d[:, :2], c + d[:, 2:]]))
            kps.append(k.reshape(-1, 5, 2) + c[:, None, :])
            scores.append(s[keep])
        return np.vstack(boxes), np.concatenate(scores), np.vstack(kps)

    def detect(self, image: np.ndarray) -> list[Face]:
        canvas, scale = self._canvas(image)
        spec = self.base.spec
        blob = cv2.dnn.blobFromImage(canvas, 1.0 / spec.std, (canvas.shape[1], canvas.shape[0]),
                                     (spec.mean,) * 3, swapRB=spec.color == "RGB")
        outputs = self.base.session.run(self.base.output_names, {self.base.input_name: blob})
        boxes, scores, kps = self._decode(outputs, canvas.shape[:2])
        keep = nms(boxes, scores, self.base.nms_threshold)[: self.base.max_faces]
        faces = [Face(bbox=(boxes[i] / scale).astype(np.float32), score=float(scores[i]),
                      landmarks=(kps[i] / scale).astype(np.float32)) for i in keep]
        return order_primary_first(faces, image.shape)
