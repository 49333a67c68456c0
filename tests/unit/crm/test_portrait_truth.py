"""The card never contradicts the customer's own data (property test over generated CRMs):
the segment name's facets, the holdings summary, the recommendations and their reasons, and
the talking points all agree with what the customer holds and their risk level."""

from __future__ import annotations

import tempfile
from collections import defaultdict
from datetime import date, timedelta
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.config import CrmConfig
from edge.core.suitability import level_number, rating_number
from edge.crm.catalogue import category_name
from edge.crm.portrait import PortraitBuilder
from edge.crm.records import CrmStore, HoldingRecord, TransactionRecord
from edge.crm.segments import BREADTH, MIXED, NO_HOLDINGS, STYLES, TIER_EN
from tests.unit.crm.recommender_world import CATEGORY, PRODUCTS, customer

TODAY = date(2026, 12, 2)
NAMES = {p.product_id: p for p in PRODUCTS}
TIERS = ["大众", "贵宾", "财富管理", "私人银行"]

a_customer = st.tuples(
    st.sampled_from(TIERS), st.sampled_from(["C1", "C2", "C3", "C4", "C5"]),
    st.lists(st.tuples(st.sampled_from([*sorted(NAMES), "CASA"]),
                       st.sampled_from([0.0, 1.0, 500.0, 20_000.0, 20_000.0, 3e6]),
                       st.integers(1, 700), st.integers(-5, 400)), max_size=6),
    st.lists(st.tuples(st.sampled_from(sorted(NAMES)), st.integers(1, 700)), max_size=4))


Person = tuple[str, str, list[tuple[str, float, int, int]], list[tuple[str, int]]]


def build(crm: CrmStore, people: list[Person]) -> dict[str, list[HoldingRecord]]:
    crm.upsert("products", list(PRODUCTS))
    crm.upsert("customers", [customer(f"G{i:03d}", tier, level)
                             for i, (tier, level, _, _) in enumerate(people)])
    holdings: dict[str, list[HoldingRecord]] = defaultdict(list)
    buys = []
    for i, (_, _, items, bought) in enumerate(people):
        cid = f"G{i:03d}"
        for n, (pid, amount, ago, matures) in enumerate(items):
            category = CATEGORY.get(pid, "current")
            term = NAMES[pid].tenure_days if pid in NAMES else 0
            holdings[cid].append(HoldingRecord(
                f"H{i}-{n}", cid, pid, category, amount, TODAY - timedelta(days=ago),
                TODAY + timedelta(days=matures) if term else None))
        buys += [TransactionRecord(f"T{i}-{n}", cid, TODAY - timedelta(days=ago), pid, CATEGORY[pid], 1000.0,
                                   "buy") for n, (pid, ago) in enumerate(bought)]
    crm.upsert("holdings", [h for hs in holdings.values() for h in hs])
    crm.upsert("transactions", buys)
    return holdings


def check_segment(text: str, tier: str, level: str, holdings: list[HoldingRecord]) -> None:
    facets = text.split(", ")
    assert facets[0] == STYLES[level_number(level)][1]
    assert facets[1] == TIER_EN.get(tier, tier)
    money: dict[str, float] = defaultdict(float)
    for h in holdings:
        if h.amount > 0:
            money[h.category] += h.amount
    products = {h.product_id for h in holdings}
    for facet in facets[2:]:
        if facet == NO_HOLDINGS[1]:
            assert not holdings
        elif facet == MIXED[1]:
            top = max(money.values())
            assert sum(v == top for v in money.values()) > 1
        elif facet.startswith("mostly "):
            top = max(money.values())
            winners = [c for c, v in money.items() if v == top]
            assert len(winners) == 1 and facet == f"mostly {category_name(winners[0], 'en')}"
        elif facet.startswith("holds "):
            assert facet[len("holds "):] in {NAMES[p].name_en for p in products if p in NAMES}
        else:
            band = {v[1]: k for k, v in BREADTH.items()}[facet]
            n = len(products)
            assert (1 if n == 1 else 2 if 2 <= n <= 3 else 4 if n >= 4 else 0) == band
    if not holdings:
        assert NO_HOLDINGS[1] in facets


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(a_customer, min_size=1, max_size=12))
def test_the_card_agrees_with_the_customers_own_data(people: list[Person]) -> None:
    with tempfile.TemporaryDirectory() as tmp, CrmStore.open(Path(tmp) / "crm.db") as crm:
        holdings = build(crm, people)
        builder = PortraitBuilder(crm, CrmConfig(language="en"))
        for i, (tier, level, _, _) in enumerate(people):
            cid = f"G{i:03d}"
            mine = holdings.get(cid, [])
            bundle = builder.build(cid, TODAY)
            assert bundle is not None
            card = bundle.portrait
            check_segment(card.segment, tier, level, mine)
            # the holdings summary: every category with money, largest first, and nothing else
            money: dict[str, float] = defaultdict(float)
            for h in mine:
                if h.amount > 0:
                    money[h.category] += h.amount
            assert {x.category for x in card.holdings} == {category_name(c, "en") for c in money}
            order = [money[c] for c in sorted(money, key=lambda c: -money[c])]
            assert [money[next(c for c in money if category_name(c, "en") == x.category)]
                    for x in card.holdings] == order
            # recommendations: suitable, not held unless renewed, reasons quoting the customer's products
            held = {h.product_id for h in mine}
            rec = builder.recommender(TODAY)
            assert rec is not None
            ranked = rec.recommend(cid, TODAY, mine)
            assert [r.product_id for r in ranked] == [r.product_id for r in bundle.recommendations]
            for r in ranked:
                assert r.product is not None
                assert rating_number(r.product.risk_rating) <= level_number(level)
                if r.product_id in held:
                    assert r.why == "renewal" and r.product.renewable
                if r.why == "pattern":
                    assert r.facts["from_product"] in held
                if r.why == "peers":
                    assert r.facts["segment_en"] == card.segment
            # talking points: life events first, then one point per recommended product only
            names = [NAMES[r.product_id].name_en for r in ranked]
            product_points = bundle.talking_points_en[len(card.life_events):]
            assert len(product_points) == len(names)
            assert all(p.startswith(f"{n}:") for p, n in zip(product_points, names, strict=True))
            for event in card.life_events:
                if event.kind == "maturity":
                    assert any(h.matures_on == event.on and h.product_id in NAMES for h in mine)
