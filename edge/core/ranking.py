"""Ranking maths for the product recommender (pure: stdlib and numpy only).

* Month arithmetic for month-over-month snapshots.
* Co-acquisition: how often two products are taken up together, so that a
  top-3 does not spend two of its slots on products that come as a pair
  (a payroll account and the payroll deposit into it): a list of three is
  judged by whether *any* of them is taken up, so each slot should add a
  chance the others do not already cover.
* Offline metrics: hit-rate@k and average precision@k (MAP@7 is the metric
  of the public Santander product-recommendation benchmark).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Sequence
from datetime import date

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole calendar months; the 31st becomes the month's last day."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def co_acquisition(events: Iterable[tuple[str, int, int]], products: int, prior: float = 1.0) -> Matrix:
    """``overlap[j, k]``: the share of customers who took up product ``j`` in some month
    and took up ``k`` in the same month (``events``: customer, product index, month index).
    ``prior`` shrinks products seen rarely towards no overlap."""
    by_month: dict[tuple[str, int], set[int]] = {}
    for customer, product, month in events:
        by_month.setdefault((customer, month), set()).add(product)
    together = np.zeros((products, products))
    taken = np.zeros(products)
    for bought in by_month.values():
        for j in bought:
            taken[j] += 1
            for k in bought:
                if k != j:
                    together[j, k] += 1
    return np.asarray(together / (taken[:, None] + prior), dtype=np.float64)


def cover_order(scores: Sequence[float], overlap: Matrix, k: int) -> list[int]:
    """Indices of ``scores`` best first, the first ``k`` chosen greedily for the chance
    that at least one is taken up: after choosing ``j``, every other product keeps
    only the part of its score not already covered by ``j`` (``1 - overlap[:, j]``).
    Products with a score of ``-inf`` are left out; the rest follow by score."""
    gain = np.asarray(scores, dtype=np.float64).copy()
    original = gain.copy()
    chosen: list[int] = []
    for _ in range(min(k, len(gain))):
        j = int(np.argmax(gain))
        if not np.isfinite(gain[j]):
            break
        chosen.append(j)
        gain[j] = -np.inf
        finite = np.isfinite(gain)
        gain[finite] = gain[finite] * (1.0 - overlap[finite, j])
    taken = set(chosen)
    rest = [int(j) for j in np.argsort(-original, kind="stable")
            if int(j) not in taken and np.isfinite(original[j])]
    return chosen + rest


def hit_at(actual: set[str], predicted: Sequence[str], k: int) -> bool:
    return bool(actual & set(predicted[:k]))


def average_precision(actual: set[str], predicted: Sequence[str], k: int) -> float:
    """AP@k as in the Santander benchmark: precision at each hit among the first ``k``,
    divided by ``min(len(actual), k)``; 0 when nothing was taken up."""
    if not actual:
        return 0.0
    found, total = 0, 0.0
    seen: set[str] = set()
    for rank, item in enumerate(predicted[:k], start=1):
        if item in actual and item not in seen:
            found += 1
            total += found / rank
        seen.add(item)
    return total / min(len(actual), k)


def smoothed_rate(successes: float, trials: float, prior_rate: float, strength: float) -> float:
    """A rate shrunk towards ``prior_rate`` as if ``strength`` more trials had that rate."""
    return (successes + strength * prior_rate) / (trials + strength) if trials + strength > 0 else prior_rate
