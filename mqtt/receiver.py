"""Turns raw (topic, payload) pairs into checked, de-duplicated messages for the application.

``Receiver.accept`` runs on the MQTT network thread and never raises: a bad
payload costs one log line and one count in ``stats()``.  Good messages go to
a thread-safe queue (poll it from a Qt timer or a daemon loop) and/or to a
handler callback (a Qt signal's ``emit`` is safe to call from here: Qt queues
it to the receiving object's thread).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from mqtt.codec import DEFAULT_MAX_PAYLOAD, DecodeError, decode
from mqtt.dedup import SeenIds
from mqtt.messages import Expiring, Message
from mqtt.topics import TopicError, schema_for_topic

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Delivery:
    topic: str
    message: Message
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))


Handler = Callable[[Delivery], None]


class Receiver:
    def __init__(
        self,
        seen: SeenIds,
        *,
        handler: Handler | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD,
        drop_expired: bool = True,
    ) -> None:
        self.queue: queue.Queue[Delivery] = queue.Queue()
        self._seen = seen
        self._handler = handler
        self._max_payload = max_payload_bytes
        self._drop_expired = drop_expired
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def accept(self, topic: str, payload: bytes) -> None:
        """Check, de-duplicate and deliver one message. Never raises."""
        try:
            message = self._check(topic, payload)
        except DecodeError as err:
            self._count(f"rejected.{err.reason}")
            logger.warning("rejected message on %s: %s", topic[:200], err)
            return
        if self._drop_expired and isinstance(message, Expiring) and message.is_expired():
            self._count("expired")
            logger.info("dropped expired %s %s", message.SCHEMA, message.id)
            return
        # Retained state (auth_scenarios) is never a duplicate: the broker hands the same
        # message to every (re)subscription, also after a restart when its id is already seen.
        if not message.RETAINED and not self._seen.first_time(message.id):
            self._count("duplicates")
            logger.debug("duplicate %s %s", message.SCHEMA, message.id)
            return
        self._deliver(Delivery(topic, message))

    def _check(self, topic: str, payload: bytes) -> Message:
        try:
            branch, schema = schema_for_topic(topic)
        except TopicError as err:
            raise DecodeError("bad_topic", str(err)[:200]) from err
        message = decode(payload, self._max_payload)
        if schema != message.SCHEMA:
            raise DecodeError("wrong_topic", f"{message.SCHEMA} is not carried on this topic")
        if message.branch_id != branch:
            raise DecodeError("wrong_branch", "branch_id differs from the topic's branch")
        return message

    def _deliver(self, delivery: Delivery) -> None:
        self._count("accepted")
        if self._handler is None:
            self.queue.put(delivery)
            return
        try:
            self._handler(delivery)
        except Exception:
            self._count("handler_errors")
            logger.exception("handler failed on %s %s", delivery.message.SCHEMA, delivery.message.id)

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def stats(self) -> dict[str, int]:
        """Counts: accepted, duplicates, expired, handler_errors, rejected.<reason>, rejected."""
        with self._lock:
            out = dict(self._counts)
        out["rejected"] = sum(v for k, v in out.items() if k.startswith("rejected."))
        return out
