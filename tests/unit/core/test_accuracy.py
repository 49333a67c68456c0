"""Properties of the pure verification / identification metrics (edge.core.accuracy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from edge.core import accuracy as m

# Scores on a coarse grid produce ties, the hard case for threshold conventions.
score = st.one_of(
    st.floats(-1.0, 1.0, allow_nan=False, width=32),
    st.sampled_from([-0.5, 0.0, 0.25, 0.5, 1.0]),
)
scores = st.lists(score, min_size=1, max_size=60).map(m.as_scores)
rates = st.sampled_from([0.0, 1e-4, 1e-3, 1e-2, 0.05, 0.1, 0.5, 1.0])


def allowed(rate: float, n: int) -> int:
    return math.floor(rate * n + 1e-9)


@given(negatives=scores, rate=rates)
def test_threshold_accepts_at_most_the_allowed_negatives_and_is_tight(negatives, rate):
    threshold = m.threshold_at_rate(negatives, rate)
    accepted = np.count_nonzero(negatives >= threshold)
    assert accepted <= allowed(rate, negatives.size)
    below = negatives[negatives < threshold]
    if below.size:  # one step lower would accept too many
        assert np.count_nonzero(negatives >= below.max()) > allowed(rate, negatives.size)


def test_threshold_convention_matches_the_kth_highest_impostor():
    impostor = m.as_scores(np.linspace(0.0, 1.0, 2001)[1:])  # 2000 distinct scores
    threshold = m.threshold_at_rate(impostor, 1e-2)  # 20 allowed: just above the 21st highest
    assert impostor[-21] < threshold <= impostor[-20]
    assert m.accept_rate(impostor, threshold) == pytest.approx(0.01)


@given(genuine=scores, impostor=scores)
def test_tar_is_monotone_in_far_and_bounded(genuine, impostor):
    targets = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    result = m.verification_metrics(genuine, impostor, targets)
    tars = [1.0 - p.miss_rate for p in result.points]
    assert tars == sorted(tars)
    thresholds = [p.threshold for p in result.points]
    assert thresholds == sorted(thresholds, reverse=True)
    for point in result.points:
        assert 0.0 <= point.false_rate <= point.target
        assert 0.0 <= point.miss_rate <= 1.0
    assert 0.0 <= result.eer.eer <= 1.0


@given(genuine=scores, impostor=scores)
def test_eer_lies_between_the_curve_bounds(genuine, impostor):
    eer = m.equal_error_rate(genuine, impostor).eer
    far = np.concatenate((m.roc_curve(genuine, impostor).false_rate, [1.0]))
    frr = np.concatenate((m.roc_curve(genuine, impostor).miss_rate, [0.0]))
    assert np.max(np.minimum(far, frr)) - 1e-12 <= eer <= np.min(np.maximum(far, frr)) + 1e-12


@given(
    genuine=st.lists(st.floats(0.51, 1.0), min_size=1, max_size=40).map(m.as_scores),
    impostor=st.lists(st.floats(-1.0, 0.5), min_size=1, max_size=40).map(m.as_scores),
)
def test_perfect_separation_gives_full_tar_and_zero_eer(genuine, impostor):
    result = m.verification_metrics(genuine, impostor, (0.0, 1e-3, 1e-2))
    assert all(p.miss_rate == 0.0 and p.false_rate == 0.0 for p in result.points)
    assert result.eer.eer == 0.0
    reversed_result = m.equal_error_rate(impostor, genuine)  # every impostor beats every genuine
    assert reversed_result.eer == 1.0


def test_identical_scores_give_eer_one_half():
    assert m.equal_error_rate(m.as_scores([0.3] * 5), m.as_scores([0.3] * 7)).eer == 0.5


@given(genuine=scores, impostor=scores, seed=st.integers(0, 2**32 - 1))
def test_verification_is_permutation_invariant(genuine, impostor, seed):
    rng = np.random.default_rng(seed)
    targets = (1e-3, 1e-1)
    shuffled = m.verification_metrics(rng.permutation(genuine), rng.permutation(impostor), targets)
    assert shuffled == m.verification_metrics(genuine, impostor, targets)


@given(genuine=scores, impostor=scores)
def test_failed_genuine_pair_is_a_reject(genuine, impostor):
    with_failure = np.append(genuine, -math.inf)
    point = m.tar_at_far(genuine, impostor, 1e-2)
    failed = m.tar_at_far(with_failure, impostor, 1e-2)
    assert failed.threshold == point.threshold
    tar, tar_failed = 1.0 - point.miss_rate, 1.0 - failed.miss_rate
    assert tar_failed == pytest.approx(tar * genuine.size / (genuine.size + 1))


def test_nan_scores_are_rejected():
    with pytest.raises(ValueError, match="NaN"):
        m.as_scores([0.1, float("nan")])


# --- open-set identification ---------------------------------------------------------


@st.composite
def open_set_case(draw):
    n_gallery = draw(st.integers(1, 6))
    n_probes = draw(st.integers(2, 14))
    sim = draw(hnp.arrays(np.float64, (n_probes, n_gallery), elements=score))
    mates = draw(st.lists(st.integers(-1, n_gallery - 1), min_size=n_probes, max_size=n_probes))
    mates[0], mates[1] = -1, 0  # at least one of each kind
    failed = draw(st.lists(st.booleans(), min_size=n_probes, max_size=n_probes))
    sim[np.asarray(failed)] = -math.inf
    return sim, np.asarray(mates)


def brute_force_fnir(sim, mates, threshold, margin=0.0):
    misses, mated = 0, 0
    for row, mate in zip(sim, mates, strict=True):
        if mate < 0:
            continue
        mated += 1
        others = np.delete(row, mate)
        rival = others.max() if others.size else -math.inf
        ok = math.isfinite(row[mate]) and row[mate] >= threshold
        ok = ok and (row[mate] - rival >= margin if margin else row[mate] >= rival)
        misses += not ok
    return misses / mated


def brute_force_fpir(sim, mates, threshold, margin=0.0):
    rows = [[*sorted(row, reverse=True), -math.inf] for row, mate in zip(sim, mates, strict=True)
            if mate < 0]
    hits = [r[0] >= threshold and (not margin or r[0] - r[1] >= margin) for r in rows]
    return sum(hits) / len(rows)


@given(case=open_set_case(), threshold=score, margin=st.sampled_from([0.0, 0.05, 0.2]))
def test_fnir_and_fpir_match_their_definitions(case, threshold, margin):
    sim, mates = case
    summary = m.open_set_scores(sim, mates)
    assert m.fnir(summary, threshold, margin) == pytest.approx(
        brute_force_fnir(sim, mates, threshold, margin))
    assert m.fpir(summary, threshold, margin) == pytest.approx(
        brute_force_fpir(sim, mates, threshold, margin))


@given(case=open_set_case(), threshold=score)
def test_margin_only_removes_candidates(case, threshold):
    summary = m.open_set_scores(*case)
    assert m.fnir(summary, threshold, 0.1) >= m.fnir(summary, threshold)
    assert m.fpir(summary, threshold, 0.1) <= m.fpir(summary, threshold)


@given(case=open_set_case())
def test_fnir_is_monotone_in_fpir_and_never_below_rank_errors(case):
    summary = m.open_set_scores(*case)
    result = m.identification_metrics(summary, (1e-3, 1e-2, 1e-1, 0.5, 1.0))
    fnirs = [p.miss_rate for p in result.points]
    assert fnirs == sorted(fnirs, reverse=True)
    for point in result.points:
        assert 0.0 <= point.false_rate <= point.target
        assert point.miss_rate >= 1.0 - result.rank1 - 1e-12
    assert 0.0 <= result.rank1 <= 1.0


@given(case=open_set_case(), seed=st.integers(0, 2**32 - 1))
def test_identification_is_invariant_to_probe_and_gallery_order(case, seed):
    sim, mates = case
    rng = np.random.default_rng(seed)
    rows, cols = rng.permutation(sim.shape[0]), rng.permutation(sim.shape[1])
    new_index = np.argsort(cols)  # old gallery column -> new column
    mates_perm = np.where(mates[rows] >= 0, new_index[np.maximum(mates[rows], 0)], -1)
    targets = (1e-2, 0.3)
    original = m.identification_metrics(m.open_set_scores(sim, mates), targets)
    permuted = m.identification_metrics(m.open_set_scores(sim[rows][:, cols], mates_perm), targets)
    assert permuted == original


@settings(max_examples=50)
@given(n_gallery=st.integers(2, 8), n_mated=st.integers(1, 10), n_nonmated=st.integers(1, 10))
def test_perfectly_separated_gallery_is_always_identified(n_gallery, n_mated, n_nonmated):
    mated = np.full((n_mated, n_gallery), 0.1)
    mates = np.arange(n_mated) % n_gallery
    mated[np.arange(n_mated), mates] = 0.9
    nonmated = np.full((n_nonmated, n_gallery), 0.2)
    summary = m.open_set_scores(
        np.vstack((mated, nonmated)), np.concatenate((mates, -np.ones(n_nonmated, int))))
    result = m.identification_metrics(summary, (0.0, 1e-2, 1e-1))
    assert result.rank1 == 1.0
    assert all(p.miss_rate == 0.0 and p.false_rate == 0.0 for p in result.points)


def test_failed_probes_miss_when_mated_and_pass_when_not():
    sim = np.array([[0.9, 0.1], [-math.inf, -math.inf], [-math.inf, -math.inf], [0.2, 0.1]])
    summary = m.open_set_scores(sim, [0, 1, -1, -1])
    assert m.rank1(summary) == 0.5
    assert m.fnir(summary, 0.5) == 0.5
    assert m.fpir(summary, 0.15) == 0.5  # the failed stranger is no false positive


def test_det_identification_agrees_with_pointwise_rates():
    rng = np.random.default_rng(7)
    sim = rng.uniform(-0.2, 0.6, size=(30, 5))
    mates = np.where(np.arange(30) < 15, np.arange(30) % 5, -1)
    sim[np.arange(15), mates[:15]] += 0.3
    summary = m.open_set_scores(sim, mates)
    curve = m.det_identification(summary)
    for t, fp, fn in zip(curve.thresholds, curve.false_rate, curve.miss_rate, strict=True):
        assert fp == pytest.approx(m.fpir(summary, t))
        assert fn == pytest.approx(m.fnir(summary, t))


def test_bad_shapes_are_rejected():
    with pytest.raises(ValueError, match="mate index"):
        m.open_set_scores(np.zeros((2, 2)), [0])
    with pytest.raises(ValueError, match="out of range"):
        m.open_set_scores(np.zeros((1, 2)), [2])
    with pytest.raises(ValueError, match="rate"):
        m.threshold_at_rate(m.as_scores([0.1]), 1.5)


# --- what a rate rests on ---------------------------------------------------------------


@pytest.mark.parametrize(("rate", "needed"), [(1e-1, 100), (1e-2, 1_000), (1e-3, 10_000), (1e-4, 100_000),
                                              (1e-5, 1_000_000), (5e-2, 200), (3e-3, 3_334), (1.0, 10)])
def test_comparisons_needed_expect_ten_false_matches(rate: float, needed: int) -> None:
    assert m.comparisons_needed(rate) == needed
    assert m.is_measurable(rate, needed)
    assert not m.is_measurable(rate, needed - 1)


@given(st.floats(min_value=1e-7, max_value=1.0), st.integers(min_value=0, max_value=10**9))
def test_a_rate_is_measurable_exactly_when_ten_false_matches_are_expected(rate: float,
                                                                           negatives: int) -> None:
    expected_false_matches = negatives * rate
    if expected_false_matches >= m.MIN_FALSE_MATCHES * (1 + 1e-6):
        assert m.is_measurable(rate, negatives)
    if expected_false_matches < m.MIN_FALSE_MATCHES * (1 - 1e-6):
        assert not m.is_measurable(rate, negatives)


@pytest.mark.parametrize("rate", [0.0, -1e-3, 1.5])
def test_comparisons_needed_rejects_a_rate_outside_0_1(rate: float) -> None:
    with pytest.raises(ValueError, match="rate must be within"):
        m.comparisons_needed(rate)
