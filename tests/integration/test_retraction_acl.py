"""Only the edge retracts: a tablet cannot make every PAD drop a customer (real Mosquitto with
the generated ACL), and a retraction waits in the broker for a PAD that is offline."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from mqtt import codec
from mqtt.messages import Retraction, utc_now
from mqtt.provision.acl import ROLE_RULES
from mqtt.topics import BranchTopics
from tests.mqtt_fixtures import make_client, wait_until

T = BranchTopics("b1")


def a_retraction(customer_id: str) -> Retraction:
    now = utc_now()
    return Retraction(branch_id="b1", expires_at=now + timedelta(minutes=15), customer_id=customer_id,
                      erased_at=now)


def test_only_the_edge_writes_retractions_and_only_rm_pads_read_them() -> None:
    writers = {role for role, (writes, _) in ROLE_RULES.items() if "retractions" in writes}
    readers = {role for role, (_, reads) in ROLE_RULES.items() if "retractions" in reads}
    assert (writers, readers) == ({"edge"}, {"rm"})


def test_a_pad_cannot_forge_a_retraction_and_an_offline_pad_gets_the_real_one(
        provisioned_branch, mosquitto_broker, tmp_path: Path) -> None:
    mosquitto_broker(provisioned_branch)
    watcher = make_client(provisioned_branch, "rm-2", tmp_path / "rm-2", subscriptions=(T.retractions,))
    forger = make_client(provisioned_branch, "rm-1", tmp_path / "rm-1")
    edge = make_client(provisioned_branch, "edge-1", tmp_path / "edge-1")
    clients = [watcher, forger, edge]
    try:
        for client in clients:
            client.start()
            assert client.wait_connected(10), client.last_refusal
        watcher.stop(drain_s=0.1)  # subscribed once: its session now waits for it
        clients.remove(watcher)
        forged = a_retraction("c-someone-elses-vip")
        assert forger.publish_raw(T.retractions, codec.encode(forged))  # acknowledged, then dropped
        real = a_retraction("c-erased")
        edge.publish(real)
        assert wait_until(lambda: len(edge.outbox) == 0, 10)
        back = make_client(provisioned_branch, "rm-2", tmp_path / "rm-2", subscriptions=(T.retractions,))
        clients.append(back)
        back.start()
        assert back.receiver is not None
        assert wait_until(lambda: back.receiver.queue.qsize() >= 1, 10), back.stats()
        got = [back.receiver.queue.get_nowait().message for _ in range(back.receiver.queue.qsize())]
        assert got == [real]  # the forged one was published first and never arrives
    finally:
        for client in clients:
            client.stop(drain_s=0.2)
