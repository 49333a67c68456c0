"""Who takes up which product next: learnt month over month from the CRM copy.

``Timeline`` turns the population into arrays: every spell of holding a
product and every acquisition (see ``edge.crm.history``).  From it,
``Propensity`` builds one training row per customer and month over the last
``months`` months before the day it is fitted for: what the customer held at
the start of the month (product flags, and the amount per category when the
CRM has real amounts), their risk level, and which products they took up
during the month.  One gradient-boosted classifier per product
(``HistGradientBoostingClassifier``) is trained on the rows of customers who
did not hold it (on every row for a renewable product, where buying it again
counts too); a product taken up too rarely to learn from keeps its plain
monthly take-up rate.  The score of a product for a customer is the chance
that they take it up next month; only its order among one customer's
products matters.

The same rows give the facts that reasons quote: how much more often holders
of a product take up another (co-holding lift), and which products are
taken up together in the same month (so a top-3 does not spend two slots on a
pair).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import numpy as np
import numpy.typing as npt
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from edge.core.ranking import add_months, co_acquisition
from edge.core.suitability import CUSTOMER_LEVELS, level_number
from edge.crm.catalogue import CATEGORIES
from edge.crm.history import Population, acquisitions, customer_spells

FloatArray = npt.NDArray[np.float64]
SmallArray = npt.NDArray[np.float16]  # features: 0/1 flags, levels 1-5, half-steps of log(amount)
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
OPEN = 10**7  # an ordinal past any real day: the spell has not ended

MONTHS = 18  # months of history learnt from
MIN_TAKE_UPS = 8  # fewer take-ups of a product than this: its plain rate, no model
MAX_ROWS = 120_000  # rows per product model; more non-buyers are sampled (log-odds corrected)
SMALL_ROWS = 100_000  # training rows below which the models are fitted on one thread
TREND_MONTHS = 2  # each product's scores are recalibrated to its take-ups in the last months
TREND_PRIOR = 5.0  # take-ups: a product seldom taken up recently keeps most of its learnt level
LIFT_MIN_ROWS = 30  # co-holding lift is quoted only from this many holders
LIFT_MIN_TAKE_UPS = 3


@dataclass
class Timeline:
    """The population as arrays (customers and catalogue products by index)."""

    customers: list[str]
    products: list[str]  # the catalogue, by index; products outside it follow in ``others``
    others: list[str]
    risk: IntArray  # 1..5 per customer (their current level)
    tiers: list[str]
    spell_customer: IntArray
    spell_product: IntArray  # >= len(products): not a catalogue product (a current account, say)
    spell_category: IntArray
    spell_amount: FloatArray
    spell_start: IntArray  # date ordinals
    spell_end: IntArray
    take_customer: IntArray  # acquisitions: a product bought while not held
    take_product: IntArray
    take_day: IntArray
    buy_customer: IntArray  # every purchase of a catalogue product (renewals and top-ups too)
    buy_product: IntArray
    buy_day: IntArray
    renewable: BoolArray  # per catalogue product: one held may be bought again
    real_amounts: bool  # amounts are money, not a count of 1 per holding

    @classmethod
    def build(cls, pop: Population) -> Timeline:
        customers = sorted(pop.customers)
        products = sorted(pop.products)
        pindex = {p: i for i, p in enumerate(products)}
        others: list[str] = []
        cindex = {c: i for i, c in enumerate(CATEGORIES)}
        spells: list[tuple[int, int, int, float, int, int]] = []
        takes: list[tuple[int, int, int]] = []
        bought: list[tuple[int, int, int]] = []
        for ci, cid in enumerate(customers):
            buys = pop.buys.get(cid, [])
            bought.extend((ci, pindex[t.product_id], t.on.toordinal()) for t in buys
                          if pindex.get(t.product_id, len(products)) < len(products))
            mine = customer_spells(pop.holdings.get(cid, []), buys, pop.redeems.get(cid, []), pop.products)
            for s in mine:
                if s.product_id not in pindex:
                    pindex[s.product_id] = len(products) + len(others)
                    others.append(s.product_id)
                spells.append((ci, pindex[s.product_id], cindex.get(s.category, 0), s.amount,
                               s.start.toordinal(), s.end.toordinal() if s.end else OPEN))
            for pid, day in acquisitions(mine, buys):
                if pindex.get(pid, len(products)) < len(products):
                    takes.append((ci, pindex[pid], day.toordinal()))
        sp = np.asarray(spells, dtype=np.float64).reshape(-1, 6)
        tk = np.asarray(takes, dtype=np.int64).reshape(-1, 3)
        by = np.asarray(bought, dtype=np.int64).reshape(-1, 3)
        amounts = sp[:, 3]
        return cls(
            customers, products, others,
            np.asarray([_level(pop.customers[c].risk_level) for c in customers], dtype=np.int64),
            [pop.customers[c].tier for c in customers],
            sp[:, 0].astype(np.int64), sp[:, 1].astype(np.int64), sp[:, 2].astype(np.int64), amounts,
            sp[:, 4].astype(np.int64), sp[:, 5].astype(np.int64),
            tk[:, 0], tk[:, 1], tk[:, 2], by[:, 0], by[:, 1], by[:, 2],
            np.asarray([pop.products[p].renewable for p in products], dtype=np.bool_),
            bool(len(amounts)) and bool(np.any((amounts != 0) & (amounts != 1))),
        )

    def state(self, day: date) -> State:
        """At the start of ``day``: held flags (catalogue products first, then the others),
        catalogue products held before but not now, and the amount per category."""
        d = day.toordinal() - 1
        n, p = len(self.customers), len(self.products)
        on = (self.spell_start <= d) & (self.spell_end > d)
        held = np.zeros((n, p + len(self.others)), dtype=np.bool_)
        held[self.spell_customer[on], self.spell_product[on]] = True
        ended = (self.spell_end <= d) & (self.spell_product < p)
        had = np.zeros((n, p), dtype=np.bool_)
        had[self.spell_customer[ended], self.spell_product[ended]] = True
        amounts = np.zeros((n, len(CATEGORIES)))
        np.add.at(amounts, (self.spell_customer[on], self.spell_category[on]), self.spell_amount[on])
        return State(held, had & ~held[:, :p], amounts)

    def taken(self, start: date, end: date, every_buy: bool = False) -> BoolArray:
        """Which customer took up (or, ``every_buy``, bought) which product in ``[start, end)``."""
        cust, prod, day = (self.buy_customer, self.buy_product, self.buy_day) if every_buy else (
            self.take_customer, self.take_product, self.take_day)
        inside = (day >= start.toordinal()) & (day < end.toordinal())
        out = np.zeros((len(self.customers), len(self.products)), dtype=np.bool_)
        out[cust[inside], prod[inside]] = True
        return out

    def features(self, state: State, risk: IntArray | None = None) -> SmallArray:
        """Model inputs: catalogue products held, held before, risk level, holds anything,
        and (with real amounts) the amount per category."""
        risk = self.risk if risk is None else risk
        held = state.held[:, : len(self.products)]
        cols: list[npt.ArrayLike] = [held, state.had, risk[:, None], state.held.any(axis=1, keepdims=True)]
        if self.real_amounts:  # in half-steps of log(amount): a handful of levels per category
            cols.append(np.round(2 * np.log1p(np.maximum(state.amounts, 0.0))) / 2)
        return np.hstack(cols).astype(np.float16)  # every value is exact in half precision


@dataclass
class State:
    held: BoolArray  # products held (catalogue first)
    had: BoolArray  # catalogue products held before and not now
    amounts: FloatArray  # per category


def _level(level: str) -> int:
    return level_number(level) if level in CUSTOMER_LEVELS else 1


@dataclass
class TrainingRows:
    x: SmallArray  # features at the start of each month
    held: BoolArray  # catalogue products held then
    taken: BoolArray  # products taken up during the month
    bought: BoolArray  # products bought during the month, held or not
    amounts: npt.NDArray[np.float32]  # per category, then
    products_held: IntArray  # distinct products held then, in the catalogue or not
    customer: IntArray  # row -> customer index
    month: IntArray  # row -> months before the fitting day (1 = the last month)


def training_rows(timeline: Timeline, as_of: date, months: int = MONTHS) -> TrainingRows:
    """One row per customer and month for the ``months`` months before ``as_of``;
    months before the first purchase in the data are left out."""
    first = int(timeline.take_day.min()) if len(timeline.take_day) else as_of.toordinal()
    n, p = len(timeline.customers), len(timeline.products)
    spans = [(add_months(as_of, -m), add_months(as_of, -m + 1)) for m in range(1, months + 1)]
    spans = [(start, end) for start, end in spans if end.toordinal() > first]
    width = 2 * p + 2 + (len(CATEGORIES) if timeline.real_amounts else 0)
    total = n * len(spans)
    rows = TrainingRows(np.zeros((total, width), dtype=np.float16), np.zeros((total, p), dtype=np.bool_),
                        np.zeros((total, p), dtype=np.bool_), np.zeros((total, p), dtype=np.bool_),
                        np.zeros((total, len(CATEGORIES)), dtype=np.float32), np.zeros(total, dtype=np.int64),
                        np.tile(np.arange(n, dtype=np.int64), len(spans)),
                        np.repeat(np.arange(1, len(spans) + 1, dtype=np.int64), n))
    for m, (start, end) in enumerate(spans):  # filled in place: no second copy of the rows
        at = slice(m * n, (m + 1) * n)
        state = timeline.state(start)
        rows.x[at] = timeline.features(state)
        rows.held[at] = state.held[:, :p]
        rows.taken[at] = timeline.taken(start, end) & ~state.held[:, :p]
        rows.bought[at] = timeline.taken(start, end, every_buy=True)
        rows.amounts[at] = state.amounts
        rows.products_held[at] = state.held.sum(axis=1)
    return rows


def _model() -> HistGradientBoostingClassifier:
    # Small trees (three leaves: one interaction between held products at a time), more of them:
    # a branch's take-ups are few, and on ten monthly cutoffs of the bank extract this did better
    # on average than eight leaves (docs/evaluation/recommender-2026-12-02.md).
    return HistGradientBoostingClassifier(max_iter=100, learning_rate=0.08, max_leaf_nodes=3,
                                          min_samples_leaf=20, l2_regularization=1.0,
                                          early_stopping=False, random_state=0)


class Propensity:
    """Per-product take-up models and the co-holding facts, fitted for one day."""

    def __init__(self, timeline: Timeline, as_of: date, months: int = MONTHS, seed: int = 0) -> None:
        self.timeline = timeline
        self.products = timeline.products
        rows = training_rows(timeline, as_of, months)
        self.rows = rows
        # columns that never vary (no amounts, nothing ever held before) cost time and teach nothing
        self.columns = np.flatnonzero(rows.x.min(axis=0) != rows.x.max(axis=0)) if len(rows.x) else \
            np.zeros(0, dtype=np.int64)
        p = len(self.products)
        # a renewable product is learnt from every row (buying it again counts), the rest from
        # the rows of customers who did not hold it
        renew = timeline.renewable
        eligible = np.where(renew[None, :], True, ~rows.held)
        target = np.where(renew[None, :], rows.bought, rows.taken)
        at_risk = eligible.sum(axis=0).astype(np.float64)
        self.take_ups = target.sum(axis=0).astype(np.float64)
        self.base_rate = self.take_ups / np.maximum(at_risk, 1.0)
        self.models: dict[int, tuple[HistGradientBoostingClassifier, float]] = {}
        rng = np.random.default_rng(seed)
        # a small population trains faster on one thread than it waits for two
        with threadpool_limits(limits=1 if len(rows.x) < SMALL_ROWS else None):
            for j in range(p):
                if self.take_ups[j] >= MIN_TAKE_UPS and at_risk[j] > self.take_ups[j]:
                    self.models[j] = _fit_one(rows.x, self.columns, ~eligible[:, j], target[:, j], rng)
        self.trend = np.ones(p)  # what scores() uses before the recalibration: the models as fitted
        self.trend = self._recent_trend(rows, eligible, target)
        self.lift_rate, self.lift_count, self.lift_rows = _co_holding(rows)
        month_of = (as_of.toordinal() - timeline.take_day) // 31
        self.overlap = co_acquisition(
            zip((str(c) for c in timeline.take_customer), (int(j) for j in timeline.take_product),
                (int(m) for m in month_of), strict=True), p)
        self.recent_take_ups = rows.taken[rows.month <= 12].sum(axis=0)
        self.training_rows = len(rows.customer)

    def _recent_trend(self, rows: TrainingRows, eligible: BoolArray, target: BoolArray) -> FloatArray:
        """Per product: take-ups in the last ``TREND_MONTHS`` months over what the models expect
        for them, both with ``TREND_PRIOR`` added.  The models weigh every month alike, so a product
        on its way out (or up) would keep the level of its average month; this puts it at its
        current one, and leaves the order among customers to the model."""
        recent = np.flatnonzero(rows.month <= TREND_MONTHS)
        if not len(recent):
            return np.ones(len(self.products))
        expected = (self.scores(rows.x[recent]) * eligible[recent]).sum(axis=0)
        actual = (target[recent] & eligible[recent]).sum(axis=0)
        return np.asarray((actual + TREND_PRIOR) / (expected + TREND_PRIOR), dtype=np.float64)

    def drop_rows(self) -> None:
        """Forget the training rows once the segments have their priors (they are most of the
        memory a fitted recommender would otherwise keep all day)."""
        self.rows = training_rows(self.timeline, date.min, 0)

    def scores(self, x: SmallArray) -> FloatArray:
        """Chance of taking up each product next month, one row per feature row."""
        out = np.tile(self.base_rate, (len(x), 1))
        x = x[:, self.columns]
        for j, (model, offset) in self.models.items():
            if len(x):
                out[:, j] = _corrected(model.predict_proba(x)[:, 1], offset)
        return np.asarray(out * self.trend[None, :], dtype=np.float64)

    def best_lift(self, held: Iterable[int], j: int) -> tuple[int, float, int] | None:
        """The held product whose holders take up ``j`` most often relative to everyone:
        (product index, lift, take-ups seen), or None when no held product lifts it."""
        best: tuple[int, float, int] | None = None
        base = self.base_rate[j]
        for i in held:
            if i == j or self.lift_rows[i, j] < LIFT_MIN_ROWS or self.lift_count[i, j] < LIFT_MIN_TAKE_UPS:
                continue
            lift = self.lift_rate[i, j] / base if base > 0 else 0.0
            if lift >= 1.5 and (best is None or lift > best[1]):
                best = (i, lift, int(self.lift_count[i, j]))
        return best


def _fit_one(x: SmallArray, columns: IntArray, skip: BoolArray, taken: BoolArray,
             rng: np.random.Generator) -> tuple[HistGradientBoostingClassifier, float]:
    """The model and the log-odds to add to its output: with more rows than ``MAX_ROWS`` every
    take-up is kept and the rest sampled at rate r, which shifts the log-odds by log r."""
    rows = np.flatnonzero(~skip)
    offset = 0.0
    if len(rows) > MAX_ROWS:
        y = taken[rows]
        pos, neg = rows[y], rows[~y]
        keep = rng.choice(neg, size=max(MAX_ROWS - len(pos), 1), replace=False)
        offset = float(np.log(len(keep) / len(neg)))
        rows = np.sort(np.concatenate([pos, keep]))
    return _model().fit(x[np.ix_(rows, columns)], taken[rows]), offset


def _corrected(p: FloatArray, offset: float) -> FloatArray:
    if not offset:
        return p
    logit = np.log(np.clip(p, 1e-12, 1 - 1e-12)) - np.log1p(-np.clip(p, 1e-12, 1 - 1e-12)) + offset
    return np.asarray(1.0 / (1.0 + np.exp(-logit)), dtype=np.float64)


def _co_holding(rows: TrainingRows, chunk: int = 200_000) -> tuple[FloatArray, FloatArray, FloatArray]:
    """rate[i, j]: monthly take-up of j among rows holding i and not j; with counts."""
    p = rows.held.shape[1]
    count = np.zeros((p, p))
    exposure = np.zeros((p, p))
    for at in range(0, len(rows.held), chunk):  # a chunk at a time: a few MB, not GBs
        h = rows.held[at: at + chunk].astype(np.float32)
        free = 1.0 - h
        count += h.T @ (rows.taken[at: at + chunk] * free)
        exposure += h.T @ free
    return count / np.maximum(exposure, 1.0), count, exposure
