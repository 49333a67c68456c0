"""What each customer held when, rebuilt from the CRM copy.

The CRM keeps today's holdings and the purchase history; the recommender
needs the holdings on past days too (to learn which products customers take
up next, month over month) and on the cut day of an offline evaluation.

A *spell* is one stretch of holding a product: from a holding's opening day
(to its maturity, if any) or from a purchase (to its maturity for a term
deposit or plan, to the first later redemption of an open-ended product,
else open).  A holding and the purchase that opened it (same product, same
day) are one spell.  An *acquisition* is a purchase of a product the customer
did not hold the day before: a rolled-over deposit is not one.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta

from edge.crm.catalogue import Product
from edge.crm.records import CrmCustomer, CrmStore, HoldingRecord, TransactionRecord

# Term products in these categories mature (and may be renewed); the rest are open-ended.
MATURING_CATEGORIES = ("deposit", "wealth")


@dataclass
class Population:
    """Everything the recommender learns from, as of one day: purchases before it and
    holdings opened before it (all of them when ``as_of`` is None)."""

    customers: dict[str, CrmCustomer]
    products: dict[str, Product]
    buys: dict[str, list[TransactionRecord]]
    holdings: dict[str, list[HoldingRecord]]
    redeems: dict[str, list[TransactionRecord]] = field(default_factory=dict)

    @classmethod
    def load(cls, crm: CrmStore, as_of: date | None = None) -> Population:
        buys: dict[str, list[TransactionRecord]] = defaultdict(list)
        redeems: dict[str, list[TransactionRecord]] = defaultdict(list)
        for t in crm.transactions():
            if as_of is None or t.on < as_of:
                (buys if t.kind == "buy" else redeems)[t.customer_id].append(t)
        holdings: dict[str, list[HoldingRecord]] = defaultdict(list)
        for h in crm.holdings():
            if as_of is None or h.opened_on < as_of:
                holdings[h.customer_id].append(h)
        return cls({c.customer_id: c for c in crm.customers()}, {p.product_id: p for p in crm.products()},
                   dict(buys), dict(holdings), dict(redeems))

    def spells(self, customer_id: str, holdings: list[HoldingRecord] | None = None) -> list[Spell]:
        """The customer's spells; ``holdings`` replaces the CRM's holdings when given."""
        held = self.holdings.get(customer_id, []) if holdings is None else holdings
        return customer_spells(held, self.buys.get(customer_id, []), self.redeems.get(customer_id, []),
                               self.products)


@dataclass(frozen=True)
class Spell:
    product_id: str
    category: str
    amount: float
    start: date
    end: date | None  # the first day it is no longer held; None: still held

    def held_on(self, day: date) -> bool:
        return self.start <= day and (self.end is None or day < self.end)


def purchase_end(t: TransactionRecord, product: Product | None, redeemed: list[date]) -> date | None:
    if product is not None and product.tenure_days and t.category in MATURING_CATEGORIES:
        return t.on + timedelta(days=product.tenure_days)
    later = [d for d in redeemed if d > t.on]
    return min(later) if later else None


def customer_spells(holdings: list[HoldingRecord], buys: list[TransactionRecord],
                    redeems: list[TransactionRecord], products: dict[str, Product]) -> list[Spell]:
    """One customer's spells from today's holdings and the purchase history."""
    redeemed: dict[str, list[date]] = defaultdict(list)
    for r in redeems:
        redeemed[r.product_id].append(r.on)
    spells: dict[tuple[str, date], Spell] = {}
    for h in holdings:
        end = h.matures_on + timedelta(days=1) if h.matures_on else None
        spells[(h.product_id, h.opened_on)] = Spell(h.product_id, h.category, h.amount, h.opened_on, end)
    for t in buys:
        if (t.product_id, t.on) not in spells:
            end = purchase_end(t, products.get(t.product_id), redeemed.get(t.product_id, []))
            spells[(t.product_id, t.on)] = Spell(t.product_id, t.category, t.amount, t.on, end)
    return sorted(spells.values(), key=lambda s: (s.start, s.product_id))


def held_on(spells: list[Spell], day: date) -> list[Spell]:
    """The spells running on ``day`` (a purchase made that day counts as held)."""
    return [s for s in spells if s.held_on(day)]


def held_before(spells: list[Spell], day: date) -> list[Spell]:
    """The spells running at the start of ``day``: what a customer walking in holds."""
    return held_on(spells, day - timedelta(days=1))


def acquisitions(spells: list[Spell], buys: list[TransactionRecord]) -> list[tuple[str, date]]:
    """(product, day) for each purchase of a product not held the day before."""
    out: list[tuple[str, date]] = []
    seen: set[tuple[str, date]] = set()
    for t in sorted(buys, key=lambda t: (t.on, t.product_id)):
        before = t.on - timedelta(days=1)
        if (t.product_id, t.on) in seen:
            continue
        seen.add((t.product_id, t.on))
        if not any(s.product_id == t.product_id and s.held_on(before) for s in spells):
            out.append((t.product_id, t.on))
    return out
