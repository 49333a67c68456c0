"""Security scenarios of issue 8 against a real Mosquitto with the provisioned TLS, passwords
and ACL: revocation, replay of arrivals and of authorization decisions.

Covered elsewhere and listed in README "Security and resilience tests" rather than repeated:
anonymous / wrong password / wrong certificate refused, another branch's topics, a forged
arrival or decision from a PAD (tests/integration/test_mqtt_broker.py); oversized and malformed payloads
counted (tests/integration/test_mqtt_broker.py, tests/unit/mqtt/test_mqtt_contract.py); a request older than
``request_ttl_s`` rejected (tests/integration/test_auth_service.py).
"""

from __future__ import annotations

import shutil
import ssl
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from mqtt import codec
from mqtt.messages import AuthDecision, utc_now
from mqtt.topics import BranchTopics
from tests.integration import test_auth_service as auth_suite
from tests.integration.test_auth_service import BRANCH, audit_actions, request
from tests.mqtt_fixtures import (
    BRANCH_DEVICES,
    _conf_port,
    arrival,
    make_client,
    provision_branch,
    raw_connect,
    wait_until,
)

# The counter-authorization fixtures (an edge AuthService, a teller and a supervisor on a
# real broker, with a keyed store) are reused, not copied.
bus, db, keys, photos = auth_suite.bus, auth_suite.db, auth_suite.keys, auth_suite.photos

T = BranchTopics("b1")


def connack(pki: Path, port: int, device: str) -> int | str:
    """CONNACK code for ``device`` with the certificate and password in ``pki/devices/<device>``
    (0 accepted, 5 not authorised), or ``"tls"`` when the TLS handshake itself is refused."""
    folder = pki / "devices" / device
    try:
        return raw_connect(port, folder / "ca.crt", (folder / "client.crt", folder / "client.key"),
                           device, (folder / "password").read_text().strip())
    except (ssl.SSLError, OSError, ConnectionError):
        return "tls"


def test_revoked_device_can_no_longer_connect(provisioned_branch, mosquitto_broker, tmp_path):
    """Scenario: rm-2 is removed from devices.toml, the branch is provisioned again and the
    broker restarted (README "Adding or revoking a device").
    Expectation: rm-2's old certificate is refused in the TLS handshake (it is on the
    branch's revocation list, which the broker checks), so its running client stays offline
    and counts failed connections; rm-1 with its newly issued certificate connects, and
    rm-1's *old* certificate no longer does either (every re-issued certificate revokes the
    one it replaces).  Re-provisioning removes what it revokes: rm-2's folder (certificate,
    key, password), its password entry, ACL block and manifest entry are gone."""
    broker = mosquitto_broker(provisioned_branch)
    port = _conf_port(provisioned_branch)
    old = tmp_path / "old-credentials"
    shutil.copytree(provisioned_branch.out / "devices", old / "devices")
    assert connack(old, port, "rm-2") == 0
    rm2 = make_client(provisioned_branch, "rm-2", tmp_path / "rm2")
    rm2.start()
    assert rm2.wait_connected(10)

    kept = [d for d in BRANCH_DEVICES if d.id != "rm-2"]
    result = provision_branch(provisioned_branch.out, "b1", kept, port)
    broker.restart()

    assert connack(provisioned_branch.out, port, "rm-1") == 0
    assert connack(old, port, "rm-2") == "tls"
    assert connack(old, port, "rm-1") == "tls"
    # Refused in the handshake again and again (paho reports each as a failed connection or a
    # disconnection, depending on when the alert is read), never connected since the restart.
    assert wait_until(lambda: rm2.stats()["connect_failed"] + rm2.stats()["disconnects"] >= 3, 20)
    assert rm2.stats()["connects"] == 1 and not rm2.connected
    rm2.stop(drain_s=0)

    out = provisioned_branch.out
    assert result.removed == ["rm-2"] and not (out / "devices" / "rm-2").exists()
    manifest = (out / "manifest.json").read_text()
    assert "rm-2" not in manifest and "rm-2" not in (out / "roster.json").read_text()
    assert "rm-2" not in (out / "broker" / "passwd").read_text()
    assert "rm-2" not in (out / "broker" / "acl").read_text()
    assert result.revoked_certificates == len(BRANCH_DEVICES)  # every old client certificate


def test_replayed_and_expired_arrivals_are_dropped_even_after_the_pad_restarts(
        provisioned_branch, mosquitto_broker, tmp_path):
    """Scenario: an arrival is delivered to rm-1; the PAD app restarts (same state folder);
    the same arrival bytes are published again, then an old arrival whose ``expires_at`` has
    passed, then a fresh control arrival.
    Expectation: the replay is counted as a duplicate (the seen-id set is on disk), the old
    one as expired; only the control reaches the application."""
    mosquitto_broker(provisioned_branch)
    edge = make_client(provisioned_branch, "edge-1", tmp_path / "edge")
    pad = make_client(provisioned_branch, "rm-1", tmp_path / "rm", subscriptions=(T.arrivals,))
    for client in (edge, pad):
        client.start()
        assert client.wait_connected(10)
    first = arrival("b1")
    edge.publish(first)
    assert wait_until(lambda: pad.receiver.queue.qsize() == 1, 10)
    pad.stop(drain_s=0.5)

    pad = make_client(provisioned_branch, "rm-1", tmp_path / "rm", subscriptions=(T.arrivals,))
    pad.start()
    assert pad.wait_connected(10)
    stale = arrival("b1")
    stale = replace(stale, expires_at=utc_now() - timedelta(seconds=1))
    assert edge.publish_raw(T.arrivals, codec.encode(first))
    assert edge.publish_raw(T.arrivals, codec.encode(stale))
    control = arrival("b1")
    edge.publish(control)
    assert wait_until(lambda: pad.receiver.stats().get("accepted") == 1, 10), pad.receiver.stats()
    stats = pad.receiver.stats()
    assert (stats.get("duplicates"), stats.get("expired"), stats["rejected"]) == (1, 1, 0)
    assert pad.receiver.queue.get_nowait().message == control
    for client in (edge, pad):
        client.stop(drain_s=0.5)


def test_replayed_or_late_supervisor_decisions_change_nothing(bus, photos, db, keys):
    """Scenario: a supervisor approves an escalated request; then (a) the same decision
    message is replayed, (b) a new decision for the finished request arrives (reject),
    (c) a decision for a request id the edge never saw arrives.
    Expectation: the teller gets exactly one final answer (approve); (a) is dropped as a
    duplicate by the edge's receiver, (b) and (c) are ignored and audited as
    ``auth_decision_ignored``; the audit chain verifies."""
    edge = bus()
    req = request(photos, live=False)  # no live capture: only a supervisor can approve
    edge.teller.publish(req)
    assert wait_until(lambda: bool(edge.escalations), 30)
    approve = AuthDecision(branch_id=BRANCH, request_id=req.id, supervisor_id="s-1", device_id="sup-1",
                           decision="approve", reason="known customer")
    edge.supervisor.publish(approve)
    assert edge.final(req).verdict == "approve"

    assert edge.supervisor.publish_raw(T.auth_decisions_of("sup-1"), codec.encode(approve))  # (a)
    late = AuthDecision(branch_id=BRANCH, request_id=req.id, supervisor_id="s-1", device_id="sup-1",
                        decision="reject", reason="changed my mind")
    unknown = AuthDecision(branch_id=BRANCH, request_id=str(uuid.uuid4()), supervisor_id="s-1",
                           device_id="sup-1", decision="approve", reason="never asked")
    edge.supervisor.publish(late)  # (b)
    edge.supervisor.publish(unknown)  # (c)
    assert wait_until(lambda: audit_actions(db, keys, unknown.request_id) == ["auth_decision_ignored"], 10)
    assert wait_until(lambda: edge.edge.receiver.stats().get("duplicates") == 1, 10)
    assert audit_actions(db, keys, req.id) == [
        "auth_requested", "auth_escalated", "auth_supervisor_decision", "auth_decided",
        "auth_decision_ignored"]
    assert [r.verdict for r in edge.responses if r.request_id == req.id] == ["escalate", "approve"]
    assert not any(r.request_id == unknown.request_id for r in edge.responses)


def test_an_expired_authorization_request_is_never_decided(bus, photos, db, keys):
    """Scenario: a captured teller request is replayed after its ``expires_at``.
    Expectation: the edge's receiver drops it as expired: no response, no audit entry;
    a fresh request afterwards is answered normally."""
    edge = bus()
    old = request(photos, live=False)
    old = replace(old, expires_at=utc_now() - timedelta(seconds=1))
    assert edge.teller.publish_raw(T.auth_requests_of("teller-1"), codec.encode(old))
    fresh = request(photos, live=False)
    edge.teller.publish(fresh)
    assert edge.interim(fresh).verdict == "escalate"
    assert edge.edge.receiver.stats().get("expired") == 1
    assert not any(r.request_id == old.id for r in edge.responses)
    assert audit_actions(db, keys, old.id) == []
