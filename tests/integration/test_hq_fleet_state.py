"""What a branch's fleet agent tells head office by itself, through a real central Mosquitto:
its retained fleet state (model pack, gallery version, last erasure applied) after each
change, and its daily counts and purchase links from the CRM tables, without customers."""

from __future__ import annotations

import queue
from datetime import date

import pytest

from edge.crm.records import CrmStore
from hq.packages import build_package
from hq.service import HqService, hq_client
from mqtt.client import BranchClient, Identity
from mqtt.codec import encode
from mqtt.dedup import SeenIds
from mqtt.messages import ArrivalCounts, FleetState, PurchaseLink
from mqtt.receiver import Receiver
from mqtt.topics import every_branch
from tests.hq_fixtures import TEST_CONTRACT, HeadOffice, SimBranch, login, start_central
from tests.mqtt_fixtures import wait_until


@pytest.fixture
def site(tmp_path):
    broker, central = start_central(tmp_path, ["b1"])
    hq = HeadOffice(tmp_path / "hq")
    branch = SimBranch(tmp_path / "b1", "b1", hq, TEST_CONTRACT)
    cfg = login(tmp_path, central, "hq-collector", "hq-collector")
    leaves = ("fleet/state", "fleet/counts", "fleet/purchases")
    reader = BranchClient(cfg, Identity("hq", "hq-collector", "central"),
                          receiver=Receiver(SeenIds(":memory:")),
                          subscriptions=tuple(every_branch(leaf) for leaf in leaves))
    reader.start()
    assert reader.wait_connected(10)
    client = hq_client(login(tmp_path, central, "hq-app", "hq-app", outbox_path=":memory:"))
    client.start()
    assert client.wait_connected(10)
    yield hq, branch, central, reader, HqService(hq.registry, client, resend_s=1.0)
    client.stop()
    reader.stop()
    branch.disconnect()
    broker.stop()
    hq.registry.close()


def take(reader: BranchClient, kind, accept=lambda m: True, timeout: float = 20.0):
    """The next message of ``kind`` that ``accept`` likes."""
    assert reader.receiver is not None
    found = []

    def arrived() -> bool:
        try:
            message = reader.receiver.queue.get(timeout=0.1).message
        except queue.Empty:
            return False
        if isinstance(message, kind) and accept(message):
            found.append(message)
        return bool(found)

    return found[0] if wait_until(arrived, timeout) else None


def test_fleet_state_follows_packages_and_erasures(site):
    hq, branch, central, reader, service = site
    branch.connect(central)
    first = take(reader, FleetState)
    assert first is not None
    assert (first.gallery_version, first.templates, first.last_erasure_id) == (0, 0, None)
    assert first.model_pack == "default" and first.recognizer_sha256 == TEST_CONTRACT.recognizer_sha256
    hq.enrol_random("C1", TEST_CONTRACT, templates=2)
    hq.registry.assign("b1", ["C1"])
    build_package(hq.registry, "b1", TEST_CONTRACT, hq.signing, hq.tmp / "packages")
    assert wait_until(lambda: (service.tick(), hq.registry.packages("b1")[0].state == "applied")[1], 30)

    assert take(reader, FleetState, lambda m: m.gallery_version == 1 and m.templates == 2) is not None
    erasure_id = hq.registry.issue_erasure("C1", "consent withdrawn")
    assert wait_until(lambda: (service.tick(), hq.registry.erasure_report()[0]["complete"])[1], 30)
    state = take(reader, FleetState, lambda m: m.last_erasure_id == erasure_id)
    assert state is not None and state.templates == 0 and state.last_erasure_at is not None


def test_counts_and_purchase_links_leave_the_branch_without_customers(site):
    _, branch, central, reader, _ = site
    day = date.today()
    with CrmStore.open(branch.cfg.store.path) as crm, crm.transaction() as c:
        c.execute("INSERT INTO crm_visits VALUES ('v-1', 'C-SECRET', ?)", (day.isoformat(),))
        c.execute("INSERT INTO crm_shown VALUES ('v-1', 'td-3y', 'C-SECRET', 'RM-01', 'affluent', ?, 1, "
                  "'why')", (day.isoformat(),))
        c.execute("INSERT INTO crm_attributions VALUES ('t-1', 'v-1', 'C-SECRET', 'td-3y', 'RM-01', "
                  "'affluent', ?, ?, 12345.0)", (day.isoformat(), day.isoformat()))
    branch.connect(central)  # the agent reports once when it starts, then every counts_interval_s

    counts = take(reader, ArrivalCounts, lambda m: m.day == day)
    link = take(reader, PurchaseLink)

    assert counts is not None and counts.arrivals == 1 and counts.shown[0].shown == 1
    assert link is not None and (link.visit_id, link.product_id, link.amount) == ("v-1", "td-3y", 12345.0)
    assert b"C-SECRET" not in encode(counts) + encode(link)
    assert branch.agent is not None
    with branch.store() as store:  # reported again: the link is not sent twice
        branch.agent.report(store, day)
        assert store.meta_value("hq_purchase_links_through") == "1"
    assert branch.agent.stats()["purchase_links"] == 1
