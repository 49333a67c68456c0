"""Security and delivery against a real Mosquitto started with the provisioned config."""

from __future__ import annotations

import json
import os
import random
import shutil
import ssl
import stat
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mqtt import codec
from mqtt.client import BranchClient
from mqtt.messages import AuthDecision, AuthResponse, Claim, DeviceStatus
from mqtt.provision import Device
from mqtt.provision.run import ProvisionResult
from mqtt.topics import BranchTopics
from tests.mqtt_fixtures import (
    MosquittoBroker,
    arrival,
    make_client,
    provision_branch,
    raw_connect,
    wait_until,
)

T = BranchTopics("b1")
StartBroker = Callable[[ProvisionResult], MosquittoBroker]


@pytest.fixture
def clients(tmp_path: Path) -> Iterator[Callable[..., BranchClient]]:
    """Factory of started, connected clients; all stopped at teardown."""
    made: list[BranchClient] = []

    def start(prov: ProvisionResult, device: str, *subs: str, **kw: object) -> BranchClient:
        client = make_client(prov, device, tmp_path / "state", subscriptions=subs, **kw)
        client.start()
        made.append(client)
        assert client.wait_connected(10), f"{device} did not connect: {client.last_refusal}"
        return client

    yield start
    for client in made:
        client.stop(drain_s=0.5)


def a_claim(branch: str = "b1", rm: str = "rm-1") -> Claim:
    """A claim by device ``rm`` naming RM ``rm`` (no roster in these tests)."""
    return Claim(
        branch_id=branch,
        arrival_id=str(uuid.uuid4()),
        visit_id=str(uuid.uuid4()),
        customer_id="c-1",
        rm_id=rm,
        device_id=rm,
    )


def received(client: BranchClient, count: int, timeout: float = 10) -> list[object]:
    assert client.receiver is not None
    got = []
    assert wait_until(lambda: client.receiver.queue.qsize() >= count, timeout), client.stats()
    while not client.receiver.queue.empty():
        got.append(client.receiver.queue.get_nowait().message)
    return got


def test_tls_device_credentials_deliver_an_arrival(provisioned_branch, mosquitto_broker, clients):
    mosquitto_broker(provisioned_branch)
    rm = clients(provisioned_branch, "rm-1", T.arrivals)
    edge = clients(provisioned_branch, "edge-1")
    sent = arrival("b1")
    edge.publish(sent)
    (got,) = received(rm, 1)
    assert got == sent
    assert wait_until(lambda: len(edge.outbox) == 0, 5), "outbox row not deleted after PUBACK"


def test_provisioned_secrets_are_private(provisioned_branch):
    out = provisioned_branch.out
    secrets = [out / "ca.key", out / "broker/server.key", out / "broker/passwd"]
    for device in provisioned_branch.devices:
        secrets += [out / "devices" / device.id / "client.key", out / "devices" / device.id / "password"]
    for path in secrets:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    conf = provisioned_branch.broker_conf.read_text()
    assert "allow_anonymous false" in conf
    assert "require_certificate true" in conf


def _device_files(prov: ProvisionResult, device: str) -> tuple[Path, tuple[Path, Path], str]:
    folder = prov.device_dir(device)
    password = (folder / "password").read_text()
    return folder / "ca.crt", (folder / "client.crt", folder / "client.key"), password


def test_no_certificate_or_another_cas_certificate_never_gets_past_tls(
    provisioned_branch, mosquitto_broker, tmp_path
):
    """The certificate is the device's identity (the broker takes the username and client id
    from its CN, tests/integration/test_mqtt_identity.py shows what that prevents): without one
    of this branch's CA, or with another branch's, nothing gets past the TLS handshake."""
    broker = mosquitto_broker(provisioned_branch)
    ca, cert, password = _device_files(provisioned_branch, "rm-1")
    assert raw_connect(broker.port, ca, cert, "rm-1", password) == 0  # control: accepted
    assert _refused_by_tls(lambda: raw_connect(broker.port, ca, None, "rm-1", password))
    other = provision_branch(tmp_path / "pki-b9", "b9", [Device("rm-1", "rm"), Device("e", "edge")], 1)
    _, foreign_cert, _ = _device_files(other, "rm-1")
    assert _refused_by_tls(lambda: raw_connect(broker.port, ca, foreign_cert, "rm-1", password))


def _refused_by_tls(connect: Callable[[], int]) -> bool:
    try:
        connect()
    except (ssl.SSLError, OSError):
        return True
    return False


def test_rm_pad_cannot_forge_arrivals_or_decisions(provisioned_branch, mosquitto_broker, clients):
    mosquitto_broker(provisioned_branch)
    watcher = clients(provisioned_branch, "rm-2", T.arrivals, T.claims)
    supervisor = clients(provisioned_branch, "sup-1", T.auth_decisions)
    forger = clients(provisioned_branch, "rm-1")
    forged = arrival("b1")
    assert forger.publish_raw(T.arrivals, codec.encode(forged))
    decision = AuthDecision(
        branch_id="b1", request_id=str(uuid.uuid4()), supervisor_id="rm-1", device_id="rm-1",
        decision="approve", reason="forged",
    )
    assert forger.publish_raw(T.auth_decisions_of("rm-1"), codec.encode(decision))
    assert forger.publish_raw(T.auth_decisions_of("sup-1"), codec.encode(decision))
    # Controls published after the forgeries were acknowledged: they arrive, the forgeries never do.
    forger.publish(a_claim())
    real = AuthDecision(
        branch_id="b1", request_id=str(uuid.uuid4()), supervisor_id="sup-1", device_id="sup-1",
        decision="reject", reason="no match",
    )
    supervisor.publish(real)
    got = received(watcher, 1)
    assert [m.SCHEMA for m in got] == ["claim"]
    assert received(supervisor, 1) == [real]
    assert watcher.receiver.stats().get("accepted") == 1


def test_teller_reads_only_its_own_responses(provisioned_branch, mosquitto_broker, clients):
    mosquitto_broker(provisioned_branch)
    teller = clients(provisioned_branch, "teller-1", T.leaf("auth/#"), T.arrivals)
    edge = clients(provisioned_branch, "edge-1")
    edge.publish(arrival("b1"))
    edge.publish_raw(T.auth_response("teller-2"), b"{}")
    mine = AuthResponse(
        branch_id="b1", request_id=str(uuid.uuid4()), device_id="teller-1", verdict="approve"
    )
    edge.publish(mine)
    assert received(teller, 1) == [mine]
    assert teller.receiver.stats() == {"accepted": 1, "rejected": 0}


def _second_branch_on_same_broker(prov: ProvisionResult, tmp_path: Path) -> ProvisionResult:
    """Provision branch b2 with b1's CA and add its users to b1's broker (a shared broker)."""
    out2 = tmp_path / "pki-b2"
    out2.mkdir()
    for name in ("ca.crt", "ca.key"):
        shutil.copy2(prov.out / name, out2 / name)
    conf_lines = prov.broker_conf.read_text().splitlines()
    port = int(next(x for x in conf_lines if x.startswith("listener")).split()[1])
    prov2 = provision_branch(out2, "b2", [Device("edge-b2", "edge"), Device("rm-b2", "rm")], port)
    for name in ("passwd", "acl"):
        with (prov.out / "broker" / name).open("a") as handle:
            handle.write((out2 / "broker" / name).read_text())
    return prov2


def test_pad_of_one_branch_cannot_read_another_branchs_arrivals(
    provisioned_branch, mosquitto_broker, clients, tmp_path
):
    prov2 = _second_branch_on_same_broker(provisioned_branch, tmp_path)
    mosquitto_broker(provisioned_branch)
    snoop = clients(provisioned_branch, "rm-1", "bank/v1/branch/+/arrivals", BranchTopics("b2").arrivals)
    rm_b2 = clients(prov2, "rm-b2", BranchTopics("b2").arrivals)
    edge_b2 = clients(prov2, "edge-b2")
    edge_b1 = clients(provisioned_branch, "edge-1")
    secret = arrival("b2")
    edge_b2.publish(secret)
    assert received(rm_b2, 1) == [secret]  # control: b2's own RM gets it
    mine = arrival("b1")
    edge_b1.publish(mine)
    assert received(snoop, 1) == [mine]
    # b2's edge cannot publish into b1 either
    assert edge_b2.publish_raw(T.arrivals, codec.encode(arrival("b1")))
    edge_b1.publish(arrival("b1"))
    assert len(received(snoop, 1)) == 1
    assert snoop.receiver.stats()["accepted"] == 2


def test_killed_device_goes_offline_through_its_last_will(
    provisioned_branch, mosquitto_broker, clients, tmp_path
):
    mosquitto_broker(provisioned_branch)
    edge = clients(provisioned_branch, "edge-1", T.leaf("status/+"))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.mqtt_fixtures", "hold", "--pki", str(provisioned_branch.out),
         "--state", str(tmp_path / "hold"), "--device", "rm-1"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "connected True"
        states = _status_stream(edge)
        assert wait_until(lambda: states().get("rm-1") == "online", 10)
        proc.kill()
        proc.wait(5)
        assert wait_until(lambda: states().get("rm-1") == "offline", 10), states()
    finally:
        proc.kill()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def _status_stream(client: BranchClient) -> Callable[[], dict[str, str]]:
    latest: dict[str, str] = {}

    def poll() -> dict[str, str]:
        assert client.receiver is not None
        while not client.receiver.queue.empty():
            message = client.receiver.queue.get_nowait().message
            assert isinstance(message, DeviceStatus)
            latest[message.device_id] = message.state
        return latest

    return poll


def malformed_payloads(seed: int) -> list[tuple[str, bytes]]:
    """Bad payloads of every kind the decoder knows, for both subscribed topics."""
    rng = random.Random(seed)
    good = json.loads(codec.encode(arrival("b1")))
    claim = json.loads(codec.encode(a_claim()))
    out: list[tuple[str, bytes]] = []
    claims = T.claims_of("rm-2")
    for _ in range(40):
        out.append((rng.choice([T.arrivals, claims]), rng.randbytes(rng.randint(0, 200))))
    for topic, body in ((T.arrivals, good), (claims, claim)):
        text = json.dumps(body)
        out.append((topic, text[: rng.randint(1, len(text) - 1)].encode()))
        for key in sorted(body):
            broken = dict(body)
            broken[key] = rng.choice([42, True, {"x": 1}])  # wrong type for every field
            out.append((topic, json.dumps(broken).encode()))
        out.append((topic, json.dumps({**body, "schema": body["schema"][:-1] + "9"}).encode()))
        out.append((topic, json.dumps({**body, "branch_id": "b2"}).encode()))
        out.append((topic, b'{"schema": 1}'))
        out.append((topic, b"null"))
    out.append((claims, codec.encode(arrival("b1"))))  # valid arrival on the wrong topic
    out.append((T.arrivals, b"{" + b" " * (300 * 1024) + b"}"))  # over the 256 KiB cap
    return out


def test_fuzzed_malformed_stream_is_counted_and_the_receiver_keeps_going(
    provisioned_branch, mosquitto_broker, clients
):
    mosquitto_broker(provisioned_branch)
    rm = clients(provisioned_branch, "rm-1", T.arrivals, T.claims)
    edge = clients(provisioned_branch, "edge-1")
    other_rm = clients(provisioned_branch, "rm-2")
    bad = malformed_payloads(seed=3)
    for topic, payload in bad:
        sender = edge if topic == T.arrivals else other_rm
        assert sender.publish_raw(topic, payload)
    good = arrival("b1")
    edge.publish(good)
    assert received(rm, 1) == [good]
    assert edge.publish_raw(T.arrivals, codec.encode(good))  # the same id again: de-duplicated
    # Two senders' streams interleave in any order: wait for both counts.
    def settled() -> bool:
        now = rm.receiver.stats()
        return now["rejected"] == len(bad) and now.get("duplicates") == 1

    assert wait_until(settled, 10), rm.receiver.stats()
    stats = rm.receiver.stats()
    assert stats["accepted"] == 1
    assert stats["duplicates"] == 1
    assert stats["rejected.oversize"] == 1
    assert stats["rejected.wrong_topic"] == 1
    assert stats["rejected.wrong_branch"] == 2
    assert rm.connected
