"""The PAD's connection to the branch broker, without Qt.

``PadLink`` wraps one :class:`mqtt.client.BranchClient` with the device's
provisioned identity.  paho runs its own network thread; received messages
are checked and de-duplicated by :class:`mqtt.receiver.Receiver` (persisted
ids, so a message redelivered after a reconnect or a restart is not shown
twice) and handed to ``handler`` on that thread, or queued when no handler is
given (console mode).  Everything shown is also journaled (``ui.state.journal``) and
replayed at start, so a restarted app shows the same feed.  Publishing goes
through the durable outbox on a worker thread, so a tap on the GUI never waits
for SQLite's fsync.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from importlib.metadata import PackageNotFoundError, version

from mqtt.client import BranchClient, Identity
from mqtt.dedup import SeenIds
from mqtt.messages import Arrival, Message, Retraction
from mqtt.receiver import Delivery, Receiver
from mqtt.topics import BranchTopics
from ui.state.config import PadConfig
from ui.state.journal import Journal

logger = logging.getLogger(__name__)

# What each role reads; mirrors the broker ACL (mqtt/provision/acl.py).
ROLE_READS: dict[str, tuple[str, ...]] = {
    "rm": ("arrivals", "retractions", "claims"),
    "teller": ("auth/responses/{self}", "auth/scenarios"),
    "supervisor": ("auth/escalations", "auth/decisions", "auth/scenarios"),
}


def subscriptions(config: PadConfig) -> list[str]:
    topics = BranchTopics(config.branch_id)
    return [topics.leaf(leaf.format(self=config.device_id)) for leaf in ROLE_READS[config.role]]


def _version() -> str:
    try:
        return version("branch-edge")
    except PackageNotFoundError:
        return ""


class PadLink:
    def __init__(self, config: PadConfig, handler: Callable[[Delivery], None] | None = None) -> None:
        cfg = config.mqtt
        self.config = config
        self.journal = Journal(config.effective_journal_path)
        self.receiver = Receiver(
            SeenIds(cfg.seen_ids_path, cfg.seen_ids_ttl_s, cfg.seen_ids_max),
            handler=self._on_delivery,
            max_payload_bytes=cfg.max_payload_bytes,
        )
        self._handler = handler or self.receiver.queue.put
        identity = Identity(config.branch_id, config.device_id, config.role, _version())
        self.client = BranchClient(cfg, identity, receiver=self.receiver, subscriptions=subscriptions(config))
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pad-publish")

    def _on_delivery(self, delivery: Delivery) -> None:
        """Receiver handler (MQTT thread): journal, then hand on.  A retraction first deletes
        what it covers from the journal; an arrival a journaled retraction covers is dropped."""
        message = delivery.message
        if isinstance(message, Arrival) and self.journal.retracted(message):
            logger.info("dropped arrival %s: its customer's consent was withdrawn", message.id)
            return
        if isinstance(message, Retraction):
            removed = self.journal.retract(message)
            logger.info("retraction %s: %d journaled messages deleted", message.id, removed)
        self.journal.record(delivery)
        self._handler(delivery)

    def start(self) -> None:
        """Show what was received before a restart, then connect."""
        for delivery in self.journal.replay():
            self._handler(delivery)
        self.client.start()

    @property
    def connected(self) -> bool:
        return self.client.connected

    def publish(self, message: Message) -> Future[None]:
        """Queue ``message`` for the outbox; it is sent now or after the next reconnect."""
        future = self._writer.submit(self.client.publish, message)
        future.add_done_callback(_log_failure)
        return future

    def stop(self) -> None:
        self._writer.shutdown(wait=True)
        self.client.stop()
        self.journal.close()


def _log_failure(future: Future[None]) -> None:
    err = future.exception()
    if err is not None:
        logger.error("could not store a message for sending: %s", err)
