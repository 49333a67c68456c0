"""The outbox keeps a message until the broker's PUBACK, with the broker frozen in between.

The broker is stopped with SIGSTOP (a real Mosquitto, the shipped config): its socket stays
open, so the client goes on believing it is connected and hands every stored message to paho,
but no PUBACK can come back.  Whatever the sender does in that state, the rows must stay; once
the broker runs again (SIGCONT) every message is delivered and only then removed.  Nothing here
depends on timing: each wait is on a condition (messages in flight, sender passes, deliveries).
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mqtt.client import BranchClient
from mqtt.messages import Arrival
from mqtt.outbox import Outbox
from mqtt.receiver import Delivery
from mqtt.topics import BranchTopics
from tests.mqtt_fixtures import MosquittoBroker, arrival, make_client, wait_until

COUNT = 20
TIMEOUT = 60  # generous for a loaded machine; every wait ends on its condition


class SenderPasses:
    """Counts the sender thread's passes over the outbox (each pass reads ``pending``)."""

    def __init__(self, outbox: Outbox) -> None:
        self._lock = threading.Lock()
        self.count = 0
        original = outbox.pending

        def counting(*args, **kwargs):
            rows = original(*args, **kwargs)
            with self._lock:
                self.count += 1
            return rows

        outbox.pending = counting  # type: ignore[method-assign]

    def wait(self, more: int) -> bool:
        """Wait until the sender has made ``more`` further passes."""
        target = self.count + more
        return wait_until(lambda: self.count >= target, TIMEOUT)


@pytest.fixture
def frozen(provisioned_branch, mosquitto_broker) -> Iterator[MosquittoBroker]:
    """A running broker that the test freezes; whatever happens, it is thawed before teardown."""
    broker = mosquitto_broker(provisioned_branch)
    yield broker
    if broker.proc is not None and broker.proc.poll() is None:
        os.kill(broker.proc.pid, signal.SIGCONT)


def connected_edge(provisioned_branch, state: Path) -> BranchClient:
    # A long keep-alive: the frozen broker answers no PINGREQ, and the client must stay
    # "connected" (sending) for the whole freeze.
    edge = make_client(provisioned_branch, "edge-1", state, keepalive_s=600)
    edge.start()
    assert edge.wait_connected(10)
    return edge


def test_rows_stay_in_the_outbox_until_the_broker_acknowledges_them(
        provisioned_branch, frozen: MosquittoBroker, tmp_path: Path) -> None:
    delivered: dict[str, Arrival] = {}
    lock = threading.Lock()

    def collect(delivery: Delivery) -> None:
        if isinstance(delivery.message, Arrival):
            with lock:
                delivered[delivery.message.id] = delivery.message

    rm = make_client(provisioned_branch, "rm-1", tmp_path / "rm", (BranchTopics("b1").arrivals,),
                     handler=collect)
    rm.start()
    assert rm.wait_connected(10)
    edge = connected_edge(provisioned_branch, tmp_path / "edge")
    passes = SenderPasses(edge.outbox)
    try:
        assert frozen.proc is not None
        os.kill(frozen.proc.pid, signal.SIGSTOP)
        sent = [arrival("b1") for _ in range(COUNT)]
        for message in sent:
            edge.publish(message)
        ids = {m.id for m in sent}

        # Every message has been handed to paho (written towards the broker, awaiting PUBACK),
        # or some row is already gone (the fault this test is for)...
        assert wait_until(lambda: edge.stats()["inflight"] == COUNT or len(edge.outbox) < COUNT,
                          TIMEOUT), edge.stats()
        # ...and the sender has gone over the outbox twice more since: had it removed anything
        # before the acknowledgement, the rows would be gone by now.
        assert passes.wait(2)
        assert edge.connected  # still sending: the broker's socket is open, only frozen
        assert len(edge.outbox) == COUNT
        assert {p.message_id for p in edge.outbox.pending(limit=COUNT + 1)} == ids
        assert edge.stats()["acked"] == 0
        with lock:
            assert not delivered

        os.kill(frozen.proc.pid, signal.SIGCONT)
        assert wait_until(lambda: len(delivered) == COUNT, TIMEOUT), rm.stats()
        with lock:
            assert set(delivered) == ids
        # Acknowledged, then removed: the outbox empties on its own, one removal per PUBACK.
        assert wait_until(lambda: len(edge.outbox) == 0, TIMEOUT), edge.stats()
        assert edge.stats()["acked"] == COUNT
    finally:
        if frozen.proc is not None and frozen.proc.poll() is None:
            os.kill(frozen.proc.pid, signal.SIGCONT)
        edge.stop(drain_s=1)
        rm.stop(drain_s=0.1)
