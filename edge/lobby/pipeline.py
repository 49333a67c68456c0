"""The lobby recognition pipeline: frames of named cameras in, recognitions out.

Per frame: detect (SCRFD on a rectangular input, long side ``lobby.detect_size``)
-> track (``edge.core.tracker``)
-> for tracks still undecided only: quality gate (size, pose, detector score, then
blur on the aligned crop) -> one batched embedding call for all of them -> gallery
search -> per-track evidence and open-set decision (``edge.core.track_decision``).
A track is embedded only while it is pending, so a customer already recognised,
or a stranger already given up on, costs one detection per frame and one
embedding every ``decision.recheck_s`` (is it still the same person? when two
people cross, or one hides the other, the tracker can hand a track over to
another person; the re-check restarts such a track).  A :class:`Recognition` is
emitted once, when a track becomes accepted.

Substreams: a camera analysed on its low-resolution substream passes a
:class:`MainFrames` (its main stream).  A face whose eyes are closer than
``main.below_px`` on the substream is too small to embed well: its box is scaled
to the main stream's resolution, the face is found again in a small region of the
main frame around it (the two streams are not frame-locked: the face may have
moved) and cropped there.  Detection and tracking stay on the substream; the main
frame is asked for at most once per analysed frame, only when such a face belongs to
a track still undecided (a decided track's re-check makes do with the substream).

Strangers: a track's evidence holds customer ids and scores only; its best crop
is kept only while it is pending and is dropped when it ends.  Nothing else about
an unknown person is retained; with ``lobby.footfall_counting`` on, the number of
unknown visitors is counted (a number, nothing more).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Protocol

import cv2
import numpy as np

from edge.config import EdgeConfig
from edge.core.gallery import CustomerScore, Gallery
from edge.core.quality import estimate_pose, interocular_distance
from edge.core.track_decision import FrameEvidence, TrackEvidence
from edge.core.tracker import Box, IouTracker
from edge.core.visits import ArrivalDecision as _ArrivalDecision
from edge.core.visits import VisitBook as _VisitBook
from edge.vision.detector import SCRFDDetector, YuNetDetector
from edge.vision.engine import FaceEngine, measure_quality
from edge.vision.lobby_detect import RectSCRFD
from edge.vision.recognizer import align_face
from edge.vision.types import Face

__all__ = ["ArrivalDecision", "LobbyPipeline", "MainFrames", "Recognition", "VisitBook"]

log = logging.getLogger(__name__)

# The main-stream region searched for a small face: this many face boxes wide, centred on it.
MAIN_REGION_BOXES = 3.0
# Detector input (long side) for that region: small faces there are 40-150 px.
MAIN_DETECT_SIZE = 192


class MainFrames(Protocol):
    """A camera's main stream, as the pipeline asks it for small faces' crops."""

    below_px: float  # faces with closer eyes (substream pixels) are cropped from the main stream

    def frame(self, ts: float) -> np.ndarray | None:
        """The main-stream frame nearest ``ts`` (the substream frame's time), or None."""


@dataclass(frozen=True)
class Recognition:
    """Emitted once per track, when its decision becomes accepted."""

    customer_id: str
    camera_id: str
    ts: float
    score: float
    frames: int
    face_crop: np.ndarray = field(repr=False)  # best-quality aligned 112x112 BGR crop


VisitBook = _VisitBook[Recognition]
ArrivalDecision = _ArrivalDecision[Recognition]


@dataclass
class TrackState:
    evidence: TrackEvidence
    best_weight: float = -1.0
    best_crop: np.ndarray | None = None
    reference: np.ndarray | None = None  # sum of the track's embeddings: who this track is
    next_check: float = 0.0

    def remember(self, embedding: np.ndarray) -> None:
        self.reference = embedding.copy() if self.reference is None else self.reference + embedding

    def same_person(self, embedding: np.ndarray, similarity: float) -> bool:
        if self.reference is None:
            return True
        norm = float(np.linalg.norm(self.reference))
        return norm == 0 or float(self.reference @ embedding) / norm >= similarity


@dataclass
class Candidate:
    """A face of a track that passed the quality gate, waiting to be embedded; a
    ``check`` is a decided track's periodic re-check (did somebody else take it over?)."""

    track_id: int
    crop: np.ndarray
    weight: float
    check: bool = False


@dataclass
class CameraState:
    tracker: IouTracker
    tracks: dict[int, TrackState] = field(default_factory=dict)
    shape: tuple[int, ...] | None = None  # (height, width) of the last frame
    main_scale: float = 0.0  # main-stream width / substream width, once a main frame was seen
    # One lock per camera: cameras are analysed in parallel (ONNX Runtime releases
    # the GIL), frames of one camera in order.
    lock: threading.Lock = field(default_factory=threading.Lock)


def lobby_detector(engine: FaceEngine, size: int) -> RectSCRFD | YuNetDetector:
    """The engine's detector for whole camera frames: SCRFD on a rectangular input
    (same ONNX session); YuNet takes any input size as it is."""
    detector = engine.detector
    return RectSCRFD(detector, size) if isinstance(detector, SCRFDDetector) else detector


class LobbyPipeline:
    def __init__(self, engine: FaceEngine, gallery: Gallery, cfg: EdgeConfig) -> None:
        self.engine = engine
        self.gallery = gallery
        self.cfg = cfg
        self.detector = lobby_detector(engine, cfg.lobby.detect_size)
        self.region_detector = lobby_detector(engine, MAIN_DETECT_SIZE)
        self.quality = cfg.quality.model_copy(update={"min_blur": cfg.lobby.min_blur})
        self.cameras: dict[str, CameraState] = {}
        self.counts = {"frames": 0, "faces": 0, "tracks": 0, "embeds": 0, "decisions": 0,
                       "unknown": 0, "rechecks": 0, "switches": 0, "strangers": 0,
                       "main_fetches": 0, "main_crops": 0, "main_misses": 0}
        self._lock = threading.Lock()

    # -- public API ---------------------------------------------------------------

    def process(self, camera_id: str, frame: np.ndarray, ts: float,
                main: MainFrames | None = None) -> list[Recognition]:
        """``main``: the camera's main stream when ``frame`` comes from its substream."""
        with self._lock:
            camera = self._camera(camera_id)
        with camera.lock:
            self._reset_on_new_resolution(camera, camera_id, frame.shape[:2])
            faces = self._detect(frame)
            update = camera.tracker.update([_box(f) for f in faces], ts)
            for track_id in update.ended:
                self._end_track(camera, track_id)
            for track_id in update.uncertain:  # re-check who it is on this very frame
                if track_id in camera.tracks:
                    camera.tracks[track_id].next_check = ts
            candidates = self._candidates(camera, frame, faces, update.assignments, ts, main=main)
            self._count(frames=1, faces=len(faces))
            return self._decide(camera, camera_id, candidates, ts)

    def _reset_on_new_resolution(self, camera: CameraState, camera_id: str, shape: tuple[int, ...]) -> None:
        """A camera back with another resolution: its old boxes mean nothing in the new
        frame, so every track ends (a stranger there must not inherit a customer's track)."""
        if camera.shape is not None and camera.shape != shape:
            log.warning("camera %s: resolution changed from %dx%d to %dx%d; its tracks are reset",
                        camera_id, camera.shape[1], camera.shape[0], shape[1], shape[0])
            for track_id in camera.tracker.end_all():
                self._end_track(camera, track_id)
        camera.shape = shape

    def swap_gallery(self, gallery: Gallery) -> None:
        """New templates (after enrol or erase): pending evidence restarts; an accepted
        track whose customer left the gallery is no longer accepted."""
        self.gallery = gallery
        with self._lock:
            cameras = list(self.cameras.values())
        for camera in cameras:
            with camera.lock:
                for track_id, state in list(camera.tracks.items()):
                    cid = state.evidence.customer_id
                    if state.evidence.state == "pending" or (cid and cid not in gallery.customers):
                        camera.tracks[track_id] = self._new_track_state()

    def present(self) -> set[str]:
        """Customers whose accepted track is still alive on some camera."""
        with self._lock:
            cameras = list(self.cameras.values())
        present = set()
        for camera in cameras:
            with camera.lock:
                present |= {s.evidence.customer_id for s in camera.tracks.values()
                            if s.evidence.customer_id is not None}
        return present

    def stats(self) -> dict[str, int]:
        with self._lock:
            counts = dict(self.counts)
            counts["live_tracks"] = sum(len(c.tracks) for c in self.cameras.values())
        if not self.cfg.lobby.footfall_counting:
            counts.pop("strangers")
        return counts

    def end_camera(self, camera_id: str) -> None:
        """The camera stopped: its tracks end (and strangers are counted)."""
        with self._lock:
            camera = self.cameras.pop(camera_id, None)
        if camera is not None:
            with camera.lock:
                for track_id in camera.tracker.end_all():
                    self._end_track(camera, track_id)

    # -- stages -------------------------------------------------------------------

    def _count(self, **increments: int) -> None:
        with self._lock:
            for key, value in increments.items():
                self.counts[key] += value

    def _camera(self, camera_id: str) -> CameraState:
        if camera_id not in self.cameras:
            t = self.cfg.tracking
            self.cameras[camera_id] = CameraState(IouTracker(t.iou_threshold, t.max_missed_s))
        return self.cameras[camera_id]

    def _detect(self, frame: np.ndarray) -> list[Face]:
        if isinstance(self.detector, RectSCRFD):
            return self.detector.detect(frame)
        scale = min(1.0, self.cfg.lobby.detect_size / max(frame.shape[:2]))
        if scale >= 1.0:
            return self.detector.detect(frame)
        small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        return [Face(f.bbox / scale, f.score, f.landmarks / scale) for f in self.detector.detect(small)]

    def _new_track_state(self) -> TrackState:
        return TrackState(TrackEvidence(self.cfg.decision.window))

    def _candidates(self, camera: CameraState, frame: np.ndarray, faces: list[Face],
                    assignments: list[int], ts: float, *, main: MainFrames | None = None) -> list[Candidate]:
        out = []
        source = _MainSource(main, ts)
        for face, track_id in zip(faces, assignments, strict=True):
            state = camera.tracks.get(track_id)
            if state is None:
                state = camera.tracks[track_id] = self._new_track_state()
                self._count(tracks=1)
            check = state.evidence.state != "pending"
            if check and ts < state.next_check:
                continue
            image, seen = frame, face
            # Only undecided tracks need the main stream; a re-check makes do with the substream.
            if main is not None and not check and self._wants_main(camera, face, main):
                image, seen = self._on_main(source, frame, face)
                if image is not frame:
                    camera.main_scale = image.shape[1] / frame.shape[1]
            if not self._cheap_gate(seen):
                continue
            crop = align_face(image, seen.landmarks)
            quality = measure_quality(seen, crop)
            if not quality.failures(self.quality):
                out.append(Candidate(track_id, crop, quality.score(), check))
        return out

    def _wants_main(self, camera: CameraState, face: Face, main: MainFrames) -> bool:
        """Small on the substream, yet large enough on the main stream to pass the size gate."""
        eyes = interocular_distance(face.landmarks)
        if eyes >= main.below_px:
            return False
        return not camera.main_scale or eyes * camera.main_scale >= self.quality.min_interocular_px

    def _on_main(self, source: _MainSource, frame: np.ndarray, face: Face) -> tuple[np.ndarray, Face]:
        """The face found again on the main stream (main frame, main-stream pixels); the
        substream's own frame and face when the main stream has no frame or lost the face."""
        found = self._find_on_main(source, frame.shape, face)
        if found is None or source.image is None:
            self._count(main_misses=1)
            return frame, face
        self._count(main_crops=1)
        return source.image, found

    def _find_on_main(self, source: _MainSource, shape: tuple[int, ...], face: Face) -> Face | None:
        main = source.get()
        if main is None:
            return None
        if source.fresh:
            source.fresh = False
            self._count(main_fetches=1)
        sy, sx = main.shape[0] / shape[0], main.shape[1] / shape[1]
        box = face.bbox.astype(np.float64) * (sx, sy, sx, sy)
        centre = (box[:2] + box[2:]) / 2
        half = max(box[2] - box[0], box[3] - box[1]) * MAIN_REGION_BOXES / 2
        x1, y1 = np.maximum(np.floor(centre - half), 0).astype(int)
        x2, y2 = np.minimum(np.ceil(centre + half), (main.shape[1], main.shape[0])).astype(int)
        if x2 - x1 < 16 or y2 - y1 < 16:
            return None
        found = self.region_detector.detect(np.ascontiguousarray(main[y1:y2, x1:x2]))
        if not found:
            return None
        offset = np.array([x1, y1], np.float32)

        def distance(f: Face) -> float:
            return float(np.hypot(*((f.bbox[:2] + f.bbox[2:]) / 2 + offset - centre)))

        nearest = min(found, key=distance)
        return Face(nearest.bbox + np.tile(offset, 2), nearest.score, nearest.landmarks + offset)

    def _cheap_gate(self, face: Face) -> bool:
        """Size, detector score and pose from the landmarks, before paying for a warp."""
        q = self.quality
        if face.score < q.min_det_score or interocular_distance(face.landmarks) < q.min_interocular_px:
            return False
        yaw, pitch = estimate_pose(face.landmarks)
        return abs(yaw) <= q.max_yaw_deg and abs(pitch) <= q.max_pitch_deg

    def _decide(self, camera: CameraState, camera_id: str, candidates: list[Candidate],
                ts: float) -> list[Recognition]:
        if not candidates:
            return []
        embeddings = self.engine.embed([c.crop for c in candidates])
        self._count(embeds=len(candidates), rechecks=sum(1 for c in candidates if c.check))
        candidates, embeddings = self._recheck(camera, candidates, embeddings, ts)
        ranked = self.gallery.search_batch(embeddings, k=self.cfg.decision.top_k) \
            if len(self.gallery) and len(candidates) else [[] for _ in candidates]
        out = []
        for cand, embedding, scores in zip(candidates, embeddings, ranked, strict=True):
            state = camera.tracks[cand.track_id]
            state.remember(embedding)
            recognition = self._add_evidence(state, cand, scores, camera_id, ts)
            if recognition is not None:
                out.append(recognition)
        return out

    def _recheck(self, camera: CameraState, candidates: list[Candidate], embeddings: np.ndarray,
                 ts: float) -> tuple[list[Candidate], np.ndarray]:
        """Decided tracks whose face is still the same person wait for the next check;
        a track another person took over (they crossed, one hid the other) restarts
        pending, with this frame as its first evidence."""
        keep = []
        for i, cand in enumerate(candidates):
            state = camera.tracks[cand.track_id]
            if not cand.check:
                keep.append(i)
            elif state.same_person(embeddings[i], self.cfg.decision.same_person_similarity):
                state.next_check = ts + self.cfg.decision.recheck_s
            else:
                self._count(switches=1)
                camera.tracks[cand.track_id] = self._new_track_state()
                keep.append(i)
        return [candidates[i] for i in keep], embeddings[keep]

    def _add_evidence(self, state: TrackState, cand: Candidate, scores: list[CustomerScore], camera_id: str,
                      ts: float) -> Recognition | None:
        if cand.weight > state.best_weight:
            state.best_weight, state.best_crop = cand.weight, cand.crop
        rec = self.cfg.recognition
        verdict = state.evidence.add(FrameEvidence(tuple(scores), cand.weight), rec.threshold,
                                     rec.margin, self.cfg.decision)
        if verdict == "pending":
            return None
        crop, state.best_crop = state.best_crop, None  # nothing kept once decided
        state.next_check = ts + self.cfg.decision.recheck_s
        if verdict == "unknown":
            self._count(unknown=1)
            return None
        self._count(decisions=1)
        decision = state.evidence.decision
        assert decision is not None
        assert decision.best is not None
        assert crop is not None
        return Recognition(decision.best.customer_id, camera_id, ts, decision.best.score,
                           state.evidence.embeds, crop)

    def _end_track(self, camera: CameraState, track_id: int) -> None:
        state = camera.tracks.pop(track_id, None)
        if state is None or state.evidence.state == "accepted" or state.evidence.embeds == 0:
            return
        self._count(strangers=1)  # a visitor we saw well and did not recognise


class _MainSource:
    """The main-stream frame for one analysed frame: asked for once, only when needed."""

    def __init__(self, main: MainFrames | None, ts: float) -> None:
        self.main, self.ts = main, ts
        self.image: np.ndarray | None = None
        self.asked = False
        self.fresh = False

    def get(self) -> np.ndarray | None:
        if not self.asked and self.main is not None:
            self.asked = True
            self.image = self.main.frame(self.ts)
            self.fresh = self.image is not None
        return self.image


def _box(face: Face) -> Box:
    b = face.bbox
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
