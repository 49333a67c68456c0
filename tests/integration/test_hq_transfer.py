"""Gallery packages and erasures over MQTT, through a real branch broker bridged to a real
central broker (both Mosquitto, the shipped bridge template and ACLs): the package travels in
chunks, a lost chunk is asked for again and the package still applies once; an erasure is
applied at the branch and its acknowledgement recorded at head office."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.fleet.agent import FleetAgent, fleet_subscriptions
from edge.fleet.importer import gallery_version
from edge.fleet.keys import load_fleet_keys
from hq.central import TlsListener
from hq.packages import build_package, chunks
from hq.service import HqService, hq_client
from mqtt.client import BranchClient, Identity
from mqtt.dedup import SeenIds
from mqtt.messages import GalleryChunk, new_id
from mqtt.provision import pki
from mqtt.provision.run import BrokerOptions, CentralLink, current_user, provision
from mqtt.receiver import Receiver
from tests.hq_fixtures import TEST_CONTRACT, HeadOffice, SimBranch, login, start_central
from tests.mqtt_fixtures import BRANCH_DEVICES, MosquittoBroker, client_config, free_port, wait_until


class BridgedBranch(SimBranch):
    """A branch with its own provisioned Mosquitto, bridged to the central broker; the fleet
    agent uses the edge device's credentials on the branch broker."""

    def connect_branch(self, prov) -> None:
        mqtt = client_config(prov, "edge-1", self.tmp / "edge-state")

        def route(delivery) -> None:
            self.inbox.put(delivery)

        self.client = BranchClient(mqtt, Identity(self.branch_id, "edge-1", "edge"),
                                   receiver=Receiver(SeenIds(mqtt.seen_ids_path), handler=route),
                                   subscriptions=fleet_subscriptions(self.branch_id))
        self.agent = FleetAgent(self.cfg, self.store, self.client, contract=self.contract,
                                keys=load_fleet_keys(self.cfg.fleet), inbox=self.inbox)
        self.client.start()
        assert self.client.wait_connected(10)
        self.agent.start()


@pytest.fixture
def bridged(tmp_path: Path):
    """Central broker (TLS for the bridge, password listener for head office), branch b1's
    broker provisioned with the central link, head office and the branch's fleet agent."""
    hq_ca = pki.make_ca("Head office CA")
    pki.write_pair(hq_ca, tmp_path / "hq-ca.crt", tmp_path / "hq-ca.key")
    server = pki.issue(hq_ca, "central", server_names=["127.0.0.1"])
    pki.write_pair(server, tmp_path / "central.crt", tmp_path / "central.key")
    tls_port, branch_port = free_port(), free_port()
    prov = provision("b1", BRANCH_DEVICES, tmp_path / "pki",
                     BrokerOptions(port=branch_port, bind="127.0.0.1", broker_user=current_user()),
                     CentralLink("127.0.0.1", tls_port, tmp_path / "hq-ca.crt"))
    hq_side = prov.out / "central"
    tls = TlsListener(tls_port, hq_side / "branch-b1-ca.crt", tmp_path / "central.crt",
                      tmp_path / "central.key")
    central_broker, central = start_central(
        tmp_path, [], tls=tls, bridge_lines={"b1": (hq_side / "passwd-entry").read_text()})
    branch_broker = MosquittoBroker(prov.broker_conf, branch_port, tmp_path / "branch.log")
    branch_broker.start()
    hq = HeadOffice(tmp_path / "hq")
    branch = BridgedBranch(tmp_path / "b1", "b1", hq, TEST_CONTRACT)
    branch.connect_branch(prov)
    client = hq_client(login(tmp_path, central, "hq-app", "hq-app", outbox_path=":memory:"))
    client.start()
    assert client.wait_connected(10)
    service = HqService(hq.registry, client, resend_s=1.0)
    yield hq, branch, service
    client.stop()
    branch.disconnect()
    branch_broker.stop()
    central_broker.stop()
    hq.registry.close()


def run_until(service: HqService, done, timeout: float) -> bool:
    def step() -> bool:
        service.tick()
        return done()

    return wait_until(step, timeout, step=0.1)


def test_package_travels_in_chunks_a_lost_chunk_is_sent_again_and_it_applies_once(bridged):
    hq, branch, service = bridged
    for n in range(400):  # ~400 x 0.7 KB: four chunks
        hq.enrol_random(f"C{n:04d}", TEST_CONTRACT, seed=n)
    hq.registry.assign("b1", [f"C{n:04d}" for n in range(400)])
    row = build_package(hq.registry, "b1", TEST_CONTRACT, hq.signing, hq.tmp / "packages")
    assert row is not None
    pieces = chunks("b1", row.path.read_bytes(), row.version)
    assert len(pieces) >= 3
    # the first send loses chunk 1 on the way (the others reach the branch)
    for chunk in pieces[:1] + pieces[2:]:
        service.client.publish(chunk)
    hq.registry.package_sent("b1", row.version)

    # the branch asks for what it lacks; head office sends it; the package applies
    assert run_until(service, lambda: hq.registry.packages("b1")[0].state == "applied", 30), \
        service.stats()
    assert service.counts["chunks_resent"] == 1
    assert branch.agent is not None and branch.agent.stats()["packages"] == 1
    with branch.store() as store:
        assert gallery_version(store) == 1
        assert len(store.load_templates("default")[0]) == 400

    # sent again later (a probe with the last chunk): acknowledged as applied, not applied twice
    hq.registry.package_state("b1", row.version, "sending")
    assert run_until(service, lambda: hq.registry.packages("b1")[0].state == "applied", 30)
    assert branch.agent.stats()["packages"] == 1


def test_erasure_crosses_the_bridge_and_is_confirmed(bridged):
    hq, branch, service = bridged
    hq.enrol_random("C-ERASE", TEST_CONTRACT, templates=2)
    hq.registry.assign("b1", ["C-ERASE"])
    build_package(hq.registry, "b1", TEST_CONTRACT, hq.signing, hq.tmp / "packages")
    assert run_until(service, lambda: hq.registry.packages("b1")[0].state == "applied", 30)

    erasure_id = hq.registry.issue_erasure("C-ERASE", "consent withdrawn")

    assert run_until(service, lambda: hq.registry.erasure_report()[0]["complete"], 30), \
        hq.registry.erasure_report()
    report = hq.registry.erasure_report()[0]
    assert report["erasure_id"] == erasure_id
    assert report["confirmations"][0]["result"] == "erased"
    assert report["confirmations"][0]["templates_removed"] == 2
    with branch.store() as store:
        assert store.load_templates("default")[0] == []
        assert store.active_consent("C-ERASE") is None


def test_a_chunk_that_lies_about_its_digest_is_dropped_not_applied(bridged):
    hq, branch, service = bridged
    hq.enrol_random("C1", TEST_CONTRACT)
    hq.registry.assign("b1", ["C1"])
    row = build_package(hq.registry, "b1", TEST_CONTRACT, hq.signing, hq.tmp / "packages")
    assert row is not None
    (good,) = chunks("b1", row.path.read_bytes(), row.version)
    forged = GalleryChunk(**{**good.__dict__, "id": new_id(), "chunk_sha256": "0" * 64})
    service.client.publish(forged)
    assert branch.agent is not None
    assert wait_until(lambda: branch.agent.stats().get("rejected.bad_chunk", 0) == 1, 15)
    with branch.store() as store:
        assert gallery_version(store) == 0
    assert run_until(service, lambda: hq.registry.packages("b1")[0].state == "applied", 30)
