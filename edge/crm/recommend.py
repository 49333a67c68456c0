"""Product recommendations: suitability first, then ranking learnt from holdings.

1. Suitability (``edge.core.suitability``) removes every product the customer
   may not be offered today; an expired or missing risk assessment leaves one
   recommendation only: redo the assessment.
2. A product the customer holds is never offered again, unless the catalogue
   makes it renewable (a term deposit or plan, ``Product.renewable``): then it
   may come back as a renewal or top-up, and the reason says so (with the
   maturity date when it has one).  One renewal per list at most, and never
   ahead of the new products of the short list.
3. Propensity (``edge.crm.propensity``): one gradient-boosted model per
   product, trained month over month on which customers took it up given what
   they held, ranks what is left.
4. Segments (``edge.crm.segments``): k-means on holdings and profile, named
   from their centroids so that the name is true of every member.  For a
   customer with little history of their own the segment's take-up rates
   weigh in (all of it for a customer with none).
5. Life-event triggers boost: a maturing deposit or plan favours rolling into
   its category; a large idle current-account balance favours investing it.
6. The top three are chosen for the chance that at least one is taken up:
   products usually taken up together (a payroll account and the payroll
   deposit into it) do not take two of the three places.

Every recommendation carries the facts its reason is built from (a trigger's
date and amount, how much more often holders of a product the customer has
take this one up, or the segment's share), so the reason text and the
talking points quote data and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
import numpy.typing as npt

from edge.config import CrmConfig
from edge.core import life_events as le
from edge.core.ranking import add_months, cover_order, smoothed_rate
from edge.core.suitability import RiskProfile, unsuitability
from edge.crm.catalogue import CATEGORIES, Product
from edge.crm.history import Population, Spell, held_before
from edge.crm.propensity import MONTHS, Propensity, State, Timeline
from edge.crm.records import CrmCustomer, HoldingRecord
from edge.crm.segments import Profiles, Segments

__all__ = ["ASSESSMENT_PRODUCT", "Population", "Recommended", "Recommender", "customer_triggers",
           "eligible_products", "holdings_as_of"]

ASSESSMENT_PRODUCT = "RISK-ASSESSMENT"
TRIGGER_WEIGHT = {le.MATURITY: 0.6, le.IDLE_BALANCE: 0.3}
ROLLOVER_CATEGORIES = ("deposit", "wealth")
INVEST_CATEGORIES = ("deposit", "wealth", "fund", "precious_metal", "insurance")
RECENT_MONTHS = 12
TOP = 3  # the short list, chosen to cover the most take-ups
PRIOR_STRENGTH = 200.0  # a segment's take-up rates lean on the overall rate as if it had this many more rows
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Recommended:
    product_id: str
    score: float
    why: str  # assessment | maturity | idle_balance | renewal (a held, renewable product) | pattern | peers
    facts: dict[str, str | float] = field(default_factory=dict)
    product: Product | None = None


def windows(cfg: CrmConfig) -> le.Windows:
    return le.Windows(cfg.maturity_days, cfg.birthday_days, cfg.assessment_warning_days, cfg.idle_balance)


def holding_facts(holdings: list[HoldingRecord]) -> list[le.HoldingFact]:
    return [le.HoldingFact(h.holding_id, h.product_id, h.category, h.amount, h.matures_on)
            for h in holdings if h.category != "current"]


def current_balance(holdings: list[HoldingRecord]) -> float:
    return sum(h.amount for h in holdings if h.category == "current")


def customer_triggers(customer: CrmCustomer, holdings: list[HoldingRecord], today: date,
                      cfg: CrmConfig) -> list[le.Trigger]:
    return le.life_events(
        holding_facts(holdings), current_balance=current_balance(holdings), birthday=customer.birthday,
        assessment_expires_on=customer.risk_expires_on, today=today, windows=windows(cfg))


def customer_profile(customer: CrmCustomer, holdings: list[HoldingRecord], catalogue: list[str]) -> Profiles:
    """One customer's segment profile, from the holdings their card shows."""
    index = {p: i for i, p in enumerate(catalogue)}
    held = np.zeros((1, len(catalogue)), dtype=np.bool_)
    amounts = np.zeros((1, len(CATEGORIES)))
    for h in holdings:
        if h.product_id in index:
            held[0, index[h.product_id]] = True
        if h.category in CATEGORIES and h.amount > 0:
            amounts[0, CATEGORIES.index(h.category)] += h.amount
    return Profiles(held, amounts, np.asarray([len({h.product_id for h in holdings})]),
                    np.asarray([_risk(customer)]), np.asarray([customer.tier]))


def _risk(customer: CrmCustomer) -> int:
    return int(customer.risk_level[1]) if customer.risk_level[1:].isdigit() else 1


class Recommender:
    """Fitted once per CRM version and day (training takes seconds to minutes); every
    customer's scores are computed then, so ranking an arrival is a lookup, the suitability
    rules, the triggers and a sort."""

    def __init__(self, pop: Population, cfg: CrmConfig, as_of: date) -> None:
        self.pop = pop
        self.cfg = cfg
        self.as_of = as_of
        self.use_triggers = True  # off only for the evaluation's ablation
        self.timeline = Timeline.build(pop)
        self.products = self.timeline.products
        self.index = {p: i for i, p in enumerate(self.products)}
        self.propensity = Propensity(self.timeline, as_of)
        self._fit_segments()
        self.propensity.drop_rows()
        state = self.timeline.state(as_of)
        self._held = state.held[:, : len(self.products)]
        self._positions = {c: i for i, c in enumerate(self.timeline.customers)}
        model = self.propensity.scores(self.timeline.features(state))
        taken = self.timeline.take_day >= add_months(as_of, -MONTHS).toordinal()
        history = self._held.sum(axis=1) + np.bincount(self.timeline.take_customer[taken],
                                                       minlength=len(self.timeline.customers))
        self._scores = self._blend(model, history, self._seg_of_customer)

    # -- segments ------------------------------------------------------------------

    def _fit_segments(self) -> None:
        tl, pop = self.timeline, self.pop
        rows = [customer_profile(pop.customers[c], pop.holdings.get(c, []), self.products)
                for c in tl.customers]
        now = Profiles(np.vstack([r.held for r in rows]) if rows else np.zeros((0, len(self.products)), bool),
                       np.vstack([r.amounts for r in rows]) if rows else np.zeros((0, len(CATEGORIES))),
                       np.concatenate([r.products_held for r in rows]) if rows else np.zeros(0, np.int64),
                       tl.risk, np.asarray(tl.tiers))
        catalogue = [pop.products[p] for p in self.products]
        self.segments = Segments(now, catalogue, self.cfg.segments)
        self._seg_of_customer = list(self.segments.keys)
        r = self.propensity.rows
        past = Profiles(r.held, r.amounts.astype(np.float64), r.products_held, tl.risk[r.customer],
                        np.asarray(tl.tiers)[r.customer])
        past_keys = self.segments.assign(past) if len(r.customer) else []
        self._prior: dict[str, FloatArray] = {}
        self._take_up_share: dict[str, tuple[FloatArray, float]] = {}
        base = self.propensity.base_rate
        recent = r.month <= RECENT_MONTHS
        for key, idx in _groups(past_keys):
            taken = r.taken[idx].sum(axis=0).astype(np.float64)
            exposure = (~r.held[idx]).sum(axis=0).astype(np.float64)
            # at the products' current levels, as the models' scores are (Propensity.trend)
            self._prior[key] = self.propensity.trend * np.asarray(
                [smoothed_rate(taken[j], exposure[j], base[j], PRIOR_STRENGTH) for j in range(len(base))])
            last_year = r.taken[idx[recent[idx]]].sum(axis=0).astype(np.float64)
            self._take_up_share[key] = (last_year, float(last_year.sum()))
        self._members_holding = {key: now.held[idx].mean(axis=0)
                                 for key, idx in _groups(self._seg_of_customer)}

    def segment(self, customer_id: str) -> tuple[str, str]:
        """The customer's segment name (zh-CN, en); empty for a customer the model has not seen."""
        key = self._segment_key(customer_id)
        return self.segments.names.get(key, ("", "")) if key else ("", "")

    def _segment_key(self, customer_id: str, holdings: list[HoldingRecord] | None = None) -> str:
        customer = self.pop.customers.get(customer_id)
        if customer is None:
            return ""
        i = self._position(customer_id)
        if i >= 0 and holdings is None and int(self.timeline.risk[i]) == _risk(customer):
            return self._seg_of_customer[i]
        held = self.pop.holdings.get(customer_id, []) if holdings is None else holdings
        keys = self.segments.assign(customer_profile(customer, held, self.products))
        return keys[0] if keys else ""

    def _blend(self, model: FloatArray, history: npt.NDArray[np.int64], keys: list[str]) -> FloatArray:
        """Model scores, leaning on the segment's take-up rates for little history:
        weight h / (h + 1) on the model for h products held or taken up."""
        out = model.copy()
        base = self.propensity.base_rate * self.propensity.trend
        for i, key in enumerate(keys):
            w = history[i] / (history[i] + 1.0)
            if w < 1.0:
                out[i] = w * model[i] + (1.0 - w) * self._prior.get(key, base)
        return out

    # -- ranking -------------------------------------------------------------------

    def recommend(self, customer_id: str, today: date, holdings: list[HoldingRecord] | None = None,
                  count: int | None = None) -> list[Recommended]:
        """The top suitable products for the customer today, best first."""
        customer = self.pop.customers[customer_id]
        profile = RiskProfile(customer.risk_level, customer.risk_expires_on)
        if profile.expires_on is None or today > profile.expires_on:
            expired = profile.expires_on.isoformat() if profile.expires_on else ""
            return [Recommended(ASSESSMENT_PRODUCT, 1.0, "assessment", {"expires_on": expired})]
        records = self.pop.holdings.get(customer_id, []) if holdings is None else holdings
        spells = self.pop.spells(customer_id, holdings)
        held_ids = {s.product_id for s in spells if s.held_on(today)} | {h.product_id for h in records}
        all_triggers = customer_triggers(customer, records, today, self.cfg)
        triggers = all_triggers if self.use_triggers else []
        investable = current_balance(records) + sum(t.amount for t in all_triggers if t.kind == le.MATURITY)
        scores, key = self._customer_scores(customer_id, spells, holdings)
        names = self.segments.names.get(key, ("", ""))
        options = [p for p in self.suitable(customer, today, investable, names)
                   if p.product_id not in held_ids or p.renewable]
        raw = np.asarray([scores[self.index[p.product_id]] if p.product_id in self.index else 0.0
                          for p in options])
        top = float(raw.max()) if len(raw) and raw.max() > 0 else 1.0
        shown = sorted({h.product_id for h in records} & set(self.index))  # what the card lists as held
        held_index = [self.index[p] for p in shown]
        ranked = [self._explain(p, float(s) / top, triggers, held=held_index, key=key,
                                renewal=_renewal(p, records, today) if p.product_id in held_ids else None)
                  for p, s in zip(options, raw, strict=True)]
        k = count or self.cfg.recommendations
        known = np.asarray([self.index.get(r.product_id, -1) for r in ranked], dtype=np.int64)
        overlap = self.propensity.overlap[np.ix_(np.maximum(known, 0), np.maximum(known, 0))]
        overlap[known < 0, :] = 0.0  # products the model has not seen overlap with nothing
        overlap[:, known < 0] = 0.0
        np.fill_diagonal(overlap, 0.0)
        order = cover_order([r.score - 1e-12 * i for i, r in enumerate(ranked)], overlap, min(k, TOP))
        return one_renewal([ranked[i] for i in order], min(k, TOP))[:k]

    def suitable(self, customer: CrmCustomer, today: date, investable: float,
                 segment: tuple[str, str] | None = None) -> list[Product]:
        """Products the customer may be offered today (suitability, and targeting by tier or
        segment name), held or not, in catalogue order."""
        profile = RiskProfile(customer.risk_level, customer.risk_expires_on)
        audience = {customer.tier, *(self.segment(customer.customer_id) if segment is None else segment)}
        return [p for _, p in sorted(self.pop.products.items())
                if unsuitability(profile, p.terms, today, investable) is None
                and (not p.segments or bool(audience & set(p.segments)))]

    def _customer_scores(self, customer_id: str, spells: list[Spell],
                         holdings: list[HoldingRecord] | None) -> tuple[FloatArray, str]:
        """Fitted scores when the customer holds what the model saw; else scored now."""
        i = self._position(customer_id)
        held = held_before(spells, self.as_of)
        now = np.zeros(len(self.products), dtype=np.bool_)
        for s in held:
            if s.product_id in self.index:
                now[self.index[s.product_id]] = True
        customer = self.pop.customers[customer_id]
        same_level = i >= 0 and int(self.timeline.risk[i]) == _risk(customer)
        if i >= 0 and holdings is None and same_level:
            return self._scores[i], self._seg_of_customer[i]
        if i >= 0 and same_level and bool(np.array_equal(now, self._held[i])):
            return self._scores[i], self._seg_of_customer[i]
        amounts = np.zeros((1, len(CATEGORIES)))
        for s in held:
            if s.category in CATEGORIES:
                amounts[0, CATEGORIES.index(s.category)] += s.amount
        had = np.zeros((1, len(self.products)), dtype=np.bool_)
        for s in spells:
            if s.end is not None and s.end < self.as_of and s.product_id in self.index:
                had[0, self.index[s.product_id]] = True
        others = any(s.product_id not in self.index for s in held)
        state = State(np.hstack([now, [others]])[None, :], had & ~now[None, :], amounts)
        x = self.timeline.features(state, np.asarray([_risk(customer)]))
        key = self._segment_key(customer_id, holdings)
        since = add_months(self.as_of, -MONTHS)
        history = int(now.sum()) + sum(1 for s in spells if since <= s.start < self.as_of)
        return self._blend(self.propensity.scores(x), np.asarray([history]), [key])[0], key

    def _position(self, customer_id: str) -> int:
        return self._positions.get(customer_id, -1)

    def _explain(self, product: Product, score: float, triggers: list[le.Trigger], *, held: list[int],
                 key: str, renewal: dict[str, str | float] | None) -> Recommended:
        """The score with its trigger boosts, and the reason with the facts it quotes.
        ``renewal``: the customer holds this (renewable) product; the reason says so."""
        pid = product.product_id
        best: Recommended | None = None
        for t in triggers:
            bonus = _trigger_bonus(t, product)
            if bonus and (best is None or score * (1 + bonus) > best.score):
                facts: dict[str, str | float] = {"on": t.on.isoformat() if t.on else "", "amount": t.amount,
                                                 "from_product": t.product_id, "category": t.category}
                best = Recommended(pid, score * (1 + bonus), t.kind, facts, product)
        if renewal is not None:
            return Recommended(pid, best.score if best else score, "renewal", renewal, product)
        if best is not None:
            return best
        j = self.index.get(pid)
        lift = self.propensity.best_lift(held, j) if j is not None else None
        if lift is not None:
            i, times, seen = lift
            return Recommended(pid, score, "pattern", {
                "from_product": self.products[i], "lift": round(times, 1), "count": seen}, product)
        return Recommended(pid, score, "peers", self._peer_facts(key, j), product)

    def _peer_facts(self, key: str, j: int | None) -> dict[str, str | float]:
        names = self.segments.names.get(key, ("", ""))
        hold = float(self._members_holding.get(key, np.zeros(0))[j]) if j is not None and key in \
            self._members_holding else 0.0
        took, total = self._take_up_share.get(key, (np.zeros(0), 0.0))
        share_taken = float(took[j]) / total if j is not None and total > 0 else 0.0
        if j is not None and round(100 * max(hold, share_taken)) == 0:  # nothing to quote for the segment
            everyone = self.propensity.recent_take_ups
            share = float(everyone[j]) / max(float(everyone.sum()), 1.0)
            return {"share": round(100 * share), "recent": 1, "basis": "everyone",
                    "segment_zh": names[0], "segment_en": names[1]}
        take_up = share_taken > hold
        return {"share": round(100 * (share_taken if take_up else hold)), "recent": int(take_up),
                "basis": "take_up" if take_up else "hold", "segment_zh": names[0], "segment_en": names[1]}


def one_renewal(ranked: list[Recommended], top: int = TOP) -> list[Recommended]:
    """The best renewal only, and not ahead of new products: the list is for offering something
    new, and one reminder to renew or top up a product the customer holds is enough.  A renewal
    that made the first ``top`` places takes the last of them."""
    first = next((i for i, r in enumerate(ranked) if r.why == "renewal"), None)
    out = [r for i, r in enumerate(ranked) if r.why != "renewal" or i == first]
    if first is not None and first < top - 1:
        out.insert(top - 1, out.pop(first))
    return out


def _renewal(product: Product, holdings: list[HoldingRecord], today: date) -> dict[str, str | float]:
    """Facts for renewing or topping up a product the customer holds: the holding's next
    maturity (if it has one) and its amount."""
    mine = [h for h in holdings if h.product_id == product.product_id]
    due = sorted((h for h in mine if h.matures_on and h.matures_on >= today),
                 key=lambda h: h.matures_on or today)
    amount = due[0].amount if due else sum(h.amount for h in mine)
    on = due[0].matures_on.isoformat() if due and due[0].matures_on else ""
    return {"from_product": product.product_id, "on": on, "amount": amount, "category": product.category}


def _groups(keys: list[str]) -> list[tuple[str, npt.NDArray[np.int64]]]:
    """(key, row indices) for each distinct key."""
    if not keys:
        return []
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(k, len(index)) for k in keys), dtype=np.int64, count=len(keys))
    order = np.argsort(codes, kind="stable")
    bounds = np.searchsorted(codes[order], np.arange(len(index) + 1))
    return [(name, order[bounds[g]: bounds[g + 1]]) for name, g in index.items()]


def _trigger_bonus(trigger: le.Trigger, product: Product) -> float:
    rollover = trigger.category in ROLLOVER_CATEGORIES and product.category in ROLLOVER_CATEGORIES
    if trigger.kind == le.MATURITY and rollover:  # renewing it first, then its category, then the other
        if product.product_id == trigger.product_id:
            return TRIGGER_WEIGHT[le.MATURITY]
        if product.category == trigger.category:
            return TRIGGER_WEIGHT[le.MATURITY] / 2
        return TRIGGER_WEIGHT[le.MATURITY] / 4
    if trigger.kind == le.IDLE_BALANCE and product.category in INVEST_CATEGORIES:
        return TRIGGER_WEIGHT[le.IDLE_BALANCE]
    return 0.0


def eligible_products(rec: Recommender, customer_id: str, today: date,
                      holdings: list[HoldingRecord]) -> list[Product]:
    """Products that pass suitability and targeting, held or not (what a baseline may choose from)."""
    customer = rec.pop.customers[customer_id]
    triggers = customer_triggers(customer, holdings, today, rec.cfg)
    investable = current_balance(holdings) + sum(t.amount for t in triggers if t.kind == le.MATURITY)
    profile = RiskProfile(customer.risk_level, customer.risk_expires_on)
    if profile.expires_on is None or today > profile.expires_on:
        return []
    return rec.suitable(customer, today, investable)


def holdings_as_of(pop: Population, customer_id: str, as_of: date) -> list[HoldingRecord]:
    """What the customer held at the start of ``as_of``, rebuilt from holdings and purchases
    (a term product keeps its maturity date), plus today's current-account balances (the CRM
    keeps no balance history)."""
    out = {h.holding_id: h for h in pop.holdings.get(customer_id, []) if h.category == "current"}
    for n, s in enumerate(held_before(pop.spells(customer_id), as_of)):
        if s.category == "current" and any(h.product_id == s.product_id for h in out.values()):
            continue
        matures = s.end - timedelta(days=1) if s.end else None
        out[f"{customer_id}-{s.product_id}-{n}"] = HoldingRecord(
            f"{customer_id}-{s.product_id}-{n}", customer_id, s.product_id, s.category, s.amount, s.start,
            matures)
    return list(out.values())
