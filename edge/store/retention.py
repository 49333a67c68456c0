"""Retention: live face captures and old audit entries are deleted on a schedule.

Where live face data is kept, and what removes it (README "Privacy"):

* the edge's MQTT outbox: arrivals (a 112x112 live thumbnail) and authorization
  escalations (card photo, live frame) waiting for the broker.  ``run_once``
  deletes a row once it has expired (receivers drop an expired message anyway,
  so it is never worth sending) and any row with an image older than
  ``[retention] live_captures_h``; ``forget_customer`` deletes a customer's
  waiting arrivals when their consent is withdrawn (``branch-edge erase``, which
  finds the outbox through the store: the daemon records its outbox's path
  there), and the daemon itself drops every waiting arrival whose customer has
  no active consent, or was erased after the sighting, before it sends anything
  (``forget_withdrawn``) and whenever it sees a new erasure.
* the PAD's journal: arrivals until they expire (``ui.state.journal`` deletes expired
  rows whenever it records or replays).
* memory only: the tracker's face crops, authorization requests' images.

The audit log is append-only; the one exception is this job, which deletes the
entries older than ``audit_days`` in one transaction, records the last deleted
entry's hash as the chain's checkpoint (``Store.verify_audit`` starts there)
and appends an ``audit_pruned`` entry.  Neither step holds biometric data.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

from edge.config import RetentionConfig
from edge.store.audit import AUDIT_CHECKPOINT_KEY
from edge.store.base import iso, parse_time
from edge.store.database import Store
from mqtt.codec import DecodeError, decode
from mqtt.messages import Arrival, Message, utc_now
from mqtt.outbox import Outbox, Pending

log = logging.getLogger(__name__)

ACTOR = "retention"
# meta key: the outboxes daemons opened on this store (JSON list of absolute paths), so that
# ``branch-edge erase`` reaches the waiting arrivals whatever flags it was given.
OUTBOX_PATHS_KEY = "outbox_paths"
MAX_OUTBOX_PATHS = 8
# The append-only triggers of the audit table, exactly as the store's schema creates them.
_AUDIT_DELETE_TRIGGER = ("CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
                         "BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END")


@dataclass(frozen=True)
class PurgeReport:
    at: str
    dry_run: bool
    captures_removed: int      # outbox rows with a live image (or expired) deleted
    audit_removed: int         # audit entries older than the policy deleted
    audit_checkpoint_seq: int  # the chain now starts after this entry (0: from the start)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def carries_image(message: Message) -> bool:
    """Any ``*_jpeg_b64`` field with content: a face (or card photo) in the payload."""
    return any(name.endswith("_jpeg_b64") and value for name, value in vars(message).items())


def _expired_capture(item: Pending, now: datetime, max_age: timedelta) -> bool:
    if item.expires_at is not None and item.expires_at <= now.timestamp():
        return True
    try:
        message = decode(item.payload)
    except DecodeError:  # not ours to judge; the sender reports it
        return False
    return carries_image(message) and now - message.sent_at >= max_age


def purge_outbox(outbox: Outbox, now: datetime, max_age: timedelta, dry_run: bool = False) -> int:
    """Delete expired rows and rows whose live image is older than ``max_age``."""
    doomed = [p.seq for p in outbox.pending(limit=len(outbox) + 1) if _expired_capture(p, now, max_age)]
    if not dry_run:
        for seq in doomed:
            outbox.remove(seq)
    return len(doomed)


def forget_customer(outbox: Outbox, customer_id: str) -> int:
    """Delete the arrivals for ``customer_id`` still waiting in ``outbox`` (consent withdrawn)."""
    removed = 0
    for item in outbox.pending(limit=len(outbox) + 1):
        try:
            message = decode(item.payload)
        except DecodeError:
            continue
        if isinstance(message, Arrival) and message.customer.customer_id == customer_id:
            outbox.remove(item.seq)
            removed += 1
    return removed


def arrival_withdrawn(store: Store, arrival: Arrival) -> bool:
    """The customer has no active consent, or was erased at or after the sighting."""
    cid = arrival.customer.customer_id
    if store.active_consent(cid) is None:
        return True
    erased = store.last_erased_at(cid)
    return erased is not None and parse_time(erased) >= arrival.seen_at


def forget_withdrawn(outbox: Outbox, store: Store) -> int:
    """Delete every waiting arrival whose customer withdrew consent (see :func:`arrival_withdrawn`)."""
    removed = 0
    for item in outbox.pending(limit=len(outbox) + 1):
        try:
            message = decode(item.payload)
        except DecodeError:
            continue
        if isinstance(message, Arrival) and arrival_withdrawn(store, message):
            outbox.remove(item.seq)
            removed += 1
    return removed


def remember_outbox(store: Store, path: Path | str) -> None:
    """Record where a daemon of this store keeps its outbox (``:memory:`` is nowhere)."""
    if str(path) == ":memory:":
        return
    resolved = str(Path(path).expanduser().resolve())
    known = [str(p) for p in known_outboxes(store, existing=False)]
    if known and known[-1] == resolved:
        return
    others = [p for p in known if p != resolved][-(MAX_OUTBOX_PATHS - 1):]
    paths = [*others, resolved]
    store.set_meta_value(OUTBOX_PATHS_KEY, json.dumps(paths))


def known_outboxes(store: Store, existing: bool = True) -> list[Path]:
    """The outboxes daemons of this store used, newest last (only those that exist)."""
    text = store.meta_value(OUTBOX_PATHS_KEY)
    try:
        paths = [Path(p) for p in json.loads(text)] if text else []
    except (ValueError, TypeError):
        log.warning("store meta %s is not a list of paths; ignored", OUTBOX_PATHS_KEY)
        return []
    return [p for p in paths if not existing or p.is_file()]


def audit_checkpoint(store: Store) -> int:
    with store.transaction() as c:
        row = c.execute("SELECT value FROM meta WHERE key = ?", (AUDIT_CHECKPOINT_KEY,)).fetchone()
    return int(json.loads(row[0])["seq"]) if row else 0


def prune_audit(store: Store, before: datetime, dry_run: bool = False) -> int:
    """Delete the audit entries written before ``before`` (a prefix of the chain)."""
    with store.transaction() as c:
        # The newest entry always stays: the next entry chains to it.
        last = c.execute("SELECT seq, hash FROM audit WHERE time < ? AND seq < (SELECT MAX(seq) "
                         "FROM audit) ORDER BY seq DESC LIMIT 1", (iso(before),)).fetchone()
        if last is None:
            return 0
        seq, digest = int(last[0]), str(last[1])
        (count,) = c.execute("SELECT COUNT(*) FROM audit WHERE seq <= ?", (seq,)).fetchone()
        if dry_run:
            return int(count)
        c.execute("DROP TRIGGER audit_no_delete")
        c.execute("DELETE FROM audit WHERE seq <= ?", (seq,))
        c.execute(_AUDIT_DELETE_TRIGGER)
        checkpoint = json.dumps({"seq": seq, "hash": digest})
        c.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                  (AUDIT_CHECKPOINT_KEY, checkpoint))
        store.audit(ACTOR, "audit_pruned", "audit", {"through_seq": seq, "entries": int(count),
                                                    "before": iso(before), "checkpoint_hash": digest})
    return int(count)


class RetentionJob:
    """``run_once`` purges; as a daemon ``Service`` it runs every ``interval_s`` on its own thread."""

    def __init__(self, cfg: RetentionConfig, open_store: Callable[[], Store] | None,
                 outbox: Outbox | None, clock: Callable[[], datetime] = utc_now) -> None:
        self.cfg, self.open_store, self.outbox, self.clock = cfg, open_store, outbox, clock
        self.runs = 0
        self.last: PurgeReport | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, now: datetime | None = None, dry_run: bool = False) -> PurgeReport:
        now = now or self.clock()
        captures = 0
        if self.outbox is not None:
            captures = purge_outbox(self.outbox, now, timedelta(hours=self.cfg.live_captures_h), dry_run)
        audit_removed, checkpoint = 0, 0
        if self.open_store is not None:
            with self.open_store() as store:
                if self.cfg.audit_days:
                    audit_removed = prune_audit(store, now - timedelta(days=self.cfg.audit_days), dry_run)
                checkpoint = audit_checkpoint(store)
        self.runs += 1
        self.last = PurgeReport(iso(now), dry_run, captures, audit_removed, checkpoint)
        if captures or audit_removed:
            log.info("retention purge", extra=self.last.to_dict())
        return self.last

    # --- as a daemon service ------------------------------------------------------

    def start(self, stop: threading.Event | None = None) -> None:
        self._stop = stop or threading.Event()
        self._thread = threading.Thread(target=self._loop, name="retention", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            try:
                self.run_once()
            except Exception:  # a failed purge is retried next period; it must not end the daemon
                log.exception("retention purge failed")
            if self._stop.wait(self.cfg.interval_s):
                return


def open_outbox(path: Path | str) -> Outbox | None:
    """The outbox at ``path`` when it exists (a purge must not create one)."""
    if str(path) == ":memory:" or not Path(path).exists():
        return None
    return Outbox(path)
