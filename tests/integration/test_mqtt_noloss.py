"""Nothing lost: 2,000 arrivals through two broker restarts and a SIGKILLed publisher."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from pathlib import Path

from mqtt.dedup import SeenIds
from mqtt.outbox import Outbox
from mqtt.topics import BranchTopics
from tests.mqtt_fixtures import RUN_NAMESPACE, make_client, wait_until

TOTAL = 2000


class Publisher:
    """``python -m tests.mqtt_fixtures publish``: the edge-1 process, its progress read from stdout."""

    def __init__(self, pki: Path, state: Path, port: int, first: int, count: int) -> None:
        cmd = [
            sys.executable, "-m", "tests.mqtt_fixtures", "publish", "--pki", str(pki),
            "--state", str(state), "--port", str(port), "--first", str(first),
            "--count", str(count), "--rate", "500",
        ]
        env = {**os.environ, "PYTHONPATH": os.getcwd()}
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env)
        self.last_stored = first - 1
        self.drained: str | None = None
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            word, value = line.split()
            if word == "stored":
                self.last_stored = int(value)
            elif word == "drained":
                self.drained = value

    def wait_stored(self, seq: int) -> None:
        assert wait_until(lambda: self.last_stored >= seq, 60), f"stuck at {self.last_stored}"

    def kill(self) -> None:
        self.proc.kill()
        self.finish()

    def finish(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout)
        self._reader.join(5)
        assert self.proc.stdout is not None
        self.proc.stdout.close()
        return code


def test_no_arrival_is_lost_through_broker_restarts_and_a_publisher_crash(
    provisioned_branch, mosquitto_broker, tmp_path
):
    broker = mosquitto_broker(provisioned_branch)
    rm = make_client(provisioned_branch, "rm-1", tmp_path / "rm", (BranchTopics("b1").arrivals,))
    rm.start()
    assert rm.wait_connected(10)
    edge_state = tmp_path / "edge"
    first = Publisher(provisioned_branch.out, edge_state, broker.port, 0, TOTAL)
    try:
        first.wait_stored(300)
        broker.stop()  # restart 1: the publisher keeps storing into its outbox meanwhile
        first.wait_stored(600)
        broker.start()
        first.wait_stored(900)
        broker.stop()  # restart 2, and the publisher dies while the broker is down
        first.wait_stored(1100)
        first.kill()
    finally:
        first.proc.kill()
    crashed_at = first.last_stored
    stranded = _outbox_size(edge_state / "edge-1-outbox.db")
    broker.start()
    rest = TOTAL - crashed_at - 1
    second = Publisher(provisioned_branch.out, edge_state, broker.port, crashed_at + 1, rest)
    assert second.finish() == 0
    assert second.drained == "True"
    assert rm.receiver is not None
    assert wait_until(lambda: rm.receiver.queue.qsize() >= TOTAL, 60), rm.stats()
    ids = []
    while not rm.receiver.queue.empty():
        ids.append(rm.receiver.queue.get_nowait().message.id)
    stats = rm.stats()
    rm.stop(drain_s=0.1)
    expected = {str(uuid.uuid5(RUN_NAMESPACE, f"b1-{seq}")) for seq in range(TOTAL)}
    print(f"noloss: published={TOTAL} crashed_at={crashed_at} stranded_in_outbox={stranded}"
          f" received={len(ids)} unique={len(set(ids))} receiver={stats['received']}")
    assert stranded > 0, "the crash should have left arrivals in the outbox"
    assert len(ids) == len(set(ids)) == TOTAL
    assert set(ids) == expected


def _outbox_size(path: Path) -> int:
    outbox = Outbox(path)
    try:
        return len(outbox)
    finally:
        outbox.close()


def test_seen_ids_survive_a_restart_and_stay_bounded(tmp_path):
    clock = [1000.0]
    seen = SeenIds(tmp_path / "seen.db", ttl_s=100, max_ids=1000, clock=lambda: clock[0])
    assert seen.first_time("a")
    assert not seen.first_time("a")
    seen.close()
    seen = SeenIds(tmp_path / "seen.db", ttl_s=100, max_ids=1000, clock=lambda: clock[0])
    assert not seen.first_time("a"), "forgot a seen id across a restart"
    for i in range(1500):
        seen.first_time(f"id-{i}")
    seen.prune()
    assert len(seen) == 1000
    clock[0] += 101
    seen.prune()
    assert len(seen) == 0
    assert seen.first_time("a")


def test_outbox_keeps_order_ignores_repeated_ids_and_survives_reopening(tmp_path):
    box = Outbox(tmp_path / "o.db")
    assert box.put("m1", "t", b"1")
    assert box.put("m2", "t", b"2")
    assert not box.put("m1", "t", b"1-again")
    box.close()
    box = Outbox(tmp_path / "o.db")
    first, second = box.pending()
    assert (first.message_id, first.payload, second.message_id) == ("m1", b"1", "m2")
    assert [p.message_id for p in box.pending(exclude={first.seq})] == ["m2"]
    box.remove(first.seq)
    assert len(box) == 1
    box.close()
