"""The demo's MQTT leg: arrivals go from the edge's outbox through a broker to a
console PAD subscriber.  With no ``[mqtt] host`` configured the embedded
loopback broker is started, so the demo needs nothing installed."""

from __future__ import annotations

import contextlib
import queue
import time
from collections.abc import Iterator
from pathlib import Path

from mqtt.client import BranchClient, Identity
from mqtt.config import MqttConfig
from mqtt.dedup import SeenIds
from mqtt.embedded import EmbeddedBroker
from mqtt.messages import Arrival
from mqtt.receiver import Receiver
from mqtt.topics import BranchTopics

CONNECT_TIMEOUT_S = 10.0


@contextlib.contextmanager
def demo_broker(cfg: MqttConfig) -> Iterator[MqttConfig]:
    """The configured broker, or an embedded one on a free loopback port."""
    if cfg.host:
        yield cfg
        return
    broker = EmbeddedBroker()
    port = broker.start()
    try:
        yield cfg.model_copy(update={"host": "127.0.0.1", "port": port})
    finally:
        broker.stop()


def _client(cfg: MqttConfig, branch_id: str, device: str, role: str, *, state: Path,
            receiver: Receiver | None = None, subscriptions: tuple[str, ...] = ()) -> BranchClient:
    device_cfg = cfg.model_copy(update={
        "device_id": device, "client_id": f"{device}-{branch_id}",
        "outbox_path": state / f"{device}-outbox.db", "seen_ids_path": state / f"{device}-seen.db",
    })
    identity = Identity(branch_id=branch_id, device_id=device, role=role)  # type: ignore[arg-type]
    client = BranchClient(device_cfg, identity, receiver=receiver, subscriptions=subscriptions)
    client.start()
    if not client.wait_connected(CONNECT_TIMEOUT_S):
        client.stop(0)
        raise ConnectionError(f"{device}: cannot connect to the broker at {cfg.host}:{cfg.port}")
    return client


def deliver_arrivals(cfg: MqttConfig, branch_id: str, arrivals: list[Arrival], state: Path,
                     timeout_s: float = 15.0) -> tuple[list[Arrival], float]:
    """Publish ``arrivals`` as the edge and collect them as an RM PAD.

    Returns what the PAD received (in arrival order) and the seconds it took.
    """
    state.mkdir(parents=True, exist_ok=True)
    received: list[Arrival] = []
    with demo_broker(cfg) as bus:
        receiver = Receiver(SeenIds(state / "pad-seen.db"))
        pad = _client(bus, branch_id, "pad-rm-demo", "rm", state=state, receiver=receiver,
                      subscriptions=(BranchTopics(branch_id).arrivals,))
        edge = _client(bus, branch_id, "edge", "edge", state=state)
        started = time.monotonic()
        for arrival in arrivals:
            edge.publish(arrival)
        deadline = started + timeout_s
        while len(received) < len(arrivals) and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                message = receiver.queue.get(timeout=0.1).message
                if isinstance(message, Arrival):
                    received.append(message)
        elapsed = time.monotonic() - started
        edge.stop()
        pad.stop()
    return received, elapsed
