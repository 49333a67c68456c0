"""Ranking maths: months, co-acquisition, the cover order of a top-3, hit-rate and AP@k."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.core.ranking import (
    add_months,
    average_precision,
    co_acquisition,
    cover_order,
    hit_at,
    smoothed_rate,
)


@pytest.mark.parametrize(("day", "months", "expected"), [
    (date(2015, 12, 1), -1, date(2015, 11, 1)),
    (date(2016, 1, 31), 1, date(2016, 2, 29)),  # the 31st becomes the month's last day
    (date(2015, 3, 31), -13, date(2014, 2, 28)),
    (date(2016, 5, 28), 0, date(2016, 5, 28)),
])
def test_add_months(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


def test_products_taken_up_together_overlap() -> None:
    events = [("a", 0, 3), ("a", 1, 3), ("b", 0, 4), ("b", 1, 4), ("c", 0, 5), ("c", 2, 9)]
    overlap = co_acquisition(events, 3, prior=0.0)
    assert overlap[0, 1] == pytest.approx(2 / 3)  # 0 came with 1 for two of its three take-ups
    assert overlap[1, 0] == pytest.approx(1.0)
    assert overlap[0, 2] == 0.0 and overlap[2, 0] == 0.0  # c took 2 in another month


def test_a_pair_taken_up_together_does_not_fill_two_of_three_places() -> None:
    scores = [0.9, 0.85, 0.5, 0.4]
    overlap = np.zeros((4, 4))
    overlap[0, 1] = overlap[1, 0] = 0.95  # 0 and 1 come together
    assert cover_order(scores, overlap, 3)[:3] == [0, 2, 3]
    assert cover_order(scores, np.zeros((4, 4)), 3)[:3] == [0, 1, 2]
    assert cover_order(scores, overlap, 3)[3] == 1  # still in the list, after the three


@settings(deadline=None)
@given(st.lists(st.one_of(st.floats(0, 1), st.just(float("-inf"))), min_size=1, max_size=12),
       st.integers(0, 5), st.randoms(use_true_random=False))
def test_cover_order_is_a_permutation_of_the_finite_scores(scores: list[float], k: int, rnd: object) -> None:
    n = len(scores)
    overlap = np.asarray([[rnd.random() if i != j else 0.0 for j in range(n)] for i in range(n)])  # type: ignore[attr-defined]
    order = cover_order(scores, overlap, k)
    assert sorted(order) == [i for i in range(n) if np.isfinite(scores[i])]
    if order:
        assert scores[order[0]] == max(s for s in scores if np.isfinite(s))


def test_average_precision_as_in_the_santander_benchmark() -> None:
    assert average_precision({"a", "b"}, ["a", "x", "b"], 7) == pytest.approx((1 + 2 / 3) / 2)
    assert average_precision({"a"}, ["x", "a"], 7) == pytest.approx(0.5)
    assert average_precision({"a"}, ["x"] * 7 + ["a"], 7) == 0.0  # past the 7th place
    assert average_precision(set(), ["a"], 7) == 0.0
    many = {str(i) for i in range(10)}
    assert average_precision(many, [str(i) for i in range(7)], 7) == pytest.approx(1.0)


def test_hit_at_k_and_smoothed_rates() -> None:
    assert hit_at({"b"}, ["a", "b", "c", "d"], 3) and not hit_at({"d"}, ["a", "b", "c", "d"], 3)
    assert smoothed_rate(0, 0, 0.1, 50) == pytest.approx(0.1)
    assert smoothed_rate(10, 10, 0.1, 0) == pytest.approx(1.0)
    assert 0.1 < smoothed_rate(5, 10, 0.1, 10) < 0.5
