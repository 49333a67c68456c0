"""Turns raw (topic, payload) pairs into checked, de-duplicated messages for the application.

``Receiver.accept`` runs on the MQTT network thread and never raises: any
exception while checking, decoding or handling one message is a *rejection*
(one log line, one ``rejected.<reason>`` count in ``stats()``), the message is
acknowledged and dropped, and the next message is handled as if nothing had
happened.  A message that cannot be handled therefore cannot stop the receive
thread, nor come back after every reconnect (it is acknowledged).

In order, for each message:

1. the topic is split; on a leaf that names its author (``claims/{device}``...)
   the author's token bucket is charged and a device over its rate
   (``rate_per_s``, ``burst``) has the message dropped (``rate_limited``)
   before any decoding;
2. the payload is decoded within bounds (:func:`mqtt.codec.decode`) and must
   be the schema of its topic, for the topic's branch, and name the device of
   the topic as its ``device_id``;
3. the author is checked against the roster (:func:`mqtt.roster.check_author`):
   the RM, teller or supervisor a payload names must be the one bound to the
   device that sent it; the verified name is the delivery's ``actor``;
4. expired messages and ids already seen are dropped (retained state such as
   ``auth_scenarios`` is never a duplicate: the latest is delivered again after a
   restart, when its id is already in the seen-id store);
5. the handler runs; it may raise :class:`~mqtt.roster.Rejected` for a message
   that is well-formed but not acceptable (an outcome for a customer who is not
   the visit's).

Good messages go to a thread-safe queue (poll it from a Qt timer or a daemon
loop) and/or to a handler callback (a Qt signal's ``emit`` is safe to call from
here: Qt queues it to the receiving object's thread).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from mqtt.codec import DEFAULT_MAX_PAYLOAD, DecodeError, decode
from mqtt.dedup import SeenIds
from mqtt.messages import Expiring, Message
from mqtt.ratelimit import DEFAULT_BURST, DEFAULT_RATE_PER_S, TokenBuckets
from mqtt.roster import Rejected, Roster, check_author
from mqtt.topics import AUTHORED_LEAVES, LEAF_SCHEMAS, TopicError, parse_topic

if TYPE_CHECKING:
    from mqtt.config import MqttConfig

logger = logging.getLogger(__name__)

RATE_LOG_EVERY_S = 10.0  # one "dropping a device's messages" line per device this often


@dataclass(frozen=True)
class Delivery:
    topic: str
    message: Message
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    # The device that published it (from the topic, so from the broker's authentication);
    # None on leaves only the edge writes (arrivals, escalations, responses).
    author: str | None = None
    # The person behind the author device as the roster names them (the author's id without one).
    actor: str | None = None


Handler = Callable[[Delivery], None]


class Receiver:
    def __init__(
        self,
        seen: SeenIds,
        *,
        handler: Handler | None = None,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD,
        drop_expired: bool = True,
        roster: Roster | None = None,
        rate_per_s: float = DEFAULT_RATE_PER_S,
        burst: int = DEFAULT_BURST,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.queue: queue.Queue[Delivery] = queue.Queue()
        self._seen = seen
        self._handler = handler
        self._max_payload = max_payload_bytes
        self._drop_expired = drop_expired
        self.roster = roster
        self._buckets = TokenBuckets(rate_per_s, burst, clock=clock)
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._limited: dict[str, tuple[float, int]] = {}  # device -> (last log time, drops since)

    def accept(self, topic: str, payload: bytes) -> None:
        """Check, de-duplicate and deliver one message. Never raises."""
        try:
            self._accept(topic, payload)
        except Exception as err:  # the last line: nothing reaches the MQTT library's thread
            self.reject("internal_error", topic, f"{type(err).__name__} while receiving")

    def _accept(self, topic: str, payload: bytes) -> None:
        try:
            branch, leaf, device = parse_topic(topic)
        except TopicError as err:
            self.reject("bad_topic", topic, str(err)[:200])
            return
        author = device if leaf in AUTHORED_LEAVES else None
        if author is not None and not self._buckets.allow(author):
            self._rate_limited(author)
            return
        try:
            message = self._check(branch, leaf, device, payload)
            actor = check_author(message, author, self.roster) if author is not None else None
        except (DecodeError, Rejected) as err:
            self.reject(err.reason, topic, str(err))
            return
        except Exception as err:  # a decoder bug must cost one message, not the receiver
            self.reject("undecodable", topic, type(err).__name__)
            return
        if self._drop_expired and isinstance(message, Expiring) and message.is_expired():
            self._count("expired")
            logger.info("dropped expired %s %s", message.SCHEMA, message.id)
            return
        if not self._first_time(message):
            self._count("duplicates")
            logger.debug("duplicate %s %s", message.SCHEMA, message.id)
            return
        self._deliver(Delivery(topic, message, author=author, actor=actor))

    def _check(self, branch: str, leaf: str, device: str | None, payload: bytes) -> Message:
        message = decode(payload, self._max_payload)
        if LEAF_SCHEMAS[leaf] != message.SCHEMA:
            raise DecodeError("wrong_topic", f"{message.SCHEMA} is not carried on this topic")
        if message.branch_id != branch:
            raise DecodeError("wrong_branch", "branch_id differs from the topic's branch")
        if device is not None and getattr(message, "device_id", None) != device:
            raise DecodeError("wrong_device", "device_id differs from the device in the topic")
        return message

    def _first_time(self, message: Message) -> bool:
        if message.RETAINED:  # state: the broker hands the same one to every (re)subscription
            return True
        try:
            return self._seen.first_time(message.id)
        except Exception as err:  # a full disk must not stop delivery
            # Handlers are idempotent on the id: delivering twice beats losing the message.
            self._count("seen_store_errors")
            logger.error("seen-id store failed (%s); delivering %s %s without de-duplication",
                         type(err).__name__, message.SCHEMA, message.id)
            return True

    def _deliver(self, delivery: Delivery) -> None:
        if self._handler is None:
            self._count("accepted")
            self.queue.put(delivery)
            return
        try:
            self._handler(delivery)
        except Rejected as err:
            self.reject(err.reason, delivery.topic, f"{delivery.message.SCHEMA} {delivery.message.id}: {err}")
            return
        except Exception:
            self._count("handler_errors")
            self._count("rejected.handler_error")
            logger.exception("handler failed on %s %s; message dropped",
                             delivery.message.SCHEMA, delivery.message.id)
            return
        self._count("accepted")

    def reject(self, reason: str, topic: str, detail: str) -> None:
        """Count and log (once) a message refused for ``reason``; for handlers that decide later."""
        self._count(f"rejected.{reason}")
        logger.warning("rejected message on %s: %s", topic[:200], detail[:300])

    def _rate_limited(self, device: str) -> None:
        self._count("rate_limited")
        now = self._clock()
        with self._lock:
            last, dropped = self._limited.get(device, (float("-inf"), 0))
            if now - last < RATE_LOG_EVERY_S:
                self._limited[device] = (last, dropped + 1)
                return
            self._limited[device] = (now, 0)
        logger.warning("device %s is over its message rate: dropping (%d more dropped since the "
                       "last line)", device, dropped)

    def _count(self, key: str) -> None:
        with self._lock:
            self._counts[key] += 1

    def stats(self) -> dict[str, int]:
        """Counts: accepted, duplicates, expired, rate_limited, handler_errors,
        rejected.<reason>, rejected (their sum)."""
        with self._lock:
            out = dict(self._counts)
        out["rejected"] = sum(v for k, v in out.items() if k.startswith("rejected."))
        return out


def make_receiver(cfg: MqttConfig, handler: Handler | None = None) -> Receiver:
    """The receiver a device's ``[mqtt]`` section describes: its seen-id store, payload
    cap, per-device rate and roster (``roster_file``)."""
    roster = Roster.load(cfg.roster_file) if cfg.roster_file is not None else None
    return Receiver(
        SeenIds(cfg.seen_ids_path, cfg.seen_ids_ttl_s, cfg.seen_ids_max),
        handler=handler,
        max_payload_bytes=cfg.max_payload_bytes,
        roster=roster,
        rate_per_s=cfg.device_rate_per_s,
        burst=cfg.device_burst,
    )
