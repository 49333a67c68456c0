"""The collector with a real PostgreSQL and a real central Mosquitto: outcomes from a branch's
bridge user reach the database exactly once through a database crash, a collector restart
and re-sent messages; counts, purchase links and fleet state make the report and fleet view."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta

import psycopg
import pytest

from hq.cli import main as hq_main
from hq.collector import Collector
from mqtt.client import BranchClient, Identity
from mqtt.codec import encode
from mqtt.messages import ArrivalCounts, DeviceStatus, FleetState, Outcome, PurchaseLink, ShownCount
from tests.hq_fixtures import login, start_central
from tests.mqtt_fixtures import wait_until
from tests.postgres_fixtures import running_postgres

DAY = date(2026, 11, 30)


@pytest.fixture
def postgres():
    yield from running_postgres()


@pytest.fixture
def central(tmp_path):
    broker, info = start_central(tmp_path, ["b1"])
    yield info
    broker.stop()


def branch_client(tmp_path, central, device: str, role: str = "rm") -> BranchClient:
    """What branch b1's bridge forwards, published as its bridge user."""
    cfg = login(tmp_path, central, "bridge-b1", device)
    client = BranchClient(cfg, Identity("b1", device, role))  # type: ignore[arg-type]
    client.start()
    assert client.wait_connected(10)
    return client


def collector(tmp_path, central, dsn: str) -> Collector:
    c = Collector(dsn, login(tmp_path, central, "hq-collector", "hq-collector"), tmp_path / "spool.db")
    c.start()
    assert c.client.wait_connected(10)
    return c


def outcome(n: int, result: str = "contacted", products: tuple[str, ...] = ()) -> Outcome:
    return Outcome(id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"outcome-{n}")), branch_id="b1",
                   arrival_id=str(uuid.uuid4()), visit_id=str(uuid.uuid4()), customer_id=f"C{n:05d}",
                   rm_id="RM-01", device_id="rm-1", result=result, product_ids=list(products),
                   note="Customer Zhang prefers mornings")


def rows(dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(sql).fetchall()


def outcome_count(dsn: str) -> int:
    try:
        return int(rows(dsn, "SELECT COUNT(*) FROM outcomes")[0][0])
    except psycopg.Error:
        return -1


def test_collector_survives_database_and_collector_restarts_nothing_lost_or_doubled(
        tmp_path, central, postgres):
    rm = branch_client(tmp_path, central, "rm-1")
    first = collector(tmp_path, central, postgres.dsn)
    try:
        for n in range(50):
            rm.publish(outcome(n))
        assert wait_until(lambda: outcome_count(postgres.dsn) == 50, 30)

        postgres.stop("immediate")  # the database crashes
        for n in range(50, 100):
            rm.publish(outcome(n))
        assert wait_until(lambda: first.stats().get("db_unavailable", 0) >= 1
                          and first.stats()["spooled"] > 0, 30), first.stats()
        postgres.start()
        assert wait_until(lambda: outcome_count(postgres.dsn) == 100, 60), first.stats()
    finally:
        first.stop()

    for n in range(100, 150):  # the collector is down: its persistent session queues these
        rm.publish(outcome(n))
    assert wait_until(lambda: len(rm.outbox) == 0, 30)
    second = collector(tmp_path, central, postgres.dsn)
    try:
        assert wait_until(lambda: outcome_count(postgres.dsn) == 150, 60), second.stats()
        for n in range(0, 150, 15):  # the same events again (a branch re-sending after a crash)
            rm.publish_raw(rm.topics.outcomes_of("rm-1"), encode(outcome(n)))
        marker = outcome(999)
        rm.publish(marker)
        marker_sql = f"SELECT 1 FROM outcomes WHERE event_id = '{marker.id}'"
        assert wait_until(lambda: rows(postgres.dsn, marker_sql), 30)
    finally:
        second.stop()
        rm.stop()
    assert rows(postgres.dsn, "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM outcomes") == [(151, 151)]
    expected = {str(uuid.uuid5(uuid.NAMESPACE_URL, f"outcome-{n}")) for n in [*range(150), 999]}
    assert {str(r[0]) for r in rows(postgres.dsn, "SELECT event_id FROM outcomes")} == expected


def test_the_data_platform_holds_no_customer_ids_names_or_notes(tmp_path, central, postgres):
    rm = branch_client(tmp_path, central, "rm-1")
    c = collector(tmp_path, central, postgres.dsn)
    try:
        rm.publish(outcome(1))
        assert wait_until(lambda: outcome_count(postgres.dsn) == 1, 30)
    finally:
        c.stop()
        rm.stop()
    columns = {r[0] for r in rows(postgres.dsn, "SELECT column_name FROM information_schema.columns "
                                                "WHERE table_schema = 'public'")}
    assert not columns & {"customer_id", "note", "display_name", "name", "thumbnail_jpeg_b64", "embedding"}
    with psycopg.connect(postgres.dsn) as conn:
        dump = json.dumps(conn.execute("SELECT row_to_json(o) FROM outcomes o").fetchall(), default=str)
    assert "C00001" not in dump and "Zhang" not in dump


def test_report_gives_conversion_by_dimension_and_the_fleet_view(tmp_path, central, postgres, capsys):
    rm = branch_client(tmp_path, central, "rm-1")
    edge = branch_client(tmp_path, central, "edge-1", role="edge")
    c = collector(tmp_path, central, postgres.dsn)
    now = datetime.now(UTC)
    try:
        edge.publish(ArrivalCounts(branch_id="b1", day=DAY, arrivals=12, shown=[
            ShownCount(rm_id="RM-01", product_id="td-3y", segment="affluent", shown=10),
            ShownCount(rm_id="RM-02", product_id="fund-a", segment="mass", shown=5)]))
        for n, (rm_id, product, segment) in enumerate([("RM-01", "td-3y", "affluent")] * 3
                                                      + [("RM-02", "fund-a", "mass")]):
            edge.publish(PurchaseLink(branch_id="b1", visit_id=str(uuid.uuid4()), rm_id=rm_id,
                                      product_id=product, segment=segment, shown_on=DAY,
                                      purchased_on=DAY + timedelta(days=3), amount=100_000.0 + n))
        for n in range(2):
            rm.publish(outcome(n, "product_sold", ("td-3y",)))
        edge.update_status(DeviceStatus(branch_id="b1", device_id="edge-1", role="edge", state="online"))
        edge.publish(FleetState(branch_id="b1", model_pack="default", recognizer_sha256="a" * 64,
                                gallery_version=2, templates=40, last_erasure_id=str(uuid.uuid4()),
                                last_erasure_at=now))
        assert wait_until(lambda: c.stats().get("purchase_links", 0) == 4 and c.stats().get("fleet_state", 0)
                          and c.stats().get("outcomes", 0) == 2 and c.stats().get("arrival_counts", 0), 30), \
            c.stats()
    finally:
        c.stop()
        rm.stop()
        edge.stop()
    config = tmp_path / "hq.toml"
    config.write_text(f'[postgres]\ndsn = "{postgres.dsn}"\n')
    capsys.readouterr()
    assert hq_main(["--config", str(config), "report", "--out", str(tmp_path / "report"), "--json",
                    "--since", DAY.isoformat(), "--until", (DAY + timedelta(days=30)).isoformat()]) == 0
    report = json.loads(capsys.readouterr().out)
    by = {(r["dimension"], r["key"]): r for r in report["conversion"]}
    assert by["product", "td-3y"]["recommended"] == 10 and by["product", "td-3y"]["converted"] == 3
    assert by["product", "td-3y"]["conversion_rate"] == 0.3
    assert by["rm", "RM-02"]["converted"] == 1 and by["segment", "mass"]["recommended"] == 5
    assert by["branch", "b1"]["recommended"] == 15 and by["branch", "b1"]["converted"] == 4
    assert by["branch", "b1"]["sales_amount"] == 400_006.0
    (branch,) = report["fleet"]
    assert {k: branch[k] for k in ("branch_id", "online", "edge_devices", "model_pack", "gallery_version",
                                   "templates")} == {"branch_id": "b1", "online": True, "edge_devices": 1,
                                                     "model_pack": "default", "gallery_version": 2,
                                                     "templates": 40}
    assert branch["last_erasure_at"] and branch["last_seen"] and branch["last_erasure_id"]
    assert report["fleet_summary"]["online"] == 1
    assert (tmp_path / "report" / "conversion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    lines = (tmp_path / "report" / "conversion.csv").read_text().splitlines()
    assert lines[0] == "dimension,key,recommended,converted,conversion_rate,sales_amount,reported_sold"
    assert "product,td-3y,10,3,0.3,300003.0,2" in lines
