"""FaceEngine: the pipeline object composing detector, aligner, recognizer and
liveness from one verified model pack (cf. insightface ``app/face_analysis.py``)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from edge.config import EdgeConfig
from edge.core.errors import EngineError
from edge.core.quality import FaceQuality, estimate_pose, interocular_distance
from edge.vision.detector import DETECTORS, SCRFDDetector, YuNetDetector
from edge.vision.liveness import LivenessEnsemble, MiniFASNet
from edge.vision.recognizer import RECOGNIZERS, ArcFaceRecognizer, align_face
from edge.vision.types import Face, FaceObservation
from models.pack import (
    DigestPins,
    ModelPack,
    load_pack,
    pin_new_digests,
    require_verified,
    resolve_models_dir,
)

log = logging.getLogger(__name__)


def blur_measure(aligned: np.ndarray) -> float:
    """Variance of the Laplacian of the grey aligned crop: low means blurry."""
    grey = cv2.cvtColor(aligned, cv2.COLOR_BGR2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def measure_quality(face: Face, aligned: np.ndarray) -> FaceQuality:
    yaw, pitch = estimate_pose(face.landmarks)
    return FaceQuality(
        det_score=face.score,
        interocular_px=interocular_distance(face.landmarks),
        blur=blur_measure(aligned),
        yaw_deg=yaw,
        pitch_deg=pitch,
    )


def pad_for_detection(image: np.ndarray) -> tuple[np.ndarray, int]:
    """A black border of half the larger side: gives SCRFD the context it needs
    around tight face crops (ID-card photos, 160x160 portraits)."""
    border = max(image.shape[:2]) // 2
    padded = cv2.copyMakeBorder(image, border, border, border, border, cv2.BORDER_CONSTANT, value=0)
    return padded, border


def shift_face(face: Face, offset: float) -> Face:
    return Face(bbox=face.bbox - offset, score=face.score, landmarks=face.landmarks - offset)


class FaceEngine:
    def __init__(
        self,
        pack: ModelPack,
        detector: SCRFDDetector | YuNetDetector,
        recognizer: ArcFaceRecognizer,
        liveness: LivenessEnsemble | None,
        cfg: EdgeConfig,
        *,
        verifiers: tuple[ArcFaceRecognizer, ...] = (),
    ) -> None:
        self.pack = pack
        self.detector = detector
        self.recognizer = recognizer
        self.live = liveness
        self.cfg = cfg
        # Further recognizers for the counter's 1:1 check only (edge.counter.matching).
        self.verifiers = verifiers
        detector.prepare(cfg.detection)
        for model in (recognizer, *verifiers):
            model.prepare(cfg.recognition.batch_size)

    @classmethod
    def from_config(
        cls, cfg: EdgeConfig, models_dir: Path | None = None, pins: DigestPins | None = None
    ) -> FaceEngine:
        pack = load_pack(cfg.models.pack)
        root = resolve_models_dir(pack, models_dir, cfg.models.dir)
        checks = require_verified(pack, root, pins)
        det_spec, rec_spec = pack.one("detector"), pack.one("recognizer")
        try:
            detector = DETECTORS[det_spec.kind](root / det_spec.file, det_spec, cfg.runtime)
            recognizer = RECOGNIZERS[rec_spec.kind](root / rec_spec.file, rec_spec, cfg.runtime)
            verifiers = tuple(RECOGNIZERS[spec.kind](root / spec.file, spec, cfg.runtime)
                              for spec in pack.by_role("verifier"))
            live_models = [MiniFASNet(root / s.file, s, cfg.runtime) for s in pack.by_role("liveness")]
        except ValueError as err:
            raise EngineError(f"model pack {pack.id!r} does not match its files: {err}") from err
        pin_new_digests(pack, checks, pins)
        liveness = LivenessEnsemble(live_models) if live_models else None
        log.info("face engine ready: pack %s from %s", pack.id, root)
        return cls(pack, detector, recognizer, liveness, cfg, verifiers=verifiers)

    @property
    def pack_id(self) -> str:
        return self.pack.id

    @property
    def embedding_size(self) -> int:
        return self.pack.embedding_size

    @property
    def has_liveness(self) -> bool:
        return self.live is not None

    def detect(self, image: np.ndarray) -> list[Face]:
        faces = self.detector.detect(image)
        if faces or not self.cfg.detection.pad_retry:
            return faces
        padded, border = pad_for_detection(image)
        return [shift_face(f, border) for f in self.detector.detect(padded)]

    def align(self, image: np.ndarray, face: Face) -> np.ndarray:
        return align_face(image, face.landmarks)

    def analyze(
        self, image: np.ndarray, max_faces: int | None = None, embed: bool = True
    ) -> list[FaceObservation]:
        faces = self.detect(image)[:max_faces]
        crops = [self.align(image, f) for f in faces]
        embeddings = self.embed(crops) if embed else [None] * len(faces)
        return [
            FaceObservation(face=f, aligned=c, quality=measure_quality(f, c), embedding=e)
            for f, c, e in zip(faces, crops, embeddings, strict=True)
        ]

    def embed(self, aligned: list[np.ndarray]) -> np.ndarray:
        return self.recognizer.embed(aligned)

    @property
    def recognizers(self) -> tuple[ArcFaceRecognizer, ...]:
        """Every recognizer of the counter's 1:1 check: the lobby's first, then the verifiers."""
        return (self.recognizer, *self.verifiers)

    def liveness(self, image: np.ndarray, face: Face) -> float:
        if self.live is None:
            raise EngineError(f"model pack {self.pack.id!r} has no liveness model")
        return self.live.score(image, face)
