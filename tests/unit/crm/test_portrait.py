"""Portrait in the arrival: life-event dates around month and year ends, masking,
fallback without CRM data, and the arrival's size budget with a real thumbnail."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from edge.config import CrmConfig
from edge.core import life_events as le
from edge.crm.importer import import_file
from edge.crm.outcomes import record_outcome
from edge.crm.portrait import PortraitBuilder
from edge.crm.records import CrmStore
from edge.lobby.arrivals import Sighting, build_arrival
from edge.store.customers import Customer
from edge.vision.imageio import load_image
from mqtt import codec
from mqtt.messages import Arrival, Outcome

W = le.Windows()


def holding(matures: date, amount: float = 100_000) -> le.HoldingFact:
    return le.HoldingFact("H", "TD-1Y", "deposit", amount, matures)


@pytest.mark.parametrize(("today", "matures", "raised"), [
    (date(2026, 12, 20), date(2027, 1, 19), True),   # 30 days ahead, across the year end
    (date(2026, 12, 20), date(2027, 1, 20), False),  # 31 days
    (date(2027, 1, 31), date(2027, 3, 2), True),     # 30 days across a short February
    (date(2027, 1, 31), date(2027, 1, 30), False),   # already matured
    (date(2027, 1, 31), date(2027, 1, 31), True),    # matures today
])
def test_maturities_within_30_days(today: date, matures: date, raised: bool) -> None:
    assert bool(le.maturities([holding(matures)], today, 30)) == raised


@pytest.mark.parametrize(("today", "birthday", "expected"), [
    (date(2026, 12, 30), date(1970, 1, 2), date(2027, 1, 2)),    # next year, within the week
    (date(2026, 12, 30), date(1970, 1, 6), None),                # 7 days ahead: next week
    (date(2026, 12, 30), date(1970, 12, 30), date(2026, 12, 30)),  # today
    (date(2026, 12, 30), date(1970, 12, 29), None),              # yesterday: not raised
    (date(2027, 2, 25), date(1980, 2, 29), date(2027, 2, 28)),   # leap-day birthday, common year
    (date(2028, 2, 25), date(1980, 2, 29), date(2028, 2, 29)),   # leap year
    (date(2026, 4, 28), date(1990, 5, 1), date(2026, 5, 1)),     # across a month end
])
def test_birthdays_this_week(today: date, birthday: date, expected: date | None) -> None:
    found = le.birthday_trigger(birthday, today, 7)
    assert (found[0].on if found else None) == expected


@pytest.mark.parametrize(("today", "expires", "kind"), [
    (date(2026, 12, 31), date(2026, 12, 31), le.ASSESSMENT_EXPIRING),  # last valid day
    (date(2027, 1, 1), date(2026, 12, 31), le.ASSESSMENT_EXPIRED),     # the day after, new year
    (date(2027, 1, 31), date(2027, 3, 2), le.ASSESSMENT_EXPIRING),     # 30 days ahead
    (date(2027, 1, 31), date(2027, 3, 3), None),
    (date(2027, 1, 31), None, le.ASSESSMENT_EXPIRED),                  # never assessed
])
def test_risk_assessment_expiring(today: date, expires: date | None, kind: str | None) -> None:
    found = le.assessment_trigger(expires, today, 30)
    assert (found[0].kind if found else None) == kind


def test_idle_balance_threshold() -> None:
    assert le.idle_trigger(499_999, 500_000) == []
    assert le.idle_trigger(500_000, 500_000)[0].amount == 500_000


# -- the portrait in the arrival ---------------------------------------------------------

TODAY = date(2026, 12, 28)
COLUMNS = "product_id,name_zh,name_en,category,risk_rating,min_amount,tenure_days,sale_from,sale_until"
PRODUCTS = COLUMNS + """
TD-1Y,一年期定期存款,1-year time deposit,deposit,R1,50,365,2020-01-01,
WM-90,稳享90天理财,Steady 90-day plan,wealth,R2,10000,90,2020-01-01,
FD-TECH,科技成长股票基金,Tech growth fund,fund,R5,1000,0,2020-01-01,
"""
CUSTOMERS = """customer_id,name,tier,assigned_rm,risk_level,risk_expires_on,birthday,id_number,account_number
C1,王芳,贵宾,RM-02,C2,2027-01-10,1975-01-02,110101197501021234,6222000011112222
C2,李伟,贵宾,RM-02,C2,2026-12-01,1975-06-02,,
"""
HOLDINGS = """holding_id,customer_id,product_id,category,amount,opened_on,matures_on
H1,C1,TD-1Y,deposit,250000,2026-01-05,2027-01-05
H2,C1,CASA,current,900000,2020-01-01,
H3,C1,FD-TECH,fund,30000,2024-01-01,
H4,C2,TD-1Y,deposit,50000,2026-03-01,2027-03-01
"""
TRANSACTIONS = """transaction_id,customer_id,date,product_id,category,amount,kind
T1,C1,2026-01-05,TD-1Y,deposit,250000,buy
T2,C2,2026-03-01,TD-1Y,deposit,50000,buy
T3,C2,2026-05-01,WM-90,wealth,20000,buy
"""


@pytest.fixture
def builder(tmp_path: Path) -> PortraitBuilder:
    crm = CrmStore.open(tmp_path / "crm.db")
    for kind, text in (("products", PRODUCTS), ("customers", CUSTOMERS), ("holdings", HOLDINGS),
                       ("transactions", TRANSACTIONS)):
        path = tmp_path / f"{kind}.csv"
        path.write_text(text, encoding="utf-8")
        assert not import_file(crm, kind, path).rejected
    b = PortraitBuilder(crm, CrmConfig(segments=2))
    yield b
    b.close()


def store_customer(customer_id: str) -> Customer:
    return Customer(customer_id, "王芳", "贵宾", "RM-02", "", "")


def sighting(crop: object = None) -> Sighting:
    return Sighting("cam-1", datetime(2026, 12, 28, 2, 0, tzinfo=UTC), crop)  # type: ignore[arg-type]


def test_arrival_carries_the_portrait_with_masked_identifiers(builder: PortraitBuilder) -> None:
    arrival = build_arrival("b1", store_customer("C1"), sighting(), portraits=builder, today=TODAY)
    p = arrival.portrait
    assert arrival.customer.masked_id_number == "1101**********1234"
    assert arrival.customer.masked_account == "**** 2222"
    assert p.risk_level == "C2" and p.risk_assessment == "expiring"
    assert p.risk_assessment_expires_on == date(2027, 1, 10)
    assert [h.category for h in p.holdings] == ["活期存款", "定期存款", "基金"]
    assert p.holdings[0].amount_band == "50万-100万"
    kinds = [e.kind for e in p.life_events]
    assert kinds == [le.ASSESSMENT_EXPIRING, le.MATURITY, le.IDLE_BALANCE, le.BIRTHDAY]
    assert p.life_events[1].on == date(2027, 1, 5)
    assert "2027年1月5日" in p.life_events[1].note
    assert arrival.recommendations and arrival.talking_points and arrival.talking_points_en
    assert all(r.product_id != "FD-TECH" for r in arrival.recommendations)  # R5 above C2
    payload = codec.encode(arrival).decode()
    assert "110101197501021234" not in payload and "6222000011112222" not in payload


def test_expired_assessment_recommends_redoing_it(builder: PortraitBuilder) -> None:
    arrival = build_arrival("b1", store_customer("C2"), sighting(), portraits=builder, today=TODAY)
    assert arrival.portrait.risk_assessment == "expired"
    assert [r.product_id for r in arrival.recommendations] == ["RISK-ASSESSMENT"]
    assert "12月1日" in arrival.recommendations[0].reason
    assert "1 Dec" in arrival.recommendations[0].reason_en


def test_customer_without_crm_data_gets_the_store_portrait(builder: PortraitBuilder) -> None:
    arrival = build_arrival("b1", store_customer("C404"), sighting(), portraits=builder, today=TODAY)
    assert arrival.portrait.segment == "贵宾" and arrival.recommendations == []
    assert arrival.portrait.risk_assessment == "unknown"


def test_recommendations_shown_are_remembered_per_visit(builder: PortraitBuilder) -> None:
    visit = "7d1f4c1e-2b7a-4c59-9b7e-0c6a2f0e9a11"
    arrival = build_arrival("b1", store_customer("C1"), sighting(), visit, portraits=builder, today=TODAY)
    build_arrival("b1", store_customer("C1"), sighting(), visit, portraits=builder, today=TODAY)
    rows = builder.crm.execute("SELECT product_id, rm_id, shown_on FROM crm_shown WHERE visit_id = ?",
                               (visit,)).fetchall()
    assert sorted(r[0] for r in rows) == sorted(r.product_id for r in arrival.recommendations)
    assert {(r[1], r[2]) for r in rows} == {("RM-02", "2026-12-28")}


def test_a_full_portrait_with_a_thumbnail_fits_the_payload_cap(builder: PortraitBuilder, tmp_path: Path,
                                                               data_dir: Path) -> None:
    long_name = "超长名称" * 30  # 120 characters, the catalogue's limit
    many = "holding_id,customer_id,product_id,category,amount,opened_on,matures_on\n" + "".join(
        f"M{i},C1,TD-1Y,deposit,{1000 + i},2026-01-01,{TODAY + timedelta(days=i % 30)}\n" for i in range(60))
    (tmp_path / "many.csv").write_text(many, encoding="utf-8")
    import_file(builder.crm, "holdings", tmp_path / "many.csv")
    builder.crm.execute("UPDATE crm_products SET name_zh = ?, name_en = ?", (long_name, "x" * 120))
    builder.crm.execute("UPDATE crm_meta SET value = value + 1 WHERE key = 'data_version'")
    photo = next((data_dir / "faces").rglob("*.jpg"))
    arrival = build_arrival("b1", store_customer("C1"), sighting(load_image(photo)), portraits=builder,
                            today=TODAY)
    assert len(arrival.portrait.life_events) == 20 and arrival.thumbnail_jpeg_b64
    payload = codec.encode(arrival)
    assert len(payload) < codec.DEFAULT_MAX_PAYLOAD
    assert isinstance(codec.decode(payload), Arrival)


def test_arrivals_and_outcomes_from_several_threads(builder: PortraitBuilder) -> None:
    errors: list[BaseException] = []

    def arrivals() -> None:
        try:
            for _ in range(20):
                visit = str(uuid.uuid4())
                build_arrival("b1", store_customer("C1"), sighting(), visit, portraits=builder, today=TODAY)
                record_outcome(builder.crm, Outcome(
                    branch_id="b1", arrival_id=str(uuid.uuid4()), visit_id=visit, customer_id="C1",
                    rm_id="RM-02", device_id="pad-1", result="contacted"))
        except BaseException as err:  # reported below, in the test's thread
            errors.append(err)

    threads = [threading.Thread(target=arrivals) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert builder.crm.execute("SELECT COUNT(*) FROM crm_outcomes").fetchone()[0] == 80
    assert builder.crm.execute("SELECT COUNT(DISTINCT visit_id) FROM crm_shown").fetchone()[0] == 80


def test_empty_crm_gives_no_portrait_and_arrivals_still_build(tmp_path):
    """A branch without a CRM import yet: arrivals fall back to the store-only portrait."""
    from datetime import UTC, datetime

    from edge.config import EdgeConfig
    from edge.crm.portrait import PortraitBuilder
    from edge.crm.records import CrmStore
    from edge.lobby.arrivals import Sighting, build_arrival
    from edge.store.customers import Customer

    builder = PortraitBuilder(CrmStore.open(tmp_path / "crm.db"), EdgeConfig().crm)
    try:
        assert builder.build("C1", datetime.now(UTC).date()) is None
        customer = Customer("C1", "Demo", "private", "RM-01", "", "")
        arrival = build_arrival("b1", customer, Sighting("cam", datetime.now(UTC), None), portraits=builder)
        assert arrival.portrait.segment == "private"
        assert arrival.recommendations == []
    finally:
        builder.close()


def test_a_new_day_is_served_by_yesterdays_model_while_todays_is_fitted(builder: PortraitBuilder) -> None:
    yesterday = builder.recommender(TODAY)
    tomorrow = TODAY + timedelta(days=1)
    assert builder.recommender(tomorrow) is yesterday  # no arrival waits for a fit
    builder.wait_for_refit()
    fitted = builder.recommender(tomorrow)
    assert fitted is not yesterday and fitted is not None and fitted.as_of == tomorrow


def test_an_import_refits_at_once_so_an_imported_customer_has_a_portrait(builder: PortraitBuilder,
                                                                        tmp_path: Path) -> None:
    assert builder.recommender(TODAY) is not None
    (tmp_path / "new.csv").write_text(
        "customer_id,name,tier,assigned_rm,risk_level,risk_expires_on\nC3,张三,贵宾,RM-02,C3,2028-01-01\n",
        encoding="utf-8")
    assert not import_file(builder.crm, "customers", tmp_path / "new.csv").rejected
    bundle = builder.build("C3", TODAY + timedelta(days=1))
    assert bundle is not None and bundle.portrait.risk_level == "C3"


def test_a_failed_background_refit_keeps_yesterdays_model_and_is_logged_once(
        builder: PortraitBuilder, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from edge.crm import portrait

    yesterday = builder.recommender(TODAY)

    def broken(*_: object, **__: object) -> None:
        raise MemoryError("the branch PC ran out of memory")

    monkeypatch.setattr(portrait, "Recommender", broken)
    tomorrow = TODAY + timedelta(days=1)
    for _ in range(3):
        assert builder.recommender(tomorrow) is yesterday
        builder.wait_for_refit()
    assert sum("refitting the recommender" in r.getMessage() for r in caplog.records) == 1
    assert builder.build("C1", tomorrow) is not None
