"""Face quality measures from the 5 landmarks, and the quality gate (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

# Nose tip sits at 49 % of the way from the eye line to the mouth line on the
# ArcFace template (71.74 between 51.60 and 92.28): a frontal face.
FRONTAL_NOSE_RATIO = 0.494
# Nose depth over eye-to-mouth height: how far the nose tip moves vertically per
# unit tan(pitch).  Anthropometric average; the estimate is coarse (±10°).
NOSE_DEPTH_RATIO = 0.45


class QualityLimits(Protocol):
    @property
    def min_det_score(self) -> float: ...
    @property
    def min_interocular_px(self) -> float: ...
    @property
    def min_blur(self) -> float: ...
    @property
    def max_yaw_deg(self) -> float: ...
    @property
    def max_pitch_deg(self) -> float: ...


@dataclass(frozen=True)
class FaceQuality:
    det_score: float
    interocular_px: float
    blur: float
    yaw_deg: float
    pitch_deg: float

    def failures(self, limits: QualityLimits) -> list[str]:
        """Reason codes for every limit this face misses; empty when it passes."""
        reasons = []
        if self.det_score < limits.min_det_score:
            reasons.append("low_det_score")
        if self.interocular_px < limits.min_interocular_px:
            reasons.append("too_small")
        if self.blur < limits.min_blur:
            reasons.append("blurry")
        if abs(self.yaw_deg) > limits.max_yaw_deg or abs(self.pitch_deg) > limits.max_pitch_deg:
            reasons.append("extreme_pose")
        return reasons

    def score(self) -> float:
        """A 0..1 weight for aggregating several frames of one person: favours
        large, sharp, frontal faces."""
        size = min(self.interocular_px / 60.0, 1.0)
        sharp = min(self.blur / 300.0, 1.0)
        frontal = max(0.0, 1.0 - (abs(self.yaw_deg) + abs(self.pitch_deg)) / 90.0)
        return float(self.det_score * (0.4 + 0.6 * size) * (0.5 + 0.5 * sharp) * frontal)


def interocular_distance(landmarks: npt.ArrayLike) -> float:
    pts = np.asarray(landmarks, dtype=np.float64)
    return float(np.hypot(*(pts[1] - pts[0])))


def estimate_pose(landmarks: npt.ArrayLike) -> tuple[float, float]:
    """(yaw, pitch) in degrees from 5 landmarks, after undoing roll.

    Yaw: the nose tip's offset from the face midline over half the eye distance
    is about tan(yaw).  Pitch: the nose tip's height between eye and mouth lines
    departs from the frontal ratio by about NOSE_DEPTH_RATIO * tan(pitch).
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    eye_l, eye_r = pts[0], pts[1]
    roll = math.atan2(eye_r[1] - eye_l[1], eye_r[0] - eye_l[0])
    c, s = math.cos(-roll), math.sin(-roll)
    rot = np.array([[c, -s], [s, c]])
    eye_mid = (eye_l + eye_r) / 2
    p = (pts - eye_mid) @ rot.T
    half_eye = max(np.hypot(*(eye_r - eye_l)) / 2, 1e-6)
    mouth_mid = (p[3] + p[4]) / 2
    midline_x = mouth_mid[0] * (p[2][1] / mouth_mid[1]) if abs(mouth_mid[1]) > 1e-6 else 0.0
    yaw = math.degrees(math.atan((p[2][0] - midline_x) / half_eye))
    height = mouth_mid[1] if abs(mouth_mid[1]) > 1e-6 else 1e-6
    ratio = p[2][1] / height
    pitch = math.degrees(math.atan((ratio - FRONTAL_NOSE_RATIO) / NOSE_DEPTH_RATIO))
    return yaw, pitch
