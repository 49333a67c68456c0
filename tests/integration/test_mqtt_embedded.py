"""The demo's embedded broker, driven by our real paho-based client."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mqtt.client import BranchClient, Identity
from mqtt.config import MqttConfig
from mqtt.dedup import SeenIds
from mqtt.embedded import EmbeddedBroker, topic_matches
from mqtt.messages import DeviceStatus
from mqtt.receiver import Receiver
from mqtt.topics import BranchTopics
from tests.mqtt_fixtures import arrival, wait_until

T = BranchTopics("b1")


@pytest.fixture
def broker() -> Iterator[EmbeddedBroker]:
    server = EmbeddedBroker()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def connect(broker: EmbeddedBroker, tmp_path: Path) -> Iterator[Callable[..., BranchClient]]:
    made: list[BranchClient] = []

    def start(device: str, role: str, *subs: str) -> BranchClient:
        cfg = MqttConfig(
            host="127.0.0.1", port=broker.port, device_id=device, reconnect_min_s=0.1,
            reconnect_max_s=0.5, outbox_path=tmp_path / f"{device}-{len(made)}.db",
        )
        client = BranchClient(cfg, Identity("b1", device, role),  # type: ignore[arg-type]
                              receiver=Receiver(SeenIds(":memory:")), subscriptions=subs)
        client.start()
        assert client.wait_connected(5)
        made.append(client)
        return client

    yield start
    for client in made:
        client.stop(drain_s=0.2)


def test_delivers_and_queues_for_an_offline_persistent_session(connect):
    rm = connect("rm-1", "rm", T.arrivals)
    edge = connect("edge-1", "edge")
    edge.publish(arrival("b1", 1))
    assert wait_until(lambda: rm.receiver.stats().get("accepted") == 1, 5)
    rm.stop(drain_s=0.1)
    for seq in range(2, 12):
        edge.publish(arrival("b1", seq))
    assert wait_until(lambda: len(edge.outbox) == 0, 5)
    back = connect("rm-1", "rm")  # same client id, no new subscription: the session kept it
    assert wait_until(lambda: back.receiver.stats().get("accepted") == 10, 5), back.receiver.stats()


def test_retained_status_and_last_will(connect, broker):
    connect("edge-1", "edge")
    watcher = connect("rm-1", "rm", T.leaf("status/+"))
    assert wait_until(lambda: watcher.receiver.queue.qsize() >= 2, 5)  # retained edge + own
    statuses = [watcher.receiver.queue.get_nowait().message for _ in range(2)]
    assert {(s.device_id, s.state) for s in statuses} == {("edge-1", "online"), ("rm-1", "online")}
    # A client that vanishes without DISCONNECT: its will is published.
    will = DeviceStatus(branch_id="b1", device_id="pad-x", role="rm", state="offline")
    from mqtt.codec import encode

    sock = socket.create_connection(("127.0.0.1", broker.port))
    sock.sendall(_connect_with_will(T.status("pad-x"), encode(will)))
    assert sock.recv(4)[:2] == b"\x20\x02"
    sock.close()
    assert wait_until(lambda: watcher.receiver.queue.qsize() >= 1, 5)
    assert watcher.receiver.queue.get_nowait().message == will


def _connect_with_will(topic: str, payload: bytes) -> bytes:
    def utf8(data: bytes) -> bytes:
        return len(data).to_bytes(2, "big") + data

    flags = 0x02 | 0x04 | 0x08 | 0x20  # clean, will, will QoS 1, will retain
    body = utf8(b"MQTT") + bytes([4, flags]) + b"\x00\x3c" + utf8(b"pad-x")
    body += utf8(topic.encode()) + utf8(payload)
    assert len(body) < 16384
    return bytes([0x10, (len(body) & 0x7F) | 0x80, len(body) >> 7]) + body


@pytest.mark.parametrize(
    ("pattern", "topic", "match"),
    [
        ("a/+/c", "a/b/c", True),
        ("a/#", "a", True),
        ("a/#", "a/b/c", True),
        ("a/+", "a/b/c", False),
        ("a/b", "a/b/c", False),
        ("+/b", "a/b", True),
    ],
)
def test_topic_filters(pattern, topic, match):
    assert topic_matches(pattern, topic) is match


def test_refuses_non_loopback_addresses():
    with pytest.raises(ValueError, match="loopback"):
        EmbeddedBroker(host="0.0.0.0")
