"""Privacy end to end, with the real models, a real Mosquitto and the real CLI.

One scenario (module fixture ``run``), then one test per claim:

1. customers with CRM data (full ID and account numbers in the import files)
   are enrolled; the daemon watches a looped synthetic lobby while the broker
   is down, so arrivals with live thumbnails wait in its outbox;
2. one customer withdraws consent: ``branch-edge erase`` while the daemon runs;
3. the broker comes back; an RM PAD receives arrivals and sends an outcome;
   the video loops once more past the erased customer's walk.

Every log record at INFO and above from all of it is kept (JSON, as the
daemon writes them) and scanned.  Enrolment without consent being refused is
tested in tests/integration/test_enrol.py (``test_customers_without_consent_are_refused``,
``test_erase_leaves_nothing_behind_and_needs_new_consent``).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import io
import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from edge import cli
from edge.core.idcard_rules import add_years, age_on, expected_years, mod11_2_check_char
from edge.counter.policies import load_policies
from edge.counter.service import AuthService
from edge.crm.portrait import PortraitBuilder
from edge.crm.records import CrmStore
from edge.enrol.enrolment import enrol_folder
from edge.lobby.daemon import EdgeDaemon
from edge.lobby.inbound import edge_inbound
from edge.logging_setup import JsonFormatter
from edge.store.database import open_configured
from edge.store.retention import RetentionJob
from edge.tools.demo.crm import Person, load_demo_crm
from mqtt.client import BranchClient, Identity
from mqtt.codec import decode, encode
from mqtt.messages import Arrival, AuthRequest, AuthResponse, CardFields, Outcome, utc_now
from mqtt.outbox import Outbox
from mqtt.topics import BranchTopics
from tests.daemon_fixtures import edge_config, store_opener, write_toml
from tests.e2e.test_daemon_e2e import Subscriber, lobby  # noqa: F401 - the module fixture
from tests.mqtt_fixtures import (
    BRANCH_DEVICES,
    MosquittoBroker,
    free_port,
    make_client,
    provision_branch,
    wait_until,
)

NAMES = ["王秀英", "李建国", "张美玲"]  # fictional; the scan looks for each of them
FRAMES_PER_LOOP = 120  # the lobby video: 12 s at 10 fps
# Eight or more numbers with decimals in a row: an embedding (or any vector) dumped as text.
FLOAT_RUN = re.compile(r"(-?\d*\.\d{3,}(e-?\d+)?[,\s\]]+){8,}")


class Records(logging.Handler):
    """Every record at INFO and above, formatted as the daemon's JSON log lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.setFormatter(JsonFormatter())
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@dataclass
class Run:
    cfg: Any
    erased: str
    others: list[str]
    secrets: dict[str, set[str]]
    logs: list[str]
    waiting_before: list[Arrival]
    waiting_after: list[Arrival]
    erase_report: dict[str, Any]
    received: list[Arrival] = field(default_factory=list)
    received_after: list[str] = field(default_factory=list)
    outcome_stored: bool = False
    auth_verdict: str | None = None


@contextlib.contextmanager
def captured_logs() -> Iterator[Records]:
    root, handler = logging.getLogger(), Records()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def enrol_with_crm(out: Path, prov, engine, lobby, data_dir: Path):  # noqa: F811
    """Enrol the video's customers (named, consent recorded) and import their CRM data."""
    video, truth, _ = lobby
    people = [p for p in truth["people"] if p["enrolled"]]
    sheet = out / "customers.csv"
    with sheet.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["customer_id", "photo", "display_name", "tier", "assigned_rm",
                         "consent_channel", "consent_time"])
        for person, name in zip(people, NAMES, strict=False):
            for photo in person["enrol_photos"]:
                writer.writerow([person["customer_id"], photo, name, "private", "RM-01",
                                 "test-paper-form", "2026-01-05T10:00:00+08:00"])
    camera = {"name": "lobby-1", "source": str(video), "pace": "fast", "analyse_fps": 10.0, "loop": True}
    cfg = edge_config(out, prov, [camera], visits={"absence_s": 3.0, "cooldown_s": 0.0},
                      auth={"enabled": True})
    with open_configured(cfg.store, create=False) as store:
        enrol_folder(store, engine, cfg, data_dir / "faces", customers_csv=sheet, actor="test")
    crm_people = [Person(p["customer_id"], name, "private", "RM-01")
                  for p, name in zip(people, NAMES, strict=False)]
    load_demo_crm(cfg.store.path, crm_people, date.today(), out / "crm", extra=20)
    return cfg, [p["customer_id"] for p in people]


def crm_secrets(folder: Path) -> dict[str, set[str]]:
    """Every name, full ID number and full account number in the CRM import files."""
    with (folder / "customers.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    return {"names": {r["name"] for r in rows} | set(NAMES), "id_numbers": {r["id_number"] for r in rows},
            "accounts": {r["account_number"] for r in rows}}


def waiting_arrivals(outbox: Outbox) -> list[Arrival]:
    messages = [decode(p.payload) for p in outbox.pending(limit=len(outbox) + 1)]
    return [m for m in messages if isinstance(m, Arrival)]


def erase_cli(config: Path, customer_id: str) -> dict[str, Any]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["erase", "--config", str(config), "--customer", customer_id,
                         "--actor", "test:branch-manager", "--json"])
    assert code == 0
    return dict(json.loads(out.getvalue()))


def start_daemon(cfg, engine) -> tuple[EdgeDaemon, PortraitBuilder]:
    """Wired as ``branch-edge run`` wires it (outcomes inbound, portraits, retention)."""
    portraits = PortraitBuilder.open(cfg)
    inbound = edge_inbound(cfg, portraits.crm)
    client = BranchClient(cfg.mqtt, Identity(cfg.branch_id, cfg.mqtt.device_id, "edge", "test"),
                          receiver=inbound.receiver, subscriptions=inbound.subscriptions)
    daemon = EdgeDaemon(cfg, engine, store_opener(cfg), client, portraits=portraits,
                        services=[RetentionJob(cfg.retention, store_opener(cfg), client.outbox)])
    daemon.services.append(AuthService(engine, store_opener(cfg), client, load_policies(None),
                                       inbox=inbound.auth_inbox))
    daemon.start()
    return daemon, portraits


def resident_card(crm_number: str, name: str) -> CardFields:
    """A card that passes the reader's checks, numbered after the CRM's (fictional) ID number."""
    number = crm_number[:17] + mod11_2_check_char(crm_number[:17])
    birth = date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    issued = date.today() - timedelta(days=400)
    years = expected_years("resident", age_on(birth, issued))
    return CardFields(card_type="resident", id_number=number, name=name, birth_date=birth,
                      gender="1" if int(number[16]) % 2 else "2", nation_code="01", valid_from=issued,
                      valid_until=add_years(issued, years)[0] if years else None)


def authorize_at_the_counter(prov, out: Path, cfg, *, truth, data_dir: Path, run: Run) -> str | None:
    """A teller checks one of the other customers' ID card (full number, name, photo) at the counter."""
    person = next(p for p in truth["people"] if p["customer_id"] == run.others[0])
    with (out / "crm" / "customers.csv").open(encoding="utf-8") as handle:
        row = next(r for r in csv.DictReader(handle) if r["customer_id"] == person["customer_id"])
    card = resident_card(row["id_number"], row["name"])
    run.secrets["id_numbers"].add(card.id_number)
    with open_configured(cfg.store, create=False) as store:
        store.set_holder_id_number(person["customer_id"], card.id_number, actor="test")
    photos = [base64.b64encode((data_dir / "faces" / p).read_bytes()).decode("ascii")
              for p in person["enrol_photos"]]
    answers: list[AuthResponse] = []
    topic = BranchTopics(cfg.branch_id).auth_response("teller-1")
    teller = make_client(prov, "teller-1", out / "teller", subscriptions=(topic,),
                         handler=lambda d: answers.append(d.message))
    teller.start()
    try:
        assert teller.wait_connected(10)
        teller.publish(AuthRequest(
            branch_id=cfg.branch_id, expires_at=utc_now() + timedelta(minutes=1), device_id="teller-1",
            teller_id="t-7", transaction_id="tx-1", scenario="card_replacement",
            account_holder_id=person["customer_id"],
            card=card, card_photo_jpeg_b64=photos[0], live_jpeg_b64=(photos[1:] + photos)[:2]))
        wait_until(lambda: bool(answers), 30)
    finally:
        teller.stop(drain_s=1)
    return answers[0].verdict if answers else None


def send_outcome(pad: Subscriber, cfg) -> bool:
    arrival = pad.received[0][0]
    outcome = Outcome(branch_id=arrival.branch_id, arrival_id=arrival.id, visit_id=arrival.visit_id,
                      customer_id=arrival.customer.customer_id, rm_id="RM-01", device_id="rm-1",
                      result="interested", note="call back next week")
    pad.client.publish(outcome)

    def stored() -> bool:
        with CrmStore.open(cfg.store.path) as crm:
            sql = "SELECT 1 FROM crm_outcomes WHERE message_id = ?"
            return bool(crm.execute(sql, (outcome.id,)).fetchall())

    return wait_until(stored, 15)


@pytest.fixture(scope="module")
def run(tmp_path_factory, engine, lobby, data_dir: Path) -> Iterator[Run]:  # noqa: F811
    out = tmp_path_factory.mktemp("privacy")
    prov = provision_branch(out / "pki", "b1", BRANCH_DEVICES, free_port())
    port = int(next(line for line in prov.broker_conf.read_text().splitlines()
                    if line.startswith("listener ")).split()[1])
    broker = MosquittoBroker(prov.broker_conf, port, out / "mosquitto.log")  # down for now
    with captured_logs() as logs:
        cfg, enrolled = enrol_with_crm(out, prov, engine, lobby, data_dir)
        erased, others = enrolled[0], enrolled[1:]
        daemon, portraits = start_daemon(cfg, engine)
        pad = None
        try:
            outbox = daemon.client.outbox
            assert wait_until(lambda: {a.customer.customer_id for a in waiting_arrivals(outbox)}
                              >= set(enrolled), 60), "arrivals did not queue while the broker was down"
            before = waiting_arrivals(outbox)
            report = erase_cli(write_toml(cfg, out / "edge.toml"), erased)
            result = Run(cfg, erased, others, crm_secrets(out / "crm"), logs.lines, before,
                         waiting_arrivals(outbox), report)
            analysed = daemon.worker.analysed["lobby-1"]
            broker.start()
            pad = Subscriber(prov, out)
            assert wait_until(lambda: set(pad.customers()) >= set(others)
                              and daemon.worker.analysed["lobby-1"] >= analysed + FRAMES_PER_LOOP + 10, 120)
            result.outcome_stored = send_outcome(pad, cfg)
            result.auth_verdict = authorize_at_the_counter(prov, out, cfg, truth=lobby[1], data_dir=data_dir,
                                                          run=result)
        finally:
            daemon.stop()
            portraits.close()
            if pad is not None:
                pad.close()
            broker.stop()
    result.received = [a for a, _ in pad.received]
    result.received_after = pad.customers()
    return result


def test_withdrawal_removes_templates_photos_and_waiting_captures(run: Run, engine) -> None:
    assert run.erase_report["templates_removed"] >= 1 and run.erase_report["photos_removed"] >= 1
    assert run.erased in {a.customer.customer_id for a in run.waiting_before}  # a capture was waiting
    assert run.erase_report["waiting_arrivals_removed"] >= 1
    assert run.erased not in {a.customer.customer_id for a in run.waiting_after}
    assert {a.customer.customer_id for a in run.waiting_after} >= set(run.others)  # others untouched
    with open_configured(run.cfg.store, create=False) as store:
        assert store.count_templates(run.erased, engine.pack_id) == 0
        with store.transaction() as c:
            sql = "SELECT COUNT(*) FROM photos WHERE customer_id = ?"
            (photos,) = c.execute(sql, (run.erased,)).fetchone()
        assert photos == 0
        ids, _ = store.load_templates(engine.pack_id, engine.embedding_size)
        assert run.erased not in ids and set(run.others) <= set(ids)
        assert store.active_consent(run.erased) is None
    with CrmStore.open(run.cfg.store.path) as crm:  # CRM tables hold no images to erase
        columns = [row for table in ("crm_shown", "crm_outcomes", "crm_customers")
                   for row in crm.execute(f"PRAGMA table_info({table})").fetchall()]
    assert not [c for c in columns if "BLOB" in str(c[2]).upper() or "jpeg" in str(c[1]).lower()]


def test_withdrawal_is_audited_without_biometric_data(run: Run) -> None:
    with open_configured(run.cfg.store, create=False) as store:
        entries = store.audit_entries(run.erased)
        assert store.verify_audit() is None
    erasure = [e for e in entries if e["action"] == "customer_erased"]
    assert len(erasure) == 1 and erasure[0]["actor"] == "test:branch-manager"
    text = json.dumps(entries, ensure_ascii=False)
    assert not FLOAT_RUN.search(text) and "jpeg" not in text.lower()
    assert not any(secret in text for group in run.secrets.values() for secret in group)


def test_withdrawn_customer_is_never_recognised_again(run: Run) -> None:
    # The PAD got the others again after the erasure, over a full loop past every walk.
    assert set(run.received_after) >= set(run.others)
    assert run.erased not in run.received_after


def test_logs_at_info_carry_no_names_numbers_or_embeddings(run: Run) -> None:
    # The run went all the way: enrol, arrivals, PAD, outcome, a counter authorization.
    assert run.outcome_stored and run.auth_verdict is not None
    text = "\n".join(run.logs)
    loggers = ("edge.enrol.enrolment", "edge.lobby.daemon", "edge.counter.service")
    assert all(f'"logger": "{name}"' in text for name in loggers)
    assert "arrival queued" in text and "erased customer" in text  # the scan saw the whole run
    leaks = sorted(s for group in run.secrets.values() for s in group if s and s in text)
    assert not leaks, f"personal data in logs: {leaks}"
    assert not FLOAT_RUN.search(text), FLOAT_RUN.search(text)


def test_pad_payloads_carry_no_embeddings_and_only_masked_numbers(run: Run) -> None:
    arrivals = run.received + run.waiting_before
    assert arrivals
    masked = [a.customer for a in arrivals if a.customer.masked_id_number]
    assert masked, "no arrival carried the CRM card: the check would be vacuous"
    for card in masked:
        assert "*" in card.masked_id_number and "*" in card.masked_account
        assert sum(ch.isdigit() for ch in card.masked_id_number) <= 8
        assert sum(ch.isdigit() for ch in card.masked_account) <= 4
    for arrival in arrivals:
        payload = encode(arrival).decode("utf-8")
        assert not [s for s in run.secrets["id_numbers"] | run.secrets["accounts"] if s in payload]
        assert not long_number_lists(json.loads(payload)), "a vector in the payload"
        assert not re.search(r"embedding|template|vector", payload, re.IGNORECASE)


def long_number_lists(value: Any, limit: int = 16) -> bool:
    if isinstance(value, dict):
        return any(long_number_lists(v, limit) for v in value.values())
    if isinstance(value, list):
        numbers = [v for v in value if isinstance(v, int | float) and not isinstance(v, bool)]
        return len(numbers) >= limit or any(long_number_lists(v, limit) for v in value)
    return False

