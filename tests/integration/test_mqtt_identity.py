"""Identity comes from the connection, never from the payload: a real Mosquitto started with the
provisioned config (client id = username = certificate CN, device-scoped topics in the ACL) and
receivers that check every name a message carries against the device that sent it and the
branch roster (RM rm-1 uses tablet rm-1 and RM rm-2 tablet rm-2; teller t-7 uses terminal
teller-1, supervisor s-1 PAD sup-1)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from edge.config import EdgeConfig
from edge.crm.outcomes import record_visit
from edge.crm.records import CrmStore
from edge.lobby.inbound import EdgeInbound, edge_inbound
from edge.store.database import Store
from mqtt import codec
from mqtt.client import BranchClient, Identity, MqttError
from mqtt.messages import AuthDecision, AuthRequest, CardFields, Claim, Outcome, utc_now
from mqtt.provision.run import ProvisionResult
from mqtt.receiver import make_receiver
from mqtt.topics import BranchTopics
from tests.integration import test_auth_service as auth_suite
from tests.integration.test_auth_service import audit_actions, request
from tests.integration.test_mqtt_broker import clients  # noqa: F401 - a fixture
from tests.mqtt_fixtures import arrival, client_config, make_client, roster_of, wait_until
from ui.state.config import PadConfig
from ui.state.link import PadLink

# The counter-authorization rig (edge AuthService with the roster, a teller terminal and a
# supervisor on a real broker, a keyed store) is reused, not copied.
bus, db, keys, photos = auth_suite.bus, auth_suite.db, auth_suite.keys, auth_suite.photos
T = BranchTopics("b1")
CUSTOMER, OTHER_CUSTOMER = "c-1", "c-2"


def impostor(prov: ProvisionResult, state: Path, *, certificate_of: str, claims_to_be: str,
             password_of: str, subscriptions: tuple[str, ...] = ()) -> BranchClient:
    """A client presenting ``certificate_of``'s certificate but ``claims_to_be``'s username,
    client id and device id, with ``password_of``'s password."""
    cert = prov.device_dir(certificate_of)
    cfg = client_config(prov, claims_to_be, state, cert_file=cert / "client.crt",
                        key_file=cert / "client.key", password_file=prov.device_dir(password_of) / "password",
                        username=claims_to_be, client_id=claims_to_be)
    return BranchClient(cfg, Identity("b1", claims_to_be, "edge"), receiver=make_receiver(cfg),
                        subscriptions=subscriptions)


def drain(client: BranchClient) -> list[object]:
    assert client.receiver is not None
    out = []
    while not client.receiver.queue.empty():
        out.append(client.receiver.queue.get_nowait().message)
    return out


def a_request(**changes: object) -> AuthRequest:
    values: dict[str, object] = {
        "branch_id": "b1", "expires_at": utc_now() + timedelta(minutes=1), "device_id": "teller-1",
        "teller_id": "t-7",
        "transaction_id": "tx-1", "scenario": "card_replacement", "account_holder_id": CUSTOMER,
        "card": CardFields(card_type="resident", id_number="110105194912310021", name="x")}
    values.update(changes)
    return AuthRequest(**values)  # type: ignore[arg-type]


def test_a_certificate_is_its_device_whatever_username_password_and_client_id_come_with_it(
        provisioned_branch, mosquitto_broker, clients, tmp_path):  # noqa: F811
    """Scenario: rm-1's certificate connects with edge-1's username, password and client id,
    and subscribes to what only the edge may read.
    Expectation: the broker knows it as rm-1 (the certificate's CN): it gets what an RM may
    read and nothing of the edge's; the real edge-1 stays connected (its session is not
    taken over), and hears the teller's request the impostor wanted."""
    mosquitto_broker(provisioned_branch)
    edge = clients(provisioned_branch, "edge-1", T.auth_requests)
    teller = clients(provisioned_branch, "teller-1")
    intruder = impostor(provisioned_branch, tmp_path / "intruder", certificate_of="rm-1",
                        claims_to_be="edge-1", password_of="edge-1",
                        subscriptions=(T.auth_requests, T.arrivals))
    intruder.start()
    try:
        assert intruder.wait_connected(10), intruder.last_refusal
        request = a_request()
        teller.publish(request)
        assert wait_until(lambda: edge.receiver.queue.qsize() == 1, 10)
        control = arrival("b1")
        edge.publish(control)  # after the request: an RM may read it, so the impostor gets it
        assert wait_until(lambda: intruder.receiver.queue.qsize() >= 1, 10)
        assert drain(intruder) == [control]
        assert drain(edge) == [request]
        assert (edge.stats()["connects"], edge.stats()["disconnects"]) == (1, 0)
    finally:
        intruder.stop(drain_s=0)


def test_another_devices_client_id_does_not_take_over_its_session(
        provisioned_branch, mosquitto_broker, clients, tmp_path):  # noqa: F811
    """Scenario: the edge is offline with a persistent session in which an RM's outcome waits;
    rm-2, with its own certificate, connects with the client id ``edge-1``.
    Expectation: the broker gives rm-2 its own client id: the edge's session and the queued
    outcome stay the edge's, the edge gets the outcome when it comes back, and rm-2 is not
    disconnected by it (two sessions, not one fought over)."""
    mosquitto_broker(provisioned_branch)
    edge = make_client(provisioned_branch, "edge-1", tmp_path / "edge", subscriptions=(T.outcomes,))
    edge.start()
    assert edge.wait_connected(10)
    edge.stop(drain_s=0.5)  # persistent session: subscription kept, QoS 1 messages queued
    rm = clients(provisioned_branch, "rm-1")
    waiting = Outcome(branch_id="b1", arrival_id=str(uuid.uuid4()), visit_id=str(uuid.uuid4()),
                      customer_id=CUSTOMER, rm_id="rm-1", device_id="rm-1", result="interested")
    rm.publish(waiting)
    assert wait_until(lambda: len(rm.outbox) == 0, 10)
    intruder = clients(provisioned_branch, "rm-2", client_id="edge-1")
    back = clients(provisioned_branch, "edge-1", T.outcomes)
    assert wait_until(lambda: back.receiver.queue.qsize() == 1, 10), back.stats()
    assert drain(back) == [waiting]
    assert intruder.receiver.queue.empty()
    assert (intruder.stats()["connects"], intruder.stats()["disconnects"]) == (1, 0)
    assert intruder.connected


@pytest.fixture
def edge_rx(provisioned_branch, mosquitto_broker, tmp_path) -> Iterator[tuple[EdgeInbound, CrmStore]]:
    """The edge's receiving side as `branch-edge run` builds it (edge_inbound), with the roster
    `branch-edge provision` wrote, and a CRM that knows one visit: ``VISIT`` of ``c-1``."""
    mosquitto_broker(provisioned_branch)
    mqtt = client_config(provisioned_branch, "edge-1", tmp_path / "edge",
                         roster_file=roster_of(provisioned_branch, "edge-1"))
    cfg = EdgeConfig.model_validate({"branch_id": "b1", "mqtt": mqtt.model_dump(mode="json"),
                                     "auth": {"enabled": True}})
    crm = CrmStore.open(tmp_path / "crm.db")
    record_visit(crm, VISIT, CUSTOMER, utc_now().date())
    inbound = edge_inbound(cfg, crm)
    client = BranchClient(cfg.mqtt, Identity("b1", "edge-1", "edge"), receiver=inbound.receiver,
                          subscriptions=inbound.subscriptions)
    client.start()
    assert client.wait_connected(10)
    yield inbound, crm
    client.stop(drain_s=0.5)
    crm.close()


VISIT = str(uuid.uuid4())


def an_outcome(**changes: object) -> Outcome:
    values: dict[str, object] = {"branch_id": "b1", "arrival_id": str(uuid.uuid4()), "visit_id": VISIT,
                                     "customer_id": CUSTOMER, "rm_id": "rm-1", "device_id": "rm-1",
                                     "result": "product_sold", "product_ids": ["td-3y"]}
    values.update(changes)
    return Outcome(**values)  # type: ignore[arg-type]


def test_a_tablet_records_outcomes_only_as_its_rm_and_for_the_visits_customer(
        provisioned_branch, edge_rx, clients):  # noqa: F811
    """Scenario: RM rm-1's tablet sends outcomes naming RM rm-2 (taking the sale credit),
    for c-2 on c-1's visit, for a visit the edge never announced, naming rm-2 as the sending
    device, and one on rm-2's topic; then a genuine outcome.
    Expectation: the first four are rejected by the edge's receiver with their reason, the one
    on rm-2's topic is dropped by the broker (the ACL); only the genuine one is stored, credited
    to rm-1."""
    inbound, crm = edge_rx
    rm = clients(provisioned_branch, "rm-1")
    own = T.outcomes_of("rm-1")
    forged = {
        "wrong_staff": an_outcome(rm_id="rm-2"),
        "not_the_visits_customer": an_outcome(customer_id=OTHER_CUSTOMER),
        "unknown_visit": an_outcome(visit_id=str(uuid.uuid4())),
        "wrong_device": an_outcome(device_id="rm-2"),
    }
    for message in forged.values():
        assert rm.publish_raw(own, codec.encode(message))
    assert rm.publish_raw(T.outcomes_of("rm-2"), codec.encode(an_outcome(device_id="rm-2", rm_id="rm-2")))
    genuine = an_outcome(result="interested")
    rm.publish(genuine)

    def stored() -> list[tuple[str, str]]:
        with crm.lock:
            return [tuple(r) for r in crm.execute("SELECT message_id, rm_id FROM crm_outcomes").fetchall()]

    assert wait_until(lambda: bool(stored()), 10), inbound.receiver.stats()
    assert stored() == [(genuine.id, "rm-1")]
    stats = inbound.receiver.stats()
    assert {reason: stats.get(f"rejected.{reason}") for reason in forged} == dict.fromkeys(forged, 1)
    assert stats["rejected"] == len(forged) and stats["accepted"] == 1


def test_a_teller_terminal_asks_only_as_itself_and_answers_come_back_to_it(
        provisioned_branch, edge_rx, clients):  # noqa: F811
    """Scenario: teller-1 (teller t-7) sends authorization requests naming teller-2 as the
    terminal (the verdict would go there), naming teller t-9 (the audit actor), and one on
    teller-2's topic; an RM tablet sends one on its own id; supervisor sup-1 (s-1) sends a
    decision naming supervisor s-9; then genuine ones.
    Expectation: each forgery is rejected by the edge's receiver (or dropped by the broker for
    the foreign topic); the genuine request reaches the authorization service's inbox with the
    roster's teller as its actor, the decision with the roster's supervisor."""
    inbound, _ = edge_rx
    teller = clients(provisioned_branch, "teller-1")
    supervisor = clients(provisioned_branch, "sup-1")
    rm = clients(provisioned_branch, "rm-1")
    own = T.auth_requests_of("teller-1")
    assert teller.publish_raw(own, codec.encode(a_request(device_id="teller-2")))
    assert teller.publish_raw(own, codec.encode(a_request(teller_id="t-9")))
    assert teller.publish_raw(T.auth_requests_of("teller-2"), codec.encode(a_request(device_id="teller-2")))
    from_rm = a_request(device_id="rm-1", teller_id="rm-1")
    assert rm.publish_raw(T.auth_requests_of("rm-1"), codec.encode(from_rm))
    decision = AuthDecision(branch_id="b1", request_id=str(uuid.uuid4()), supervisor_id="s-9",
                            device_id="sup-1", decision="approve", reason="forged")
    assert supervisor.publish_raw(T.auth_decisions_of("sup-1"), codec.encode(decision))
    genuine = a_request()
    teller.publish(genuine)
    real = AuthDecision(branch_id="b1", request_id=genuine.id, supervisor_id="s-1", device_id="sup-1",
                        decision="reject", reason="not the holder")
    supervisor.publish(real)
    got = [inbound.auth_inbox.get(timeout=10) for _ in range(2)]
    assert sorted((d.message.SCHEMA, d.author, d.actor) for d in got) == [
        ("auth_decision", "sup-1", "s-1"), ("auth_request", "teller-1", "t-7")]
    assert wait_until(lambda: inbound.receiver.stats()["rejected"] == 3, 10), inbound.receiver.stats()
    stats = inbound.receiver.stats()
    assert (stats.get("rejected.wrong_device"), stats.get("rejected.wrong_staff")) == (1, 2)
    assert stats["accepted"] == 2 and inbound.auth_inbox.empty()  # the ACL dropped the other two


def test_the_audit_names_the_teller_and_supervisor_bound_to_the_sending_devices(bus, photos, db, keys):
    """Scenario: terminal teller-1 (teller t-7 on the roster) sends a request naming teller t-9,
    then a genuine one that escalates; supervisor PAD sup-1 (s-1) approves it.
    Expectation: the forged request gets no answer and no audit entry; the genuine one is
    answered on teller-1's own response topic (the only one the terminal reads), and the audit
    log's actors are the roster's teller and supervisor: the names the receiver verified."""
    edge = bus()
    forged = replace(request(photos, live=False), teller_id="t-9")
    edge.teller.publish(forged)
    genuine = request(photos, live=False)  # no live frames: only a supervisor can approve
    edge.teller.publish(genuine)
    assert wait_until(lambda: bool(edge.escalations), 30)
    edge.supervisor.publish(AuthDecision(branch_id="b1", request_id=genuine.id, supervisor_id="s-1",
                                         device_id="sup-1", decision="approve", reason="known"))
    answer = edge.final(genuine)
    assert answer.verdict == "approve" and answer.decided_by == "s-1" and answer.device_id == "teller-1"
    with Store.open(db, keys, create=False) as store:
        actors = [(e["actor"], e["action"]) for e in store.audit_entries(genuine.id)]
    assert actors == [("t-7", "auth_requested"), ("edge-auth", "auth_escalated"),
                      ("s-1", "auth_supervisor_decision"), ("s-1", "auth_decided")]
    assert audit_actions(db, keys, forged.id) == []
    assert not any(r.request_id == forged.id for r in edge.responses)
    assert edge.edge.receiver.stats()["rejected.wrong_staff"] == 1


def test_a_pad_takes_claims_only_from_the_rm_bound_to_the_sending_tablet(
        provisioned_branch, mosquitto_broker, clients, tmp_path):  # noqa: F811
    """Scenario: RM rm-2's PAD runs; rm-1's tablet claims a customer as RM rm-99 (who does not
    exist), as RM rm-2 (the PAD's own RM), as device rm-2; then genuinely as RM rm-1.
    Expectation: the PAD's receiver rejects the three forgeries; the genuine claim is shown,
    its actor rm-1."""
    mosquitto_broker(provisioned_branch)
    mqtt = client_config(provisioned_branch, "rm-2", tmp_path / "pad",
                         roster_file=roster_of(provisioned_branch, "rm-2"))
    pad = PadLink(PadConfig.model_validate({"branch_id": "b1", "role": "rm", "rm_id": "rm-2", "mqtt": mqtt}))
    pad.start()
    try:
        assert pad.client.wait_connected(10)
        rm = clients(provisioned_branch, "rm-1")
        ids = {"arrival_id": str(uuid.uuid4()), "visit_id": str(uuid.uuid4()), "customer_id": CUSTOMER}
        own = T.claims_of("rm-1")
        for rm_id, device in (("rm-99", "rm-1"), ("rm-2", "rm-1"), ("rm-1", "rm-2")):
            forged = Claim(branch_id="b1", rm_id=rm_id, device_id=device, **ids)
            assert rm.publish_raw(own, codec.encode(forged))
        genuine = Claim(branch_id="b1", rm_id="rm-1", device_id="rm-1", **ids)
        rm.publish(genuine)
        delivery = pad.receiver.queue.get(timeout=10)
        assert (delivery.message, delivery.author, delivery.actor) == (genuine, "rm-1", "rm-1")
        stats = pad.receiver.stats()
        assert (stats.get("rejected.wrong_staff"), stats.get("rejected.wrong_device")) == (2, 1)
        assert stats["rejected"] == 3
    finally:
        pad.stop()


def test_a_pad_is_who_the_roster_says_and_refuses_to_start_as_someone_else(
        provisioned_branch, tmp_path) -> None:
    """A PAD takes its RM from the roster; one whose pad.toml names another RM than the roster
    binds to its device, or another role, would have everything it sends rejected: it says so
    at start instead."""

    mqtt = client_config(provisioned_branch, "rm-2", tmp_path / "pad",
                         roster_file=roster_of(provisioned_branch, "rm-2"))
    for config in ({"role": "rm", "rm_id": "rm-1"}, {"role": "teller", "rm_id": "rm-2"}):
        with pytest.raises(MqttError, match="roster"):
            PadLink(PadConfig.model_validate({"branch_id": "b1", "mqtt": mqtt, **config}))
    teller = client_config(provisioned_branch, "teller-1", tmp_path / "teller",
                           roster_file=roster_of(provisioned_branch, "teller-1"))
    link = PadLink(PadConfig.model_validate({"branch_id": "b1", "role": "teller", "mqtt": teller}))
    try:
        assert link.config.effective_rm_id == "t-7"  # what its requests name as their teller
    finally:
        link.stop()


def test_a_client_refuses_to_publish_under_another_devices_topic(provisioned_branch, tmp_path) -> None:
    """The sending side says it before the broker drops it silently (MQTT 3.1.1 has no refusal)."""
    client = make_client(provisioned_branch, "rm-1", tmp_path / "rm")
    try:
        with pytest.raises(codec.EncodeError, match="own id"):
            client.publish(an_outcome(device_id="rm-2"))
        assert len(client.outbox) == 0
    finally:
        client.stop(drain_s=0)

