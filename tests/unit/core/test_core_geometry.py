"""Alignment and pose maths, with Hypothesis."""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from edge.config import QualityConfig
from edge.core.align import ARCFACE_TEMPLATE, apply_transform, arcface_transform, umeyama_similarity
from edge.core.quality import FaceQuality, estimate_pose, interocular_distance

angles = st.floats(-math.pi, math.pi)
scales = st.floats(0.2, 8.0)
shifts = st.floats(-500, 500)


def similarity(angle: float, scale: float, tx: float, ty: float) -> np.ndarray:
    c, s = math.cos(angle) * scale, math.sin(angle) * scale
    return np.array([[c, -s, tx], [s, c, ty]])


@given(angles, scales, shifts, shifts)
def test_umeyama_recovers_an_exact_similarity(angle, scale, tx, ty):
    truth = similarity(angle, scale, tx, ty)
    moved = apply_transform(truth, ARCFACE_TEMPLATE)
    recovered = umeyama_similarity(ARCFACE_TEMPLATE, moved)
    np.testing.assert_allclose(recovered, truth, atol=1e-6 * max(1.0, abs(tx) + abs(ty)))


@given(angles, scales, shifts, shifts)
def test_landmarks_map_onto_the_template(angle, scale, tx, ty):
    face = apply_transform(similarity(angle, scale, tx, ty), ARCFACE_TEMPLATE)
    matrix = arcface_transform(face)
    np.testing.assert_allclose(apply_transform(matrix, face), ARCFACE_TEMPLATE, atol=1e-6)


def test_template_face_is_frontal():
    yaw, pitch = estimate_pose(ARCFACE_TEMPLATE)
    assert abs(yaw) < 1 and abs(pitch) < 1


@given(angles, scales, shifts, shifts)
def test_pose_ignores_roll_scale_and_position(angle, scale, tx, ty):
    turned = ARCFACE_TEMPLATE.copy()
    turned[2, 0] += 8  # nose moved sideways: a head turned
    base = estimate_pose(turned)
    moved = apply_transform(similarity(angle, scale, tx, ty), turned)
    np.testing.assert_allclose(estimate_pose(moved), base, atol=1e-6)


def test_yaw_and_pitch_signs_and_growth():
    def pose_with_nose(dx: float, dy: float) -> tuple[float, float]:
        pts = ARCFACE_TEMPLATE.copy()
        pts[2] += (dx, dy)
        return estimate_pose(pts)

    assert pose_with_nose(10, 0)[0] > pose_with_nose(5, 0)[0] > 5
    assert pose_with_nose(-10, 0)[0] < -5
    assert pose_with_nose(0, 8)[1] > 10 and pose_with_nose(0, -8)[1] < -10
    mirrored = ARCFACE_TEMPLATE.copy()
    mirrored[2, 0] += 6
    yaw, _ = estimate_pose(mirrored)
    flipped = mirrored.copy()
    flipped[:, 0] = 112 - flipped[:, 0]
    flipped = flipped[[1, 0, 2, 4, 3]]
    assert abs(estimate_pose(flipped)[0] + yaw) < 1e-9


def test_interocular_distance():
    assert interocular_distance(ARCFACE_TEMPLATE) == np.hypot(73.5318 - 38.2946, 51.5014 - 51.6963)


def test_quality_gate_reports_every_failure():
    limits = QualityConfig()
    good = FaceQuality(det_score=0.9, interocular_px=40, blur=200, yaw_deg=5, pitch_deg=5)
    bad = FaceQuality(det_score=0.3, interocular_px=5, blur=1, yaw_deg=80, pitch_deg=0)
    assert good.failures(limits) == []
    assert bad.failures(limits) == ["low_det_score", "too_small", "blurry", "extreme_pose"]
    assert 0 < bad.score() < good.score() <= 1
