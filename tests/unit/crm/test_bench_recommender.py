"""``branch-edge bench recommender``: the synthetic CRM and the report's shape (no timings asserted)."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from edge.cli import main
from edge.tools.bench.recommender import BENCH_DAY, PRODUCTS, synthetic_crm


def test_the_synthetic_crm_has_styles_history_and_no_future() -> None:
    products, people, holdings, buys = synthetic_crm(400, seed=3)
    assert len(products) == len(PRODUCTS) == 24 and len(people) == 400
    assert {p.customer_id for p in people} >= {h.customer_id for h in holdings}
    assert all(t.on < BENCH_DAY for t in buys) and all(h.opened_on < BENCH_DAY for h in holdings)
    assert len(buys) > 100 and len(Counter(t.product_id for t in buys)) > 10
    assert synthetic_crm(400, seed=3)[2] == holdings  # seeded


def test_bench_recommender_reports_training_and_scoring(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "recommender", "--customers", "300", "--arrivals", "20", "--threads", "1",
                 "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["bench"] == "recommender" and report["customers"] == 300 and report["threads"] == 1
    assert 0 < report["training_rows"] <= 300 * report["months"] and report["training_rows"] % 300 == 0
    assert report["train_s"] >= 0 and report["peak_rss_mb"] > 0
    assert report["scoring_ms"]["count"] == 20
    assert 0 <= report["scoring_ms"]["p50"] <= report["scoring_ms"]["p95"] <= report["scoring_ms"]["max"]
    assert report["target"] == {"scoring_p95_ms": 10.0}
