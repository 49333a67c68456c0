"""Outcome linking: RM outcomes stored against visits, purchases attributed within the
window, the conversion report as CSV and PNG."""

from __future__ import annotations

import csv
import json
import uuid
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from edge.cli import main
from edge.crm.outcomes import OutcomeSink, conversion, link_sales, record_outcome, record_shown, record_visit
from edge.crm.recommend import Recommended
from edge.crm.records import CrmStore, TransactionRecord
from mqtt import codec
from mqtt.dedup import SeenIds
from mqtt.messages import Outcome
from mqtt.receiver import Delivery, Receiver
from mqtt.roster import Rejected
from mqtt.topics import topic_for

VISIT_1, VISIT_2 = str(uuid.uuid4()), str(uuid.uuid4())


@pytest.fixture
def crm(tmp_path: Path) -> CrmStore:
    store = CrmStore.open(tmp_path / "crm.db")
    recs = [Recommended("TD-1Y", 1.0, "maturity"), Recommended("WM-90", 0.5, "peers"),
            Recommended("RISK-ASSESSMENT", 1.0, "assessment")]
    record_shown(store, VISIT_1, "C1", recs, rm_id="RM-01", segment="conservative",
                 shown_on=date(2026, 10, 1))
    record_shown(store, VISIT_2, "C1", recs[:1], rm_id="RM-02", segment="conservative",
                 shown_on=date(2026, 11, 20))
    yield store
    store.close()


def buy(crm: CrmStore, txn: str, on: date, product: str = "TD-1Y", customer: str = "C1") -> None:
    crm.upsert("transactions", [TransactionRecord(txn, customer, on, product, "deposit", 100_000, "buy")])


def links(crm: CrmStore) -> dict[str, tuple[str, str]]:
    rows = crm.execute("SELECT transaction_id, visit_id, rm_id FROM crm_attributions").fetchall()
    return {r[0]: (r[1], r[2]) for r in rows}


def outcome(visit: str, rm: str, result: str = "product_sold", products: list[str] | None = None) -> Outcome:
    return Outcome(branch_id="b1", arrival_id=str(uuid.uuid4()), visit_id=visit, customer_id="C1",
                   rm_id=rm, device_id="pad-1", result=result, product_ids=products or ["WM-90"])


def test_purchases_link_within_the_window_only(crm: CrmStore) -> None:
    buy(crm, "T-before", date(2026, 9, 30), "WM-90")   # before the visit
    buy(crm, "T-same-day", date(2026, 10, 1), "WM-90")
    buy(crm, "T-day-90", date(2026, 12, 30), "WM-90")  # 90 days after the visit: still in
    buy(crm, "T-day-91", date(2026, 12, 31), "WM-90")  # 91 days: out
    buy(crm, "T-other-product", date(2026, 10, 2), "FD-EQ")
    buy(crm, "T-other-customer", date(2026, 10, 2), "WM-90", customer="C2")
    assert link_sales(crm, window_days=90) == 2
    assert set(links(crm)) == {"T-same-day", "T-day-90"}
    assert link_sales(crm, window_days=90) == 0  # idempotent


def test_the_latest_visit_within_the_window_gets_the_sale(crm: CrmStore) -> None:
    buy(crm, "T1", date(2026, 11, 25))  # both visits recommended TD-1Y; the later one wins
    buy(crm, "T2", date(2026, 11, 10))  # only the first visit was before it
    link_sales(crm, window_days=90)
    assert links(crm) == {"T1": (VISIT_2, "RM-02"), "T2": (VISIT_1, "RM-01")}


def test_outcomes_are_stored_once_and_credit_the_reporting_rm(crm: CrmStore) -> None:
    message = outcome(VISIT_1, "RM-07")
    assert record_outcome(crm, message)
    assert not record_outcome(crm, message)  # redelivery
    buy(crm, "T1", date(2026, 10, 3), "WM-90")
    link_sales(crm, window_days=30)
    assert links(crm) == {"T1": (VISIT_1, "RM-07")}
    stored = crm.execute("SELECT visit_id, result, product_ids FROM crm_outcomes").fetchall()
    assert stored == [(VISIT_1, "product_sold", '["WM-90"]')]


def test_outcome_messages_from_the_receiver_are_stored(crm: CrmStore, tmp_path: Path) -> None:
    payload = codec.encode(outcome(VISIT_2, "RM-02", "follow_up", ["TD-1Y"]))
    # two receivers with their own de-dup state: a redelivery after a restart is still stored once
    for name in ("seen-1.db", "seen-2.db"):
        receiver = Receiver(SeenIds(tmp_path / name), handler=OutcomeSink(crm))
        receiver.accept(topic_for("outcome", "b1", "pad-1"), payload)
    assert crm.execute("SELECT visit_id, result FROM crm_outcomes").fetchall() == [(VISIT_2, "follow_up")]


def test_conversion_by_rm_product_and_segment(crm: CrmStore) -> None:
    record_outcome(crm, outcome(VISIT_1, "RM-01"))
    buy(crm, "T1", date(2026, 10, 5), "WM-90")
    link_sales(crm, window_days=90)
    rows = {(r["dimension"], r["key"]): r for r in conversion(crm, date(2026, 10, 1), date(2026, 11, 30))}
    assert rows[("rm", "RM-01")]["recommended"] == 2 and rows[("rm", "RM-01")]["converted"] == 1
    assert rows[("rm", "RM-02")]["conversion_rate"] == 0.0
    assert rows[("product", "WM-90")]["conversion_rate"] == 1.0
    assert rows[("product", "WM-90")]["reported_sold"] == 1
    assert rows[("product", "TD-1Y")]["recommended"] == 2
    assert rows[("segment", "conservative")]["sales_amount"] == 100_000
    october = conversion(crm, date(2026, 10, 1), date(2026, 10, 31))
    assert {r["key"] for r in october if r["dimension"] == "rm"} == {"RM-01"}


def test_report_command_writes_csv_and_png(crm: CrmStore, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    buy(crm, "T1", date(2026, 10, 5), "WM-90")
    out = tmp_path / "reports"
    code = main(["report", "outcomes", "--from", "2026-10-01", "--to", "2026-12-31", "--out", str(out),
                 "--db", str(crm.path), "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0 and result["linked_now"] == 1
    with Path(result["csv"]).open(encoding="utf-8") as f:
        table = list(csv.DictReader(f))
    assert {"rm", "product", "segment"} == {r["dimension"] for r in table}
    png = Path(result["png"]).read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 5000
    assert main(["report", "outcomes", "--from", "2026-12-01", "--to", "2026-11-01",
                 "--db", str(crm.path)]) == 2


def test_outcome_timestamps_round_trip(crm: CrmStore) -> None:
    message = Outcome(branch_id="b1", arrival_id=str(uuid.uuid4()), visit_id=VISIT_1, customer_id="C1",
                      rm_id="RM-01", device_id="pad-1", result="follow_up", follow_up_on=date(2027, 1, 4),
                      sent_at=datetime(2026, 12, 31, 23, 59, tzinfo=UTC))
    record_outcome(crm, message)
    row = crm.execute("SELECT follow_up_on, sent_at FROM crm_outcomes").fetchone()
    assert row == ("2027-01-04", "2026-12-31T23:59:00+00:00")


def test_report_table_has_column_headers(crm: CrmStore, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "outcomes", "--from", "2026-10-01", "--to", "2026-12-31",
                 "--out", str(tmp_path / "reports"), "--db", str(crm.path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["by", "key", "converted/shown", "rate", "sales", "amount",
                                "RM-reported", "sold"]
    expected = next(r for r in conversion(crm, date(2026, 10, 1), date(2026, 12, 31)) if r["key"] == "RM-01")
    rm_01 = next(line.split() for line in lines if "RM-01" in line)
    assert rm_01[:3] == ["rm", "RM-01", f"{expected['converted']}/{expected['recommended']}"]


def test_report_on_an_empty_range_says_so_and_draws_nothing(crm: CrmStore, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "reports"
    argv = ["report", "outcomes", "--from", "2025-01-01", "--to", "2025-01-31", "--out", str(out),
            "--db", str(crm.path)]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "no recommendations were shown from 2025-01-01 to 2025-01-31" in text
    assert sorted(p.name for p in out.iterdir()) == ["outcomes-2025-01-01-2025-01-31.csv"]
    with (out / "outcomes-2025-01-01-2025-01-31.csv").open(encoding="utf-8") as f:
        assert list(csv.DictReader(f)) == []
    assert main([*argv, "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert (result["empty"], result["png"], result["rows"]) == (True, None, [])


def test_an_outcome_must_be_for_an_announced_visit_and_its_customer(crm: CrmStore) -> None:
    """A tablet cannot report on a visit the edge never announced, nor on another customer
    than the visit's (it would take the credit for that customer's purchases)."""
    other_customer = Outcome(branch_id="b1", arrival_id=str(uuid.uuid4()), visit_id=VISIT_1, customer_id="C2",
                             rm_id="RM-01", device_id="pad-1", result="product_sold", product_ids=["TD-1Y"])
    for message, reason in ((outcome(str(uuid.uuid4()), "RM-01"), "unknown_visit"),
                            (other_customer, "not_the_visits_customer")):
        with pytest.raises(Rejected) as err:
            record_outcome(crm, message)
        assert err.value.reason == reason
        with pytest.raises(Rejected):
            OutcomeSink(crm)(Delivery("t", message))  # the receiver counts it
    assert crm.execute("SELECT COUNT(*) FROM crm_outcomes").fetchone() == (0,)


def test_a_visit_is_remembered_even_for_a_customer_the_crm_does_not_know(crm: CrmStore) -> None:
    visit = str(uuid.uuid4())
    record_visit(crm, visit, "C-unknown", date(2026, 10, 2))
    message = Outcome(branch_id="b1", arrival_id=str(uuid.uuid4()), visit_id=visit, customer_id="C-unknown",
                      rm_id="RM-01", device_id="pad-1", result="contacted")
    assert record_outcome(crm, message)


def test_a_parked_outcome_found_wrong_when_stored_is_dropped_and_counted(
        crm: CrmStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """The visit check runs again in the storing transaction (the first one may not have been
    possible: store busy); an outcome refused there is logged, counted and dropped, and those
    parked behind it are still stored."""
    sink = OutcomeSink(crm)
    monkeypatch.setattr(sink, "_precheck", lambda outcome: None)  # as if the store had been busy
    wrong = outcome(str(uuid.uuid4()), "RM-01")
    right = outcome(VISIT_1, "RM-01")
    sink(Delivery("t", wrong))
    sink(Delivery("t", right))
    assert sink.rejected == 1 and not sink.parked
    assert crm.execute("SELECT message_id FROM crm_outcomes").fetchall() == [(right.id,)]
