"""Head office on the central broker: sends erasures and gallery packages to the branches,
takes their acknowledgements, and sends again what was not acknowledged.

Every ``resend_s`` an erasure a branch has not confirmed goes out again (under a new message
id; the branch applies each erasure id once and answers with the same acknowledgement), and a
package not yet applied is probed with its last chunk: the branch answers with the chunks it
is missing (sent next), or that it applied or refused it.  The registry is the record: a
head-office restart loses nothing (what was not confirmed is sent again), so the client's
outbox may live in memory.

The branch an acknowledgement is from is the branch of its topic, which the central broker
lets only that branch's bridge write (``mqtt.provision.acl.central_acl_entry``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

from hq.packages import chunks
from hq.registry import ErasureAckRow, Registry
from mqtt.client import BranchClient, Identity
from mqtt.config import MqttConfig
from mqtt.dedup import SeenIds
from mqtt.files import read_bounded
from mqtt.messages import Erasure, ErasureAck, GalleryAck
from mqtt.package import MAX_PACKAGE_BYTES
from mqtt.receiver import Delivery, Receiver
from mqtt.topics import every_branch, split_topic

log = logging.getLogger(__name__)

HOME = "hq"  # head office's own status lives under this pseudo-branch


def hq_subscriptions() -> tuple[str, ...]:
    return every_branch("fleet/erasure_acks"), every_branch("fleet/gallery_acks")


def hq_client(cfg: MqttConfig, version: str = "") -> BranchClient:
    receiver = Receiver(SeenIds(cfg.seen_ids_path, cfg.seen_ids_ttl_s, cfg.seen_ids_max),
                        max_payload_bytes=cfg.max_payload_bytes)
    return BranchClient(cfg, Identity(HOME, cfg.device_id, "central", version), receiver=receiver,
                        subscriptions=hq_subscriptions())


class HqService:
    def __init__(self, registry: Registry, client: BranchClient, *, resend_s: float) -> None:
        self.registry, self.client, self.resend_s = registry, client, resend_s
        self.counts: Counter[str] = Counter()

    def tick(self) -> None:
        """Take every acknowledgement waiting, then send what is due.  Never raises for one
        message: each failure is counted and logged."""
        self.take_acks()
        self.send_erasures()
        self.send_packages()

    def run(self, stop: threading.Event, period_s: float = 0.2) -> None:
        while not stop.is_set():
            try:
                self.tick()
            except Exception:  # the registry is locked or the disk full: try again
                log.exception("head-office tick failed")
                self.counts["tick_errors"] += 1
            stop.wait(period_s)

    # --- acknowledgements -------------------------------------------------------------------

    def take_acks(self, limit: int = 100_000) -> int:
        """Record the acknowledgements waiting; erasure acknowledgements in one transaction."""
        receiver = self.client.receiver
        assert receiver is not None
        deliveries: list[Delivery] = []
        while len(deliveries) < limit and not receiver.queue.empty():
            deliveries.append(receiver.queue.get_nowait())
        erasure_acks = [d for d in deliveries if isinstance(d.message, ErasureAck)]
        if erasure_acks:
            self._record_erasure_acks(erasure_acks)
        for delivery in deliveries:
            if not isinstance(delivery.message, ErasureAck):
                self.handle(delivery)
        return len(deliveries)

    def _record_erasure_acks(self, deliveries: list[Delivery]) -> None:
        rows = []
        for delivery in deliveries:
            ack = delivery.message
            assert isinstance(ack, ErasureAck)
            branch, _ = split_topic(delivery.topic)  # the authenticated branch, not the payload's
            rows.append(ErasureAckRow(ack.erasure_id, branch, ack.result, ack.applied_at.isoformat(),
                                      ack.templates_removed, ack.error))
        known = self.registry.erasures_acked(rows)
        self.counts["erasure_acks"] += sum(known)
        self.counts["unknown_erasure_acks"] += len(known) - sum(known)

    def handle(self, delivery: Delivery) -> None:
        message = delivery.message
        try:
            branch, _ = split_topic(delivery.topic)
            if isinstance(message, ErasureAck):
                self._record_erasure_acks([delivery])
            elif isinstance(message, GalleryAck):
                self._on_gallery_ack(branch, message)
            else:
                self.counts["unexpected"] += 1
        except Exception as err:  # one acknowledgement must not stop the others
            self.counts["ack_errors"] += 1
            log.error("acknowledgement %s %s not recorded: %s", message.SCHEMA, message.id,
                      type(err).__name__)

    def _on_gallery_ack(self, branch: str, ack: GalleryAck) -> None:
        package = self.registry.package_by_sha(branch, ack.package_sha256)
        if package is None:
            self.counts["unknown_gallery_acks"] += 1
            return
        self.counts[f"gallery_{ack.state}"] += 1
        if ack.state == "applied":
            self.registry.package_state(branch, package.version, "applied")
        elif ack.state == "refused":
            self.registry.package_state(branch, package.version, "refused", f"{ack.reason}: {ack.error}")
            log.warning("branch %s refused package version %d: %s", branch, package.version, ack.reason)
        elif package.state not in ("applied", "refused"):
            data = read_bounded(package.path, MAX_PACKAGE_BYTES, "package")
            for chunk in chunks(branch, data, package.version, ack.missing):
                self.client.publish(chunk)
            self.counts["chunks_resent"] += len(ack.missing)

    # --- sending ----------------------------------------------------------------------------

    def _due_before(self) -> str:
        return (datetime.now(UTC) - timedelta(seconds=self.resend_s)).isoformat(timespec="milliseconds")

    def send_erasures(self) -> int:
        due = self.registry.erasures_due(self._due_before())
        for target in due:
            self.client.publish(Erasure(branch_id=target.branch_id, erasure_id=target.erasure_id,
                                        customer_id=target.customer_id,
                                        issued_at=datetime.fromisoformat(target.issued_at),
                                        reason=target.reason[:200]))
        if due:
            self.registry.erasures_sent(due)
            self.counts["erasures_sent"] += len(due)
            self.counts["erasures_resent"] += sum(1 for t in due if t.sends)
        return len(due)

    def send_packages(self) -> int:
        sent = 0
        due_before = self._due_before()
        for package in self.registry.next_to_deliver():
            if package.sends and (package.last_sent_at or "") >= due_before:
                continue
            data = read_bounded(package.path, MAX_PACKAGE_BYTES, "package")
            pieces = chunks(package.branch_id, data, package.version)
            count = len(pieces)
            for chunk in pieces if package.sends == 0 else pieces[-1:]:  # then probe with the last
                self.client.publish(chunk)
            self.registry.package_sent(package.branch_id, package.version)
            self.counts["chunks_sent"] += count if package.sends == 0 else 1
            sent += 1
        return sent

    def stats(self) -> dict[str, Any]:
        return dict(self.counts) | {"client": self.client.stats(), "time": time.time()}
