"""What the PAD has received, kept until it expires, so a restarted app shows the same feed.

The broker does not resend what it already delivered, and the de-duplication
store stops a redelivery from showing twice; without this journal a tablet
restarted mid-morning (battery, crash, update) would lose the arrivals it had.
Kept: expiring messages (arrivals, escalations, retractions) until ``expires_at``,
claims for ``CLAIM_KEEP``.  A retraction deletes the arrivals it covers (and the
claims of that customer) from the file at once, with SQLite's ``secure_delete`` and a
WAL checkpoint so the live face thumbnail does not linger in free pages; it stays
journaled itself, so an arrival it covers that comes later is refused.
Thread-safe: paho's thread writes, the GUI thread replays.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

from edge.core.files import private_database
from mqtt.codec import DecodeError, decode, encode
from mqtt.messages import Arrival, Claim, Expiring, Message, Retraction, utc_now
from mqtt.receiver import Delivery

logger = logging.getLogger(__name__)

CLAIM_KEEP = timedelta(hours=12)
_SCHEMA = """CREATE TABLE IF NOT EXISTS journal (
    id TEXT PRIMARY KEY, topic TEXT NOT NULL, payload BLOB NOT NULL, expires_at REAL NOT NULL)"""


def keep_until(message: Message) -> float | None:
    if isinstance(message, Expiring):
        return message.expires_at.timestamp()
    if isinstance(message, Claim):
        return (message.sent_at + CLAIM_KEEP).timestamp()
    return None


class Journal:
    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        private_database(path)  # names and live face JPEGs: 0600, whatever the umask
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA secure_delete=ON")  # a retracted face is overwritten, not freed
        self._db.execute(_SCHEMA)

    def record(self, delivery: Delivery) -> None:
        until = keep_until(delivery.message)
        if until is None:
            return
        row = (delivery.message.id, delivery.topic, encode(delivery.message), until)
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO journal VALUES (?, ?, ?, ?)", row)
        self.purge()

    def retract(self, retraction: Retraction) -> int:
        """Delete the arrivals ``retraction`` covers and the claims of its customer; the count."""
        with self._lock:
            rows = self._db.execute("SELECT id, payload FROM journal").fetchall()
            doomed = [row_id for row_id, payload in rows if _retracted_by(bytes(payload), retraction)]
            for row_id in doomed:
                self._db.execute("DELETE FROM journal WHERE id = ?", (row_id,))
            if doomed:
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return len(doomed)

    def retracted(self, arrival: Arrival) -> bool:
        """Whether a journaled (unexpired) retraction covers ``arrival``."""
        now = utc_now().timestamp()
        with self._lock:
            rows = self._db.execute("SELECT payload FROM journal WHERE topic LIKE '%/retractions' "
                                    "AND expires_at > ?", (now,)).fetchall()
        for (payload,) in rows:
            try:
                message = decode(bytes(payload))
            except DecodeError:
                continue
            if isinstance(message, Retraction) and message.covers(arrival):
                return True
        return False

    def purge(self, now: float | None = None) -> int:
        """Delete what has expired (arrivals carry a live face thumbnail): nothing stays
        on the tablet past its expiry while the app runs; at start ``replay`` does it."""
        moment = utc_now().timestamp() if now is None else now
        with self._lock:
            return int(self._db.execute("DELETE FROM journal WHERE expires_at <= ?", (moment,)).rowcount)

    def replay(self) -> list[Delivery]:
        """Unexpired messages in the order they came; expired ones are deleted."""
        self.purge()
        with self._lock:
            rows = self._db.execute("SELECT topic, payload FROM journal ORDER BY rowid").fetchall()
        out = []
        for topic, payload in rows:
            try:
                out.append(Delivery(str(topic), decode(bytes(payload))))
            except DecodeError as err:  # written by an older version of the contract
                logger.warning("journal: skipped a stored message: %s", err)
        return out

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _retracted_by(payload: bytes, retraction: Retraction) -> bool:
    try:
        message = decode(payload)
    except DecodeError:
        return False
    if isinstance(message, Arrival):
        return retraction.covers(message)
    return isinstance(message, Claim) and message.customer_id == retraction.customer_id
