"""5-point similarity alignment onto the ArcFace 112x112 template (pure numpy)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# insightface's arcface_dst: left eye, right eye, nose tip, left and right mouth
# corner, as they appear in the image.
ARCFACE_TEMPLATE: FloatArray = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)
ALIGNED_SIZE = 112


def umeyama_similarity(src: npt.ArrayLike, dst: npt.ArrayLike) -> FloatArray:
    """Least-squares similarity transform (rotation, uniform scale, translation)
    mapping ``src`` points onto ``dst`` (Umeyama 1991).  Returns a 2x3 matrix."""
    s = np.asarray(src, dtype=np.float64)
    d = np.asarray(dst, dtype=np.float64)
    if s.shape != d.shape or s.ndim != 2 or s.shape[1] != 2 or s.shape[0] < 2:
        raise ValueError(f"need matching (n, 2) point sets, got {s.shape} and {d.shape}")
    s_mean, d_mean = s.mean(axis=0), d.mean(axis=0)
    s_c, d_c = s - s_mean, d - d_mean
    cov = d_c.T @ s_c / len(s)
    u, sigma, vt = np.linalg.svd(cov)
    sign = np.eye(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        sign[1, 1] = -1.0
    rotation = u @ sign @ vt
    var_s = float((s_c**2).sum() / len(s))
    scale = float(np.trace(np.diag(sigma) @ sign) / var_s) if var_s > 0 else 1.0
    matrix = np.zeros((2, 3), dtype=np.float64)
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = d_mean - scale * rotation @ s_mean
    return matrix


def arcface_transform(landmarks: npt.ArrayLike, size: int = ALIGNED_SIZE) -> FloatArray:
    """The 2x3 matrix that warps an image so ``landmarks`` land on the template."""
    ratio = size / ALIGNED_SIZE
    return umeyama_similarity(landmarks, ARCFACE_TEMPLATE * ratio)


def apply_transform(matrix: FloatArray, points: npt.ArrayLike) -> FloatArray:
    pts = np.asarray(points, dtype=np.float64)
    return pts @ matrix[:, :2].T + matrix[:, 2]
