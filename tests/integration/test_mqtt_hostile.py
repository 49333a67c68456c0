"""Messages that used to kill receivers, and floods, against a real Mosquitto and the real
receiving sides: the edge's (``edge_inbound``, as `branch-edge run` builds it) and a PAD's
(``ui.state.link.PadLink``)."""

from __future__ import annotations

import contextlib
import json
import ssl
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from edge.config import EdgeConfig
from edge.crm.outcomes import record_visit
from edge.crm.records import CrmStore
from edge.lobby.daemon import EdgeDaemon
from edge.lobby.inbound import edge_inbound
from mqtt import codec
from mqtt.client import BranchClient, Identity
from mqtt.messages import Claim, Outcome, utc_now
from mqtt.provision.run import ProvisionResult
from mqtt.topics import BranchTopics
from tests.integration.test_mqtt_broker import clients  # noqa: F401 - a fixture
from tests.mqtt_fixtures import _conf_port, arrival, client_config, wait_until
from ui.state.config import PadConfig
from ui.state.link import PadLink

T = BranchTopics("b1")
VISIT = str(uuid.uuid4())


def claim(device: str = "rm-1", rm: str = "RM-01") -> Claim:
    return Claim(branch_id="b1", arrival_id=str(uuid.uuid4()), visit_id=str(uuid.uuid4()),
                 customer_id="c-1", rm_id=rm, device_id=device)


def outcome() -> Outcome:
    return Outcome(branch_id="b1", arrival_id=str(uuid.uuid4()), visit_id=VISIT, customer_id="c-1",
                   rm_id="RM-01", device_id="rm-1", result="interested")


def triggers(valid: bytes) -> dict[str, bytes]:
    """The payloads that stopped receivers for good, keyed by the reason they are now refused with.

    ``valid`` is a well-formed message of the topic; the calendar and digits triggers are
    that message with one value replaced, so nothing else about them is wrong."""
    body = json.loads(valid)
    calendar = json.dumps({**body, "sent_at": "9999-12-31T23:59:59-23:59"}).encode()  # OverflowError
    digits = valid[:-1] + b',"x":' + b"7" * 5000 + b"}"  # ValueError: int() beyond 4300 digits
    deep = b"[" * 60_000 + b"]" * 60_000  # RecursionError in the JSON parser
    return {"too_deep": deep, "bad_value": calendar, "too_long": digits}


def rejections(stats: dict[str, int]) -> dict[str, int]:
    return {k.removeprefix("rejected."): v for k, v in stats.items() if k.startswith("rejected.")}


@pytest.fixture
def pad_of(provisioned_branch: ProvisionResult, tmp_path: Path) -> Iterator:  # -> Callable[..., PadLink]
    """Starts rm-2's PAD link (same state folder each time: a restarted app); stopped at the end."""
    running: list[PadLink] = []

    def start(**mqtt: object) -> PadLink:
        cfg = client_config(provisioned_branch, "rm-2", tmp_path / "pad", **mqtt)
        link = PadLink(PadConfig.model_validate({"branch_id": "b1", "role": "rm", "mqtt": cfg}))
        link.start()
        running.append(link)
        assert link.client.wait_connected(10)
        return link

    yield start
    for link in running:
        with contextlib.suppress(Exception):  # the ones a test stopped already
            link.stop()


def test_messages_that_killed_receivers_are_counted_and_the_next_one_is_handled(  # noqa: PLR0917
        provisioned_branch, mosquitto_broker, clients, pad_of, tmp_path, engine):  # noqa: F811
    """Scenario: deeply nested JSON (RecursionError), a date-time at the end of the calendar
    with an offset (OverflowError) and an integer of 5000 digits (ValueError) go to the edge
    (as outcomes) and to a PAD (as claims and arrivals); then a valid message to each.
    Expectation: every trigger is one rejection with its reason on each receiver, acknowledged
    and dropped, and the edge daemon's metrics count it; the valid messages are handled (the
    outcome stored, the arrival shown)."""
    mosquitto_broker(provisioned_branch)
    mqtt = client_config(provisioned_branch, "edge-1", tmp_path / "edge")
    cfg = EdgeConfig.model_validate({"branch_id": "b1", "mqtt": mqtt.model_dump(mode="json")})
    crm = CrmStore.open(tmp_path / "crm.db")
    record_visit(crm, VISIT, "c-1", utc_now().date())
    inbound = edge_inbound(cfg, crm)
    edge = BranchClient(cfg.mqtt, Identity("b1", "edge-1", "edge"), receiver=inbound.receiver,
                        subscriptions=inbound.subscriptions)
    metrics = EdgeDaemon(cfg, engine, lambda: None, edge).metrics  # type: ignore[arg-type,return-value]
    edge.start()
    try:
        assert edge.wait_connected(10)
        pad = pad_of()
        rm = clients(provisioned_branch, "rm-1")
        for payload in triggers(codec.encode(outcome())).values():
            assert rm.publish_raw(T.outcomes_of("rm-1"), payload)
        for payload in triggers(codec.encode(claim())).values():
            assert rm.publish_raw(T.claims_of("rm-1"), payload)
        for payload in triggers(codec.encode(arrival("b1"))).values():
            assert edge.publish_raw(T.arrivals, payload)
        good = outcome()
        rm.publish(good)
        shown = arrival("b1")
        edge.publish(shown)

        def stored() -> bool:
            with crm.lock:
                return crm.execute("SELECT 1 FROM crm_outcomes WHERE message_id = ?", (good.id,)).fetchone()

        assert wait_until(stored, 10), inbound.receiver.stats()
        assert rejections(inbound.receiver.stats()) == {"too_deep": 1, "bad_value": 1, "too_long": 1}
        exported = {(s.name, tuple(s.labels.values())): s.value
                    for family in text_string_to_metric_families(generate_latest(metrics.registry).decode())
                    for s in family.samples if s.name.startswith("branch_edge_mqtt_")}
        by_reason = {labels[0]: value for (name, labels), value in exported.items()
                     if name == "branch_edge_mqtt_rejected_total"}
        assert by_reason == {"too_deep": 1, "bad_value": 1, "too_long": 1}
        assert exported[("branch_edge_mqtt_received_total", ("accepted",))] == 1
        assert pad.receiver.queue.get(timeout=10).message == shown
        assert rejections(pad.receiver.stats()) == {"too_deep": 2, "bad_value": 2, "too_long": 2}
        assert edge.connected and pad.connected
    finally:
        edge.stop(drain_s=0.5)
        crm.close()


def test_a_poison_message_redelivered_after_a_reconnect_is_dropped_once_and_not_again(
        provisioned_branch, mosquitto_broker, clients, pad_of):  # noqa: F811
    """Scenario: a PAD is offline when a poison claim is queued for it (persistent session);
    it starts, then restarts again.
    Expectation: the first start gets the poison, counts it and acknowledges it, and handles the
    valid claim queued behind it; after the second start the broker has nothing to redeliver
    (the poison is gone) and the next valid claim is handled with nothing rejected."""
    mosquitto_broker(provisioned_branch)
    pad = pad_of()
    pad.stop()  # offline; its session keeps its subscriptions and queues QoS 1 messages
    rm = clients(provisioned_branch, "rm-1")
    poison = triggers(codec.encode(claim()))["too_deep"]
    assert rm.publish_raw(T.claims_of("rm-1"), poison)
    first = claim()
    rm.publish(first)
    assert wait_until(lambda: len(rm.outbox) == 0, 10)

    pad = pad_of()
    assert pad.receiver.queue.get(timeout=10).message == first
    assert rejections(pad.receiver.stats()) == {"too_deep": 1}
    pad.stop()

    pad = pad_of()
    second = claim()
    rm.publish(second)
    before = []
    while (message := pad.receiver.queue.get(timeout=10).message) != second:
        before.append(message)
    assert before == [first]  # the PAD's journal shows what it showed before the restart
    assert pad.receiver.stats()["rejected"] == 0


def flood(prov: ProvisionResult, device: str, topic: str, payloads: list[bytes]) -> None:
    """Publish ``payloads`` as fast as one connection goes (QoS 1, no waiting between them),
    with ``device``'s certificate; returns when the broker has acknowledged every one."""
    folder = prov.device_dir(device)
    client = paho.Client(CallbackAPIVersion.VERSION2, f"{device}-flood", protocol=paho.MQTTv311)
    ctx = ssl.create_default_context(cafile=str(folder / "ca.crt"))
    ctx.load_cert_chain(str(folder / "client.crt"), str(folder / "client.key"))
    client.tls_set_context(ctx)
    client.username_pw_set(device, (folder / "password").read_text().strip())
    client.max_inflight_messages_set(500)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", _conf_port(prov))
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, 1) for payload in payloads]
        for info in infos:
            info.wait_for_publish(60)
            assert info.is_published()
    finally:
        client.disconnect()
        client.loop_stop()


def test_a_flood_from_one_device_is_cut_to_its_rate_and_others_get_through(
        provisioned_branch, mosquitto_broker, pad_of):
    """Scenario: rm-1 sends 5000 valid-looking claims as fast as it can (a compromised tablet);
    then the edge sends an arrival.  The PAD allows a device 5 messages a second after a
    burst of 50 (``device_rate_per_s``, ``device_burst``; the defaults are 20 and 200).
    Expectation: the PAD shows the arrival; of rm-1's claims it handled no more than its
    bucket allows over the time the test took, and dropped and counted the rest
    (``rate_limited``) before decoding them."""
    mosquitto_broker(provisioned_branch)
    pad = pad_of(device_rate_per_s=5.0, device_burst=50)
    started = time.monotonic()
    flood(provisioned_branch, "rm-1", T.claims_of("rm-1"), [codec.encode(claim()) for _ in range(5000)])
    edge_cfg = client_config(provisioned_branch, "edge-1", pad.config.mqtt.outbox_path.parent / "edge")
    edge = BranchClient(edge_cfg, Identity("b1", "edge-1", "edge"))
    edge.start()
    try:
        assert edge.wait_connected(10)
        shown = arrival("b1")
        edge.publish(shown)
        handled = []
        while (delivery := pad.receiver.queue.get(timeout=30)).message != shown:
            handled.append(delivery.message)
        elapsed = time.monotonic() - started
    finally:
        edge.stop(drain_s=0.5)
    stats = pad.receiver.stats()
    assert all(isinstance(m, Claim) for m in handled)
    assert len(handled) <= 50 + 5.0 * elapsed + 1, (len(handled), elapsed)
    assert stats["rate_limited"] >= 5000 - (50 + 5.0 * elapsed + 1)
    assert stats["rejected"] == 0
