"""Face detectors: SCRFD (insightface ONNX) and YuNet (cv2.FaceDetectorYN).

Both return :class:`Face` objects with 5 landmarks in image coordinates,
ordered primary-first (largest and most central face first).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.config import DetectionConfig, RuntimeConfig
from edge.vision.session import create_session
from edge.vision.types import Face
from models.pack import ModelSpec


def order_primary_first(faces: list[Face], image_shape: tuple[int, ...]) -> list[Face]:
    """insightface's ``max_num`` metric: area minus twice the squared distance
    from the image centre, so the largest, most central face comes first."""
    cy, cx = image_shape[0] / 2, image_shape[1] / 2

    def key(face: Face) -> float:
        fx = (face.bbox[0] + face.bbox[2]) / 2
        fy = (face.bbox[1] + face.bbox[3]) / 2
        return face.area - 2.0 * float((fx - cx) ** 2 + (fy - cy) ** 2)

    return sorted(faces, key=key, reverse=True)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> list[int]:
    order = scores.argsort()[::-1]
    areas = (boxes[:, 2] - boxes[:, 0] + 1) * (boxes[:, 3] - boxes[:, 1] + 1)
    keep: list[int] = []
    while order.size:
        i = int(order[0])
        keep.append(i)
        xx1 = np.maximum(boxes[i, 0], boxes[order[1:], 0])
        yy1 = np.maximum(boxes[i, 1], boxes[order[1:], 1])
        xx2 = np.minimum(boxes[i, 2], boxes[order[1:], 2])
        yy2 = np.minimum(boxes[i, 3], boxes[order[1:], 3])
        inter = np.maximum(0.0, xx2 - xx1 + 1) * np.maximum(0.0, yy2 - yy1 + 1)
        iou = inter / (areas[i] + areas[order[1:]] - inter)
        order = order[1:][iou <= iou_threshold]
    return keep


class SCRFDDetector:
    """SCRFD with keypoints; output layout read from the session (3 strides,
    2 anchors per cell; scores, boxes, keypoints per stride)."""

    strides = (8, 16, 32)
    num_anchors = 2

    def __init__(self, path: Path, spec: ModelSpec, runtime: RuntimeConfig) -> None:
        self.spec = spec
        self.session = create_session(path, runtime)
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        if len(self.output_names) != 9:
            found = len(self.output_names)
            raise ValueError(f"{path.name}: SCRFD with keypoints has 9 outputs, found {found}")
        self.input_size = 640
        self.score_threshold = 0.5
        self.nms_threshold = 0.4
        self.max_faces = 32
        self._anchor_cache: dict[tuple[int, int, int], np.ndarray] = {}

    def prepare(self, cfg: DetectionConfig) -> None:
        self.input_size = cfg.input_size
        self.score_threshold = cfg.score_threshold
        self.nms_threshold = cfg.nms_threshold
        self.max_faces = cfg.max_faces

    def _letterbox(self, image: np.ndarray) -> tuple[np.ndarray, float]:
        size = self.input_size
        scale = min(size / image.shape[0], size / image.shape[1])
        new_w, new_h = round(image.shape[1] * scale), round(image.shape[0] * scale)
        canvas = np.zeros((size, size, 3), dtype=np.uint8)
        canvas[:new_h, :new_w] = cv2.resize(image, (new_w, new_h))
        return canvas, scale

    def _blob(self, canvas: np.ndarray) -> np.ndarray:
        return cv2.dnn.blobFromImage(
            canvas, 1.0 / self.spec.std, (canvas.shape[1], canvas.shape[0]),
            (self.spec.mean,) * 3, swapRB=self.spec.color == "RGB",
        )

    def _anchors(self, height: int, width: int, stride: int) -> np.ndarray:
        key = (height, width, stride)
        if key not in self._anchor_cache:
            ys, xs = np.mgrid[:height, :width]
            grid = np.stack([xs, ys], axis=-1).astype(np.float32)
            centers = (grid * stride).reshape(-1, 2)
            self._anchor_cache[key] = np.repeat(centers, self.num_anchors, axis=0)
        return self._anchor_cache[key]

    def _decode(self, outputs: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        boxes, scores, kps = [], [], []
        for i, stride in enumerate(self.strides):
            s = outputs[i].reshape(-1)
            d = outputs[i + 3].reshape(-1, 4) * stride
            k = outputs[i + 6].reshape(-1, 10) * stride
            side = self.input_size // stride
            centers = self._anchors(side, side, stride)
            keep = np.where(s >= self.score_threshold)[0]
            c = centers[keep]
            boxes.append(np.hstack([c - d[keep, :2], c + d[keep, 2:]]))
            kps.append(k[keep].reshape(-1, 5, 2) + c[:, None, :])
            scores.append(s[keep])
        return np.vstack(boxes), np.concatenate(scores), np.vstack(kps)

    def detect(self, image: np.ndarray) -> list[Face]:
        canvas, scale = self._letterbox(image)
        outputs = self.session.run(self.output_names, {self.input_name: self._blob(canvas)})
        boxes, scores, kps = self._decode(outputs)
        keep = nms(boxes, scores, self.nms_threshold)[: self.max_faces]
        faces = [
            Face(
                bbox=(boxes[i] / scale).astype(np.float32),
                score=float(scores[i]),
                landmarks=(kps[i] / scale).astype(np.float32),
            )
            for i in keep
        ]
        return order_primary_first(faces, image.shape)


class YuNetDetector:
    """OpenCV's YuNet through ``cv2.FaceDetectorYN`` (input size set per frame)."""

    def __init__(self, path: Path, spec: ModelSpec, runtime: RuntimeConfig) -> None:
        del runtime  # OpenCV DNN runs YuNet; it has no ONNX Runtime session
        self.spec = spec
        self.detector = cv2.FaceDetectorYN.create(str(path), "", tuple(spec.input_size), 0.5, 0.4, 32)
        self.max_faces = 32

    def prepare(self, cfg: DetectionConfig) -> None:
        self.detector.setScoreThreshold(cfg.score_threshold)
        self.detector.setNMSThreshold(cfg.nms_threshold)
        self.detector.setTopK(max(cfg.max_faces, 1) * 10)
        self.max_faces = cfg.max_faces

    def detect(self, image: np.ndarray) -> list[Face]:
        self.detector.setInputSize((image.shape[1], image.shape[0]))
        _, rows = self.detector.detect(image)
        faces = []
        for row in rows if rows is not None else []:
            x, y, w, h = row[:4]
            faces.append(Face(
                bbox=np.array([x, y, x + w, y + h], dtype=np.float32),
                score=float(row[14]),
                landmarks=row[4:14].reshape(5, 2).astype(np.float32),
            ))
        return order_primary_first(faces, image.shape)[: self.max_faces]


Detector = SCRFDDetector | YuNetDetector
DETECTORS: dict[str, type[Detector]] = {"scrfd": SCRFDDetector, "yunet": YuNetDetector}
