"""SQLite outbox: a message is stored before it is published, deleted after PUBACK.

A broker restart, a network cut or a crash of the publishing process loses
nothing: whatever is still in the outbox is published again (with the same
message id) on the next connection.  Receivers de-duplicate by id.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from mqtt.files import create_private

_SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    message_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    expires_at REAL
)
"""


@dataclass(frozen=True)
class Pending:
    seq: int
    message_id: str
    topic: str
    payload: bytes
    qos: int
    retain: bool
    expires_at: float | None


class Outbox:
    """Thread-safe; ``path`` may be ``":memory:"`` for tests of other parts."""

    def __init__(self, path: Path | str) -> None:
        self._lock = threading.Lock()
        create_private(path)  # payloads: 0600, in a 0700 folder
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        # FULL: a message acknowledged by put() survives a power cut, not just a crash.
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def put(
        self,
        message_id: str,
        topic: str,
        payload: bytes,
        *,
        qos: int = 1,
        retain: bool = False,
        expires_at: float | None = None,
    ) -> bool:
        """Store a message; ``False`` when one with this id is already waiting."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO outbox (message_id, topic, payload, qos, retain, expires_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (message_id, topic, payload, qos, int(retain), expires_at),
            )
            return cur.rowcount == 1

    def pending(self, exclude: Collection[int] = (), limit: int = 100) -> list[Pending]:
        """Oldest first, skipping the sequence numbers in ``exclude`` (already in flight)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, message_id, topic, payload, qos, retain, expires_at FROM outbox"
                " ORDER BY seq LIMIT ?",
                (limit + len(exclude),),
            ).fetchall()
        out = [Pending(r[0], r[1], r[2], bytes(r[3]), r[4], bool(r[5]), r[6]) for r in rows]
        return [p for p in out if p.seq not in exclude][:limit]

    def remove(self, seq: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._db.close()
