"""Biometric accuracy metrics: 1:1 verification and open-set 1:N identification.

Pure functions over score arrays (numpy only, no I/O).  Conventions, used
everywhere in this module:

* A comparison is *accepted* when ``score >= threshold``.
* The threshold for a false-accept target ``rate`` over ``n`` impostor scores
  is the lowest score such that at most ``floor(rate * n)`` impostors score
  ``>=`` it: just above the ``(k+1)``-th highest impostor score, with
  ``k = floor(rate * n)``.  The achieved rate (``<= rate``) is reported too.
* A sample whose face could not be acquired (no face found, unreadable file)
  has the score ``-inf``: a genuine pair or mated probe with it is a miss, an
  impostor pair or non-mated probe with it is a correct rejection.
* Open-set identification: a mated probe is a hit at threshold ``t`` when its
  mate scores ``>= t`` and no non-mate scores higher than the mate (rank 1);
  otherwise it is a miss (FNIR).  A non-mated probe is a false positive when
  its best score is ``>= t`` (FPIR).
* A false-positive rate ``r`` is *measurable* from ``n`` negative comparisons
  (impostor pairs, non-mated probes) when ``n * r >= MIN_FALSE_MATCHES`` (10):
  the threshold then rests on at least ten false matches, and the rate's
  relative sampling error is about ``1 / sqrt(10)``, a third.  Below that the
  threshold is set by a handful of the highest negative scores (with
  ``n * r < 1`` it sits above all of them), so it says little about ``r``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

Scores = NDArray[np.float64]


def as_scores(values: ArrayLike) -> Scores:
    """``values`` as a flat float64 array; NaN is rejected (``-inf`` is a failure)."""
    arr = np.asarray(values, dtype=np.float64).ravel()
    if np.isnan(arr).any():
        raise ValueError("scores contain NaN")
    return arr


@dataclass(frozen=True)
class OperatingPoint:
    """One point of a trade-off curve, found for a target false-positive rate."""

    target: float
    threshold: float
    false_rate: float  # achieved FAR or FPIR (<= target)
    miss_rate: float  # FRR (1 - TAR) or FNIR at that threshold


MIN_FALSE_MATCHES = 10


def comparisons_needed(rate: float) -> int:
    """Negative comparisons needed to measure ``rate``: ``MIN_FALSE_MATCHES / rate``, rounded up."""
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"rate must be within (0, 1], got {rate}")
    return max(MIN_FALSE_MATCHES, math.ceil(MIN_FALSE_MATCHES / rate - 1e-6))  # 10 / 1e-3: 10000


def is_measurable(rate: float, negatives: int) -> bool:
    """Whether ``negatives`` comparisons are enough to measure ``rate`` (see the module notes)."""
    return negatives >= comparisons_needed(rate)


def accept_rate(scores: Scores, threshold: float) -> float:
    """Fraction of ``scores`` that are ``>= threshold``; 0 for no scores."""
    if scores.size == 0:
        return 0.0
    return float(np.count_nonzero(scores >= threshold)) / scores.size


def threshold_at_rate(negatives: Scores, rate: float) -> float:
    """Lowest threshold at which at most ``floor(rate * n)`` negatives are accepted."""
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate must be within [0, 1], got {rate}")
    n = negatives.size
    if n == 0:
        raise ValueError("no negative scores to calibrate against")
    allowed = math.floor(rate * n + 1e-9)  # 1e-3 * 20000 must give 20, not 19
    if allowed >= n:
        return -math.inf
    ordered = np.sort(negatives)[::-1]
    return float(np.nextafter(ordered[allowed], math.inf))


def tar_at_far(genuine: Scores, impostor: Scores, far: float) -> OperatingPoint:
    threshold = threshold_at_rate(impostor, far)
    return OperatingPoint(
        target=far,
        threshold=threshold,
        false_rate=accept_rate(impostor, threshold),
        miss_rate=1.0 - accept_rate(genuine, threshold),
    )


@dataclass(frozen=True)
class Curve:
    """A trade-off curve, thresholds descending; rates are monotone in threshold."""

    thresholds: Scores
    false_rate: Scores  # FAR / FPIR at each threshold (non-decreasing along the array)
    miss_rate: Scores  # FRR / FNIR at each threshold (non-increasing along the array)


def _rate_at_thresholds(scores: Scores, thresholds: Scores) -> Scores:
    """Fraction of ``scores`` ``>= t`` for each ``t`` (vectorised ``accept_rate``)."""
    if scores.size == 0:
        return np.zeros_like(thresholds)
    ordered = np.sort(scores)
    below = np.searchsorted(ordered, thresholds, side="left")
    return (scores.size - below) / scores.size


def _candidate_thresholds(*score_sets: Scores) -> Scores:
    """Every distinct finite score, descending, preceded by +inf (accept nothing)."""
    values = np.concatenate(score_sets) if score_sets else np.empty(0)
    finite = np.unique(values[np.isfinite(values)])[::-1]
    return np.concatenate(([math.inf], finite))


def roc_curve(genuine: Scores, impostor: Scores) -> Curve:
    thresholds = _candidate_thresholds(genuine, impostor)
    return Curve(
        thresholds=thresholds,
        false_rate=_rate_at_thresholds(impostor, thresholds),
        miss_rate=1.0 - _rate_at_thresholds(genuine, thresholds),
    )


@dataclass(frozen=True)
class EqualErrorRate:
    eer: float
    threshold: float


def equal_error_rate(genuine: Scores, impostor: Scores) -> EqualErrorRate:
    """Where FAR and FRR cross, interpolated linearly between the two curve points."""
    if genuine.size == 0 or impostor.size == 0:
        raise ValueError("EER needs genuine and impostor scores")
    curve = roc_curve(genuine, impostor)
    # FRR - FAR falls from 1 (threshold +inf: accept nothing) to -1 once the
    # "accept everything" point is appended, so it crosses zero somewhere.
    thresholds = np.concatenate((curve.thresholds, [-math.inf]))
    far = np.concatenate((curve.false_rate, [1.0]))
    frr = np.concatenate((curve.miss_rate, [0.0]))
    diff = frr - far
    i = int(np.argmax(diff <= 0.0))  # first point where FAR has caught up with FRR
    if i == 0 or diff[i] == 0.0:
        return EqualErrorRate(float(far[i]), float(thresholds[i]))
    alpha = diff[i - 1] / (diff[i - 1] - diff[i])
    eer = far[i - 1] + alpha * (far[i] - far[i - 1])
    return EqualErrorRate(float(eer), float(thresholds[i]))


@dataclass(frozen=True)
class VerificationResult:
    points: tuple[OperatingPoint, ...]
    eer: EqualErrorRate
    n_genuine: int
    n_impostor: int


def verification_metrics(
    genuine: ArrayLike, impostor: ArrayLike, far_targets: tuple[float, ...]
) -> VerificationResult:
    gen, imp = as_scores(genuine), as_scores(impostor)
    return VerificationResult(
        points=tuple(tar_at_far(gen, imp, far) for far in far_targets),
        eer=equal_error_rate(gen, imp),
        n_genuine=gen.size,
        n_impostor=imp.size,
    )


@dataclass(frozen=True)
class OpenSetScores:
    """Per-probe summary of a probe x gallery similarity matrix.

    For mated probes: the mate's score and the best and second-best non-mate
    scores.  For non-mated probes: the best and second-best scores overall.
    ``-inf`` where there is no such score (failure to acquire, tiny gallery).
    """

    mate: Scores
    mated_best_nonmate: Scores
    nonmated_best: Scores
    nonmated_second: Scores


def _top_two(rows: Scores) -> tuple[Scores, Scores]:
    if rows.shape[1] == 0:
        empty = np.full(rows.shape[0], -math.inf)
        return empty, empty.copy()
    if rows.shape[1] == 1:
        return rows[:, 0].copy(), np.full(rows.shape[0], -math.inf)
    part = -np.partition(-rows, 1, axis=1)
    return part[:, 0].copy(), part[:, 1].copy()


def open_set_scores(similarity: ArrayLike, mate_index: ArrayLike) -> OpenSetScores:
    """Summarise ``similarity`` (probes x gallery); ``mate_index`` is -1 for non-mated probes.

    A failed probe's row must be ``-inf``; a mated probe whose identity has no
    usable gallery entry may pass a mate index whose score is ``-inf``.
    """
    sim = np.asarray(similarity, dtype=np.float64)
    mates = np.asarray(mate_index, dtype=np.int64).ravel()
    if sim.ndim != 2 or sim.shape[0] != mates.size:
        raise ValueError("similarity must be (n_probes, n_gallery) with one mate index per probe")
    if np.isnan(sim).any() or (mates >= sim.shape[1]).any() or (mates < -1).any():
        raise ValueError("NaN score or mate index out of range")
    mated = mates >= 0
    rows = sim[mated]
    mate = rows[np.arange(rows.shape[0]), mates[mated]]
    others = rows.copy()
    others[np.arange(rows.shape[0]), mates[mated]] = -math.inf
    best_nonmate = others.max(axis=1) if others.shape[1] else np.full(rows.shape[0], -math.inf)
    nonmated_best, nonmated_second = _top_two(sim[~mated])
    return OpenSetScores(mate, best_nonmate, nonmated_best, nonmated_second)


def _mated_hits(scores: OpenSetScores, threshold: float, margin: float) -> int:
    mate, rival = scores.mate, scores.mated_best_nonmate
    with np.errstate(invalid="ignore"):  # -inf - -inf for failed probes: NaN compares False
        clear = (mate - rival >= margin) if margin > 0.0 else (mate >= rival)
    hit = (mate >= threshold) & np.isfinite(mate) & clear
    return int(np.count_nonzero(hit))


def fnir(scores: OpenSetScores, threshold: float, margin: float = 0.0) -> float:
    """False-negative identification rate: mated probes not returned at rank 1 above threshold."""
    n = scores.mate.size
    return 1.0 - _mated_hits(scores, threshold, margin) / n if n else 0.0


def fpir(scores: OpenSetScores, threshold: float, margin: float = 0.0) -> float:
    """False-positive identification rate: non-mated probes returning any candidate."""
    best, second = scores.nonmated_best, scores.nonmated_second
    if best.size == 0:
        return 0.0
    with np.errstate(invalid="ignore"):
        clear = (best - second >= margin) if margin > 0.0 else np.ones(best.size, dtype=bool)
    hit = (best >= threshold) & clear
    return float(np.count_nonzero(hit)) / best.size


def rank1(scores: OpenSetScores) -> float:
    """Fraction of mated probes whose mate is the top candidate (no threshold)."""
    return 1.0 - fnir(scores, -math.inf)


def fnir_at_fpir(scores: OpenSetScores, fpir_target: float) -> OperatingPoint:
    threshold = threshold_at_rate(scores.nonmated_best, fpir_target)
    return OperatingPoint(
        target=fpir_target,
        threshold=threshold,
        false_rate=fpir(scores, threshold),
        miss_rate=fnir(scores, threshold),
    )


def det_identification(scores: OpenSetScores) -> Curve:
    """FNIR against FPIR over every distinct score (no margin)."""
    thresholds = _candidate_thresholds(scores.mate, scores.nonmated_best)
    fpirs = _rate_at_thresholds(scores.nonmated_best, thresholds)
    with np.errstate(invalid="ignore"):
        ranked_first = np.isfinite(scores.mate) & (scores.mate >= scores.mated_best_nonmate)
    hit_rate = _rate_at_thresholds(np.where(ranked_first, scores.mate, -math.inf), thresholds)
    return Curve(thresholds=thresholds, false_rate=fpirs, miss_rate=1.0 - hit_rate)


@dataclass(frozen=True)
class IdentificationResult:
    points: tuple[OperatingPoint, ...]
    rank1: float
    n_mated: int
    n_nonmated: int


def identification_metrics(
    scores: OpenSetScores, fpir_targets: tuple[float, ...]
) -> IdentificationResult:
    return IdentificationResult(
        points=tuple(fnir_at_fpir(scores, target) for target in fpir_targets),
        rank1=rank1(scores),
        n_mated=scores.mate.size,
        n_nonmated=scores.nonmated_best.size,
    )
