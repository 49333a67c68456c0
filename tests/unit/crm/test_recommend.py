"""Recommender: suitability first (property tests), triggers, targeting, evaluation."""

from __future__ import annotations

import copy
import dataclasses
import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.cli import main
from edge.config import CrmConfig
from edge.core.suitability import (
    CUSTOMER_LEVELS,
    PRODUCT_RATINGS,
    RiskProfile,
    Terms,
    level_number,
    rating_number,
    suitable,
    unsuitability,
)
from edge.crm.catalogue import CATEGORIES, Product
from edge.crm.evaluation import evaluate_recommender
from edge.crm.recommend import ASSESSMENT_PRODUCT, Population, Recommender
from edge.crm.records import CrmStore, HoldingRecord
from edge.tools.demo.crm import Person, load_demo_crm

TODAY = date(2026, 12, 30)
PEOPLE = [Person(f"C2026{i + 1:05d}", f"客户{i}", ["私人银行", "财富管理", "贵宾"][i % 3], "RM-01")
          for i in range(20)]


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("crm")
    load_demo_crm(folder / "crm.db", PEOPLE, TODAY, folder / "csv", extra=150)
    return folder / "crm.db"


@pytest.fixture(scope="module")
def recommender(demo_db: Path) -> Recommender:
    with CrmStore.open(demo_db) as crm:
        return Recommender(Population.load(crm), CrmConfig(), as_of=TODAY)


# -- pure suitability ------------------------------------------------------------------

days = st.dates(min_value=date(2020, 1, 1), max_value=date(2030, 12, 31))
profiles = st.builds(RiskProfile, st.sampled_from(CUSTOMER_LEVELS), st.none() | days)
terms = st.builds(Terms, st.just("P1"), st.sampled_from(PRODUCT_RATINGS),
                  st.floats(0, 5e6), st.none() | days, st.none() | days)


@given(profiles, terms, days, st.floats(0, 1e7))
def test_suitable_means_every_rule_holds(profile: RiskProfile, t: Terms, today: date, money: float) -> None:
    ok = (profile.expires_on is not None and today <= profile.expires_on
          and rating_number(t.risk_rating) <= level_number(profile.level)
          and (t.sale_from is None or t.sale_from <= today)
          and (t.sale_until is None or today <= t.sale_until)
          and money >= t.min_amount)
    assert suitable(profile, t, today, money) == ok


def test_rules_are_checked_assessment_first() -> None:
    expired = RiskProfile("C5", TODAY - timedelta(days=1))
    risky = Terms("P", "R5", 0, None, None)
    assert unsuitability(expired, risky, TODAY, 1e9) == "assessment_expired"
    assert unsuitability(RiskProfile("C4", TODAY), risky, TODAY, 1e9) == "risk_too_high"
    assert unsuitability(RiskProfile("C5", TODAY), risky, TODAY, 1e9) is None  # valid on its last day


# -- the recommender never offers an unsuitable product ----------------------------------

products = st.lists(st.builds(
    Product, st.uuids().map(lambda u: f"P-{u.hex[:8]}"), st.just("产品"), st.just("product"),
    st.sampled_from(CATEGORIES), st.sampled_from(PRODUCT_RATINGS), st.floats(0, 3e6),
    st.sampled_from([0, 90, 365]),
    st.none() | st.integers(-400, 400).map(lambda d: TODAY + timedelta(days=d)),
    st.none() | st.integers(-400, 400).map(lambda d: TODAY + timedelta(days=d)),
    st.sampled_from([(), ("私人银行",), ("贵宾", "财富管理")]),
), min_size=1, max_size=25, unique_by=lambda p: p.product_id)


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(catalogue=products, who=st.integers(0, 169), level=st.sampled_from(CUSTOMER_LEVELS),
       expiry=st.none() | st.integers(-60, 400), balance=st.floats(0, 4e6),
       maturing=st.lists(st.tuples(st.integers(-5, 60), st.floats(0, 2e6)), max_size=3),
       shift=st.integers(-400, 400))
def test_no_unsuitable_product_is_ever_recommended(
    recommender: Recommender, *, catalogue: list[Product], who: int, level: str, expiry: int | None,
    balance: float, maturing: list[tuple[int, float]], shift: int,
) -> None:
    today = TODAY + timedelta(days=shift)
    cid = sorted(recommender.pop.customers)[who]
    customer = recommender.pop.customers[cid]
    expires = None if expiry is None else today + timedelta(days=expiry)
    changed = dataclasses.replace(customer, risk_level=level, risk_expires_on=expires)
    holdings = [HoldingRecord("H0", cid, "CASA", "current", balance, date(2020, 1, 1), None)] + [
        HoldingRecord(f"H{i + 1}", cid, "TD-1Y", "deposit", amount, date(2020, 1, 1),
                      today + timedelta(days=d))
        for i, (d, amount) in enumerate(maturing)]
    rec = copy.copy(recommender)
    rec.pop = Population({**recommender.pop.customers, cid: changed}, {p.product_id: p for p in catalogue},
                         recommender.pop.buys, recommender.pop.holdings)
    result = rec.recommend(cid, today, holdings)
    if expires is None or today > expires:
        assert [r.product_id for r in result] == [ASSESSMENT_PRODUCT]
        return
    investable = balance + sum(a for d, a in maturing if 0 <= d <= CrmConfig().maturity_days)
    segment_names = set(rec.segment(cid))
    assert len(result) <= CrmConfig().recommendations
    for r in result:
        p = r.product
        assert p is not None and r.product_id != ASSESSMENT_PRODUCT
        assert rating_number(p.risk_rating) <= level_number(level)
        assert p.sale_from is None or p.sale_from <= today
        assert p.sale_until is None or today <= p.sale_until
        assert p.min_amount <= investable + 1e-6
        assert not p.segments or ({changed.tier} | segment_names) & set(p.segments)


def test_a_maturing_deposit_brings_a_rollover_with_its_date(recommender: Recommender) -> None:
    cid = "C202600002"
    matures = TODAY + timedelta(days=6)  # 5 January: across the year end
    held = [HoldingRecord("H1", cid, "TD-1Y", "deposit", 800_000, date(2026, 1, 5), matures)]
    customer = recommender.pop.customers[cid]
    rec = copy.copy(recommender)
    rec.pop = copy.copy(recommender.pop)
    balanced = dataclasses.replace(customer, risk_level="C3", risk_expires_on=date(2027, 12, 31))
    rec.pop.customers = {**recommender.pop.customers, cid: balanced}
    result = rec.recommend(cid, TODAY, held)
    rollovers = [r for r in result if r.why == "maturity"]
    assert rollovers
    assert all(r.facts["on"] == "2027-01-05" and r.product.category in ("deposit", "wealth")
               for r in rollovers)
    without = rec.recommend(cid, TODAY, [])
    assert all(r.why != "maturity" for r in without)


def test_peer_reasons_quote_the_segment_share(recommender: Recommender) -> None:
    valid = [c for c, v in recommender.pop.customers.items() if v.risk_expires_on >= TODAY]
    peers = [r for cid in valid[:30] for r in recommender.recommend(cid, TODAY, []) if r.why == "peers"]
    assert peers
    for r in peers:
        assert 0 <= r.facts["share"] <= 100
        assert r.facts["segment_zh"] and r.facts["segment_en"]


# -- offline evaluation ------------------------------------------------------------------

def test_evaluation_reports_hit_rate_and_coverage_against_the_baseline(demo_db: Path) -> None:
    with CrmStore.open(demo_db) as crm:
        report = evaluate_recommender(crm, CrmConfig(), horizon_days=180)
    assert report["cutoff"] == (TODAY - timedelta(days=180)).isoformat()
    assert report["customers_evaluated"] > 100
    for name in ("recommender", "most_popular_baseline", "most_popular_unheld_baseline"):
        assert 0 <= report[name]["hit_rate_at_3"] <= 1
        assert 0 < report[name]["coverage"] <= 1
        assert 0 <= report[name]["map_at_7"] <= 1 and 0 <= report[name]["map_at_7_all_purchases"] <= 1
    # the generated customers follow investing styles that the models can learn; the baseline
    # "most popular" may offer what the customer holds, so its repeat purchases count for it
    ours, popular, unheld = (report[n] for n in ("recommender", "most_popular_baseline",
                                                  "most_popular_unheld_baseline"))
    assert ours["hit_rate_at_3"] > popular["hit_rate_at_3"] > unheld["hit_rate_at_3"]
    assert ours["new_product_hit_rate_at_3"] > max(popular["new_product_hit_rate_at_3"],
                                                   unheld["new_product_hit_rate_at_3"])
    assert ours["map_at_7"] > max(popular["map_at_7"], unheld["map_at_7"])
    assert ours["coverage"] > popular["coverage"]


def test_evaluate_recommender_cli_prints_json(demo_db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["evaluate-recommender", "--db", str(demo_db), "--horizon", "90", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["horizon_days"] == 90 and report["k"] == 3
    for name in ("recommender", "recommender_without_triggers", "most_popular_baseline",
                 "most_popular_unheld_baseline"):
        assert {"hit_rate_at_3", "hits", "new_product_hit_rate_at_3", "customers_with_new_products",
                "coverage", "assessment_only", "map_at_7", "map_at_7_all_purchases"} <= set(report[name])
    assert main(["evaluate-recommender", "--db", str(demo_db), "--horizon", "90"]) == 0
    text = capsys.readouterr().out
    assert "most_popular_unheld_baseline" in text and "MAP@7" in text
    assert main(["evaluate-recommender", "--db", str(demo_db), "--horizon", "2"]) == 2
