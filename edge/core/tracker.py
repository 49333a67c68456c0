"""Face tracker (pure): greedy IoU association against constant-velocity predictions.

A face box seen in frame t is matched to the track whose *predicted* box (last box
moved by its velocity for the elapsed time) overlaps it most, highest IoU first, as
long as the IoU is at least ``iou_threshold`` (failing that, a nearby box of
similar size matches, after all IoU matches).  Unmatched detections start new
tracks; a track that finds no detection survives ``max_missed_s`` seconds (brief
occlusion, a missed detection) before it ends.  Lobby faces move smoothly toward the
camera, so this simple ByteTrack-without-scores scheme is enough and costs
microseconds per frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

Box = tuple[float, float, float, float]  # x1, y1, x2, y2

# How much of a new velocity estimate replaces the old one (exponential smoothing).
VELOCITY_GAIN = 0.5
# Fallback when boxes do not overlap enough (a fast face at 10 analysed fps, or a
# track without a velocity yet): centres closer than this fraction of the box
# width, with similar sizes, still match, ranked after every IoU match.
MAX_CENTER_SHIFT = 0.8
MAX_SIZE_RATIO = 1.6
FALLBACK_WEIGHT = 0.01
# A matched box this much wider or narrower than predicted is probably another face
# (a near walker left and revealed the one behind): flagged uncertain.
SIZE_JUMP = 1.3


def center_affinity(a: Box, b: Box) -> float:
    """A small positive score for nearby boxes of similar size, else 0."""
    wa, wb = a[2] - a[0], b[2] - b[0]
    if wa <= 0 or wb <= 0 or max(wa, wb) / min(wa, wb) > MAX_SIZE_RATIO:
        return 0.0
    dx = (a[0] + a[2] - b[0] - b[2]) / 2
    dy = (a[1] + a[3] - b[1] - b[3]) / 2
    shift = (dx * dx + dy * dy) ** 0.5 / ((wa + wb) / 2)
    return FALLBACK_WEIGHT * (1 - shift / MAX_CENTER_SHIFT) if shift < MAX_CENTER_SHIFT else 0.0


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area_a = max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1])
    area_b = max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1])
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


def size_jump(predicted: Box, box: Box) -> bool:
    a, b = predicted[2] - predicted[0], box[2] - box[0]
    return a <= 0 or b <= 0 or max(a, b) / min(a, b) > SIZE_JUMP


@dataclass
class Track:
    track_id: int
    box: Box
    last_ts: float
    velocity: Box = (0.0, 0.0, 0.0, 0.0)  # per second, per coordinate
    hits: int = 1

    def predict(self, ts: float) -> Box:
        dt = max(0.0, ts - self.last_ts)
        b, v = self.box, self.velocity
        return (b[0] + v[0] * dt, b[1] + v[1] * dt, b[2] + v[2] * dt, b[3] + v[3] * dt)

    def update(self, box: Box, ts: float) -> None:
        dt = ts - self.last_ts
        if dt > 0:
            v, g = self.velocity, VELOCITY_GAIN
            seen = tuple((n - o) / dt for n, o in zip(box, self.box, strict=True))
            self.velocity = ((1 - g) * v[0] + g * seen[0], (1 - g) * v[1] + g * seen[1],
                             (1 - g) * v[2] + g * seen[2], (1 - g) * v[3] + g * seen[3])
        self.box, self.last_ts = box, ts
        self.hits += 1


@dataclass(frozen=True)
class TrackUpdate:
    assignments: list[int]  # track id per detection, in detection order
    ended: list[int]  # tracks that ended in this update
    # Tracks continued by a box that did not overlap their prediction (matched on
    # proximity only) or changed size abruptly: the face may be somebody else's now.
    uncertain: list[int] = field(default_factory=list)


@dataclass
class IouTracker:
    iou_threshold: float = 0.25
    max_missed_s: float = 1.0
    tracks: dict[int, Track] = field(default_factory=dict)
    next_id: int = 1

    def update(self, boxes: Sequence[Box], ts: float) -> TrackUpdate:
        pairs = self._candidate_pairs(boxes, ts)
        assignments: list[int | None] = [None] * len(boxes)
        uncertain = []
        for affinity, det, track_id in pairs:
            if assignments[det] is None and track_id not in assignments:
                assignments[det] = track_id
                track = self.tracks[track_id]
                if affinity < FALLBACK_WEIGHT or size_jump(track.predict(ts), boxes[det]):
                    uncertain.append(track_id)
                track.update(boxes[det], ts)
        result = [tid if tid is not None else self._start(boxes[i], ts)
                  for i, tid in enumerate(assignments)]
        return TrackUpdate(result, self._end_stale(ts), uncertain)

    def _candidate_pairs(self, boxes: Sequence[Box], ts: float) -> list[tuple[float, int, int]]:
        pairs = []
        for track in self.tracks.values():
            predicted = track.predict(ts)
            for det, box in enumerate(boxes):
                overlap = iou(predicted, box)
                if overlap < self.iou_threshold:
                    overlap = center_affinity(predicted, box)
                if overlap > 0:
                    pairs.append((overlap, det, track.track_id))
        pairs.sort(key=lambda p: (-p[0], p[1], p[2]))
        return pairs

    def _start(self, box: Box, ts: float) -> int:
        track_id = self.next_id
        self.next_id += 1
        self.tracks[track_id] = Track(track_id, box, ts)
        return track_id

    def _end_stale(self, ts: float) -> list[int]:
        stale = [tid for tid, t in self.tracks.items() if ts - t.last_ts > self.max_missed_s]
        for tid in stale:
            del self.tracks[tid]
        return stale

    def end_all(self) -> list[int]:
        ended = list(self.tracks)
        self.tracks.clear()
        return ended
