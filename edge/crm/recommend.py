"""Product recommendations: suitability first, then ranking.

1. Suitability (``edge.core.suitability``) removes every product the customer
   may not be offered today; an expired or missing risk assessment leaves one
   recommendation only: redo the assessment.
2. Segments: k-means (scikit-learn) over what each customer bought, by
   category share, size, risk level and activity.
3. Propensity: the share of the customer's segment that bought a product, and
   the share that bought it in the last year.
4. Life-event triggers: a maturing deposit or plan favours rolling into its
   category; a large idle current-account balance favours investing it.

Every recommendation carries the facts its reason is built from, so the
reason text and the talking points quote data and nothing else.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

import numpy as np
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

from edge.config import CrmConfig
from edge.core import life_events as le
from edge.core.suitability import RiskProfile, level_number, unsuitability
from edge.crm.catalogue import CATEGORIES, Product, category_name
from edge.crm.records import CrmCustomer, CrmStore, HoldingRecord, TransactionRecord

ASSESSMENT_PRODUCT = "RISK-ASSESSMENT"
TRIGGER_WEIGHT = {le.MATURITY: 0.6, le.IDLE_BALANCE: 0.3}
ROLLOVER_CATEGORIES = ("deposit", "wealth")
INVEST_CATEGORIES = ("deposit", "wealth", "fund", "precious_metal", "insurance")
RECENT_DAYS = 365


@dataclass(frozen=True)
class Recommended:
    product_id: str
    score: float
    why: str  # assessment | maturity | idle_balance | peers
    facts: dict[str, str | float] = field(default_factory=dict)
    product: Product | None = None


@dataclass
class Population:
    """Everything the recommender learns from, as of one day."""

    customers: dict[str, CrmCustomer]
    products: dict[str, Product]
    buys: dict[str, list[TransactionRecord]]
    holdings: dict[str, list[HoldingRecord]]

    @classmethod
    def load(cls, crm: CrmStore, as_of: date | None = None) -> Population:
        buys: dict[str, list[TransactionRecord]] = defaultdict(list)
        for t in crm.transactions():
            if t.kind == "buy" and (as_of is None or t.on < as_of):
                buys[t.customer_id].append(t)
        holdings: dict[str, list[HoldingRecord]] = defaultdict(list)
        for h in crm.holdings():
            holdings[h.customer_id].append(h)
        return cls({c.customer_id: c for c in crm.customers()}, {p.product_id: p for p in crm.products()},
                   buys, holdings)


def features(pop: Population, ids: list[str], as_of: date) -> np.ndarray:
    rows = []
    for cid in ids:
        spent: defaultdict[str, float] = defaultdict(float)
        for t in pop.buys.get(cid, []):
            spent[t.category] += t.amount
        total = sum(spent.values())
        shares = [spent[c] / total if total else 0.0 for c in CATEGORIES]
        recent = sum(1 for t in pop.buys.get(cid, []) if (as_of - t.on).days <= RECENT_DAYS)
        risk = level_number(pop.customers[cid].risk_level)
        rows.append([*shares, math.log10(total + 1), risk, recent])
    return np.asarray(rows, dtype=np.float64)


class SegmentModel:
    """k-means segments with a readable name each, and per-segment product shares."""

    def __init__(self, pop: Population, as_of: date, k: int) -> None:
        self.ids = sorted(pop.customers)
        x = features(pop, self.ids, as_of)
        k = max(1, min(k, len(self.ids)))
        self.scaler = StandardScaler().fit(x)
        self.kmeans = KMeans(n_clusters=k, n_init=10, random_state=0).fit(self.scaler.transform(x))
        self.label = dict(zip(self.ids, (int(v) for v in self.kmeans.labels_), strict=True))
        self.names = {s: _segment_name(x[self.kmeans.labels_ == s]) for s in range(k)}
        self.size = Counter(self.label.values())
        self.held: dict[int, Counter[str]] = defaultdict(Counter)
        self.recent: dict[int, Counter[str]] = defaultdict(Counter)
        for cid in self.ids:
            bought = pop.buys.get(cid, [])
            self.held[self.label[cid]].update({t.product_id for t in bought})
            self.recent[self.label[cid]].update(
                {t.product_id for t in bought if (as_of - t.on).days <= RECENT_DAYS})

    def share(self, segment: int, product_id: str) -> tuple[float, float]:
        size = self.size[segment] or 1
        return self.held[segment][product_id] / size, self.recent[segment][product_id] / size


def _segment_name(rows: np.ndarray) -> tuple[str, str]:
    if len(rows) == 0:
        return "综合型", "mixed"
    means = rows.mean(axis=0)
    top = CATEGORIES[int(np.argmax(means[: len(CATEGORIES)]))]
    risk = float(means[len(CATEGORIES) + 1])
    style = ("稳健型", "conservative") if risk < 2.5 else (
        ("平衡型", "balanced") if risk < 3.5 else ("进取型", "growth"))
    return (f"{style[0]}·{category_name(top, 'zh-CN')}为主",
            f"{style[1]}, mostly {category_name(top, 'en')}")


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


class Recommender:
    def __init__(self, pop: Population, cfg: CrmConfig, as_of: date) -> None:
        self.pop = pop
        self.cfg = cfg
        self.model = SegmentModel(pop, as_of, cfg.segments)
        self.use_triggers = True  # off only for the evaluation's ablation

    def segment(self, customer_id: str) -> tuple[str, str]:
        label = self.model.label.get(customer_id)
        return self.model.names[label] if label is not None else ("", "")

    def recommend(self, customer_id: str, today: date, holdings: list[HoldingRecord] | None = None,
                  count: int | None = None) -> list[Recommended]:
        """The top suitable products for the customer today, best first."""
        customer = self.pop.customers[customer_id]
        profile = RiskProfile(customer.risk_level, customer.risk_expires_on)
        if profile.expires_on is None or today > profile.expires_on:
            expired = profile.expires_on.isoformat() if profile.expires_on else ""
            return [Recommended(ASSESSMENT_PRODUCT, 1.0, "assessment", {"expires_on": expired})]
        held = self.pop.holdings.get(customer_id, []) if holdings is None else holdings
        triggers = customer_triggers(customer, held, today, self.cfg)
        investable = current_balance(held) + sum(t.amount for t in triggers if t.kind == le.MATURITY)
        ranked = [
            self._score(customer, product, triggers)
            for product in self.pop.products.values()
            if unsuitability(profile, product.terms, today, investable) is None
            and self._targeted(customer, product)
        ]
        ranked.sort(key=lambda r: (-r.score, r.product_id))
        return diverse(ranked, count or self.cfg.recommendations)

    def _targeted(self, customer: CrmCustomer, product: Product) -> bool:
        names = self.segment(customer.customer_id)
        return not product.segments or bool({customer.tier, *names} & set(product.segments))

    def _score(self, customer: CrmCustomer, product: Product, triggers: list[le.Trigger]) -> Recommended:
        label = self.model.label.get(customer.customer_id)
        held, recent = self.model.share(label, product.product_id) if label is not None else (0.0, 0.0)
        peers = Recommended(product.product_id, 0.5 * held + 0.5 * recent, "peers",
                            _peer_facts(held, recent, self.segment(customer.customer_id)), product)
        best = peers
        for t in triggers if self.use_triggers else []:
            bonus = _trigger_bonus(t, product)
            if bonus and peers.score + bonus > best.score:
                facts: dict[str, str | float] = {"on": t.on.isoformat() if t.on else "", "amount": t.amount,
                                                 "from_product": t.product_id, "category": t.category}
                best = Recommended(product.product_id, peers.score + bonus, t.kind, facts, product)
        return best


def diverse(ranked: list[Recommended], count: int, per_category: int = 2) -> list[Recommended]:
    """The best ``count``, at most ``per_category`` from one category while others remain."""
    chosen: list[Recommended] = []
    seen: Counter[str] = Counter()
    for r in ranked:
        category = r.product.category if r.product else ""
        if seen[category] < per_category:
            chosen.append(r)
            seen[category] += 1
    rest = [r for r in ranked if r not in chosen]
    return (chosen + rest)[:count]


def _peer_facts(held: float, recent: float, segment: tuple[str, str]) -> dict[str, str | float]:
    recent_wins = recent >= held / 2 and recent > 0
    return {"share": round(100 * (recent if recent_wins else held)), "recent": int(recent_wins),
            "segment_zh": segment[0], "segment_en": segment[1]}


def _trigger_bonus(trigger: le.Trigger, product: Product) -> float:
    rollover = trigger.category in ROLLOVER_CATEGORIES and product.category in ROLLOVER_CATEGORIES
    if trigger.kind == le.MATURITY and rollover:
        if product.product_id == trigger.product_id or product.category == trigger.category:
            return TRIGGER_WEIGHT[le.MATURITY]
        return TRIGGER_WEIGHT[le.MATURITY] / 2
    if trigger.kind == le.IDLE_BALANCE and product.category in INVEST_CATEGORIES:
        return TRIGGER_WEIGHT[le.IDLE_BALANCE]
    return 0.0


def eligible_products(rec: Recommender, customer_id: str, today: date,
                      holdings: list[HoldingRecord]) -> list[Product]:
    """Products that pass suitability and targeting (what any ranking may choose from)."""
    everything = rec.recommend(customer_id, today, holdings, count=len(rec.pop.products) + 1)
    return [r.product for r in everything if r.product is not None]


def holdings_as_of(pop: Population, customer_id: str, as_of: date) -> list[HoldingRecord]:
    """Reconstructed from purchases: term products bought before and maturing after ``as_of``,
    plus today's current-account balance (the CRM keeps no balance history)."""
    out = [h for h in pop.holdings.get(customer_id, []) if h.category == "current"]
    for t in pop.buys.get(customer_id, []):
        product = pop.products.get(t.product_id)
        if product and product.tenure_days and t.category in ROLLOVER_CATEGORIES:
            matures = t.on + timedelta(days=product.tenure_days)
            if matures >= as_of:
                out.append(HoldingRecord(t.transaction_id, customer_id, t.product_id, t.category,
                                         t.amount, t.on, matures))
    return out
