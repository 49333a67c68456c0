"""An erasure at head office reaches every branch: five simulated branches (a real store and
the fleet agent each, logged in to a real central Mosquitto as their bridge user), one of
them offline when the erasure is issued.  Head office reports it as a straggler, sends again,
and ends with every branch's acknowledgement recorded and the customer gone everywhere, from
head office's templates as from each branch's store, including a branch that had enrolled
the customer itself."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from hq.cli import main as hq_main
from hq.packages import build_package
from hq.service import HqService, hq_client
from mqtt.codec import encode
from mqtt.messages import ErasureAck
from mqtt.topics import BranchTopics
from tests.hq_fixtures import TEST_CONTRACT, HeadOffice, SimBranch, login, start_central
from tests.mqtt_fixtures import wait_until

BRANCHES = [f"b{n}" for n in range(1, 6)]


@pytest.fixture
def fleet(tmp_path):
    broker, central = start_central(tmp_path, BRANCHES)
    hq = HeadOffice(tmp_path / "hq")
    branches = {b: SimBranch(tmp_path / b, b, hq, TEST_CONTRACT) for b in BRANCHES}
    for branch in branches.values():
        branch.connect(central)
    client = hq_client(login(tmp_path, central, "hq-app", "hq-app", outbox_path=":memory:"))
    client.start()
    assert client.wait_connected(10)
    service = HqService(hq.registry, client, resend_s=0.5)
    yield hq, branches, service, central
    client.stop()
    for branch in branches.values():
        branch.disconnect()
    broker.stop()
    hq.registry.close()


def run_until(service: HqService, done, timeout: float) -> bool:
    def step() -> bool:
        service.tick()
        return done()

    return wait_until(step, timeout, step=0.05)


def enrol_locally(branch: SimBranch, customer_id: str) -> None:
    """The branch's own enrolment (not from head office)."""
    vector = np.random.default_rng(99).normal(size=TEST_CONTRACT.dimension).astype("<f4")
    with branch.store() as store:
        store.upsert_customer(customer_id, "test", "Local", "gold", "RM-02")
        store.record_consent(customer_id, "branch-form", datetime(2026, 2, 1, tzinfo=UTC), "test")
        store.add_template(customer_id, "default", vector / np.linalg.norm(vector), quality={},
                           source_sha256="e" * 64, source_name="local.jpg")


def templates_of(branch: SimBranch, customer_id: str) -> int:
    with branch.store() as store:
        return len(store.load_templates("default", customer_id=customer_id)[0])


def erasures_json(hq: HeadOffice, tmp_path, capsys) -> list[dict]:
    config = tmp_path / "hq.toml"
    config.write_text(f'[hq]\ndb = "{hq.tmp / "hq.db"}"\ndata_key = "{hq.tmp / "hq-data.key"}"\n')
    capsys.readouterr()
    assert hq_main(["--config", str(config), "erasures", "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_erasure_reaches_every_branch_and_every_ack_is_recorded(fleet, tmp_path, capsys):
    hq, branches, service, central = fleet
    hq.enrol_random("C-GONE", TEST_CONTRACT, templates=2, seed=1)
    hq.enrol_random("C-STAY", TEST_CONTRACT, seed=2)
    for b in BRANCHES[:4]:
        hq.registry.assign(b, ["C-GONE", "C-STAY"])
        build_package(hq.registry, b, TEST_CONTRACT, hq.signing, hq.tmp / "packages")
    enrol_locally(branches["b5"], "C-GONE")  # walked into b5 and enrolled there
    assert run_until(service, lambda: all(p.state == "applied" for p in hq.registry.packages()), 60)
    assert all(templates_of(branches[b], "C-GONE") == 2 for b in BRANCHES[:4])
    assert templates_of(branches["b5"], "C-GONE") == 1
    branches["b4"].disconnect()  # b4 is offline when the customer withdraws

    hq.registry.issue_erasure("C-GONE", "consent withdrawn at head office")

    assert run_until(service, lambda: hq.registry.erasure_report()[0]["confirmed"] == 4, 30)
    # head office keeps sending to the branch that has not confirmed
    assert run_until(service, lambda: hq.registry.erasure_report()[0]["stragglers"][0]["sends"] >= 2, 30)
    report = erasures_json(hq, tmp_path, capsys)[0]
    assert not report["complete"]
    assert [s["branch_id"] for s in report["stragglers"]] == ["b4"]

    branches["b4"].connect(central)  # back online: head office sends again, b4 applies it

    assert run_until(service, lambda: hq.registry.erasure_report()[0]["complete"], 30)
    report = erasures_json(hq, tmp_path, capsys)[0]
    assert report["confirmed"] == report["branches"] == 5
    by_branch = {c["branch_id"]: c for c in report["confirmations"]}
    assert {b: c["result"] for b, c in by_branch.items()} == dict.fromkeys(BRANCHES, "erased")
    assert by_branch["b4"]["sends"] >= 2
    assert {by_branch[b]["templates_removed"] for b in BRANCHES[:4]} == {2}
    assert by_branch["b5"]["templates_removed"] == 1
    assert all(c["acked_at"] and c["applied_at"] for c in report["confirmations"])
    for branch in branches.values():
        assert templates_of(branch, "C-GONE") == 0
        with branch.store() as store:
            assert store.active_consent("C-GONE") is None
            assert len(store.erasures("C-GONE")) == 1  # sent several times, applied once
    assert all(templates_of(branches[b], "C-STAY") == 1 for b in BRANCHES[:4])
    assert hq.registry.templates("C-GONE", "default", TEST_CONTRACT.recognizer_sha256) == []


def test_a_branch_cannot_acknowledge_for_another(fleet):
    hq, branches, service, _ = fleet
    hq.enrol_random("C-X", TEST_CONTRACT)
    erasure_id = hq.registry.issue_erasure("C-X", "consent withdrawn", branches=["b2"])
    branches["b2"].disconnect()
    forger = branches["b1"].client
    assert forger is not None
    forged = ErasureAck(branch_id="b2", erasure_id=erasure_id, customer_id="C-X",
                        applied_at=datetime.now(UTC), result="erased")
    # the central broker's ACL lets b1's bridge user write only under b1
    forger.publish_raw(BranchTopics("b2").fleet("erasure_acks"), encode(forged))
    # b1 also acknowledges under its own prefix: head office records it as b1's, for no target
    own = ErasureAck(branch_id="b1", erasure_id=erasure_id, customer_id="C-X",
                     applied_at=datetime.now(UTC), result="erased")
    forger.publish_raw(BranchTopics("b1").fleet("erasure_acks"), encode(own))

    assert run_until(service, lambda: service.counts["unknown_erasure_acks"] == 1, 15)
    report = hq.registry.erasure_report()[0]
    assert report["confirmed"] == 0 and report["stragglers"][0]["branch_id"] == "b2"


def test_a_re_sent_erasure_is_applied_once(fleet):
    hq, branches, service, _ = fleet
    hq.enrol_random("C-TWICE", TEST_CONTRACT)
    hq.registry.assign("b3", ["C-TWICE"])
    build_package(hq.registry, "b3", TEST_CONTRACT, hq.signing, hq.tmp / "packages")
    assert run_until(service, lambda: hq.registry.packages("b3")[0].state == "applied", 30)
    hq.registry.issue_erasure("C-TWICE", "consent withdrawn", branches=["b3"])
    assert run_until(service, lambda: hq.registry.erasure_report()[0]["complete"], 30)
    with branches["b3"].store() as store:
        before = len(store.erasures("C-TWICE"))

    # head office lost its record of the acknowledgement and sends again
    hq.registry._conn.execute("UPDATE erasure_targets SET acked_at = NULL, last_sent_at = NULL")
    assert run_until(service, lambda: hq.registry.erasure_report()[0]["complete"], 30)

    with branches["b3"].store() as store:
        assert len(store.erasures("C-TWICE")) == before == 1
    assert hq.registry.erasure_report()[0]["confirmations"][0]["templates_removed"] == 1
