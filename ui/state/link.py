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

from mqtt.client import BranchClient, Identity, MqttError
from mqtt.messages import Arrival, Message, Retraction
from mqtt.receiver import Delivery, make_receiver
from mqtt.roster import Roster, RosterError
from mqtt.topics import BranchTopics
from ui.state.config import PadConfig
from ui.state.journal import Journal

logger = logging.getLogger(__name__)

# What each role reads; mirrors the broker ACL (mqtt/provision/acl.py).
ROLE_READS: dict[str, tuple[str, ...]] = {
    "rm": ("arrivals", "retractions", "claims/+"),
    "teller": ("auth/responses/{self}", "auth/scenarios"),
    "supervisor": ("auth/escalations", "auth/decisions/+", "auth/scenarios"),
}


def subscriptions(config: PadConfig) -> list[str]:
    topics = BranchTopics(config.branch_id)
    return [topics.leaf(leaf.format(self=config.device_id)) for leaf in ROLE_READS[config.role]]


def on_roster(config: PadConfig, roster: Roster) -> PadConfig:
    """``config`` with the staff member the roster binds to this device as its ``rm_id``
    (the RM, teller or supervisor its messages name).  A PAD configured as someone else, or
    in another role, refuses to start: the edge and the other PADs would reject all it sends."""
    member = roster.get(config.device_id)
    if member is None or member.role != config.role:
        raise MqttError(f"device {config.device_id} is not a {config.role} device on the branch roster")
    if config.rm_id is not None and config.rm_id != member.staff_id:
        raise MqttError(f"pad.toml's rm_id {config.rm_id!r} is not the staff member the roster binds "
                        f"to device {config.device_id} ({member.staff_id!r})")
    return config.model_copy(update={"rm_id": member.staff_id})


def _version() -> str:
    try:
        return version("branch-edge")
    except PackageNotFoundError:
        return ""


class PadLink:
    def __init__(self, config: PadConfig, handler: Callable[[Delivery], None] | None = None) -> None:
        cfg = config.mqtt
        self.config = config
        try:
            self.receiver = make_receiver(cfg, handler=self._on_delivery)
        except RosterError as err:
            raise MqttError(str(err)) from err
        if self.receiver.roster is not None:
            config = on_roster(config, self.receiver.roster)
            self.config = config
        self.journal = Journal(config.effective_journal_path)
        self._handler = handler or self.receiver.queue.put
        identity = Identity(config.branch_id, config.device_id, config.role, _version())
        self.client = BranchClient(cfg, identity, receiver=self.receiver, subscriptions=subscriptions(config))
        self.replayed: set[str] = set()  # ids of the messages shown again from the journal at start
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
        """Show what was received before a restart (``replayed`` keeps their ids: not counted
        as new by ``--exit-after``), then connect."""
        for delivery in self.journal.replay():
            self.replayed.add(delivery.message.id)
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
