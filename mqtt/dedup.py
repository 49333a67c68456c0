"""Persisted set of message ids already handled, bounded by age and count.

QoS 1 means "at least once": a message resent after a lost PUBACK, or
re-published from the outbox after a crash, reaches receivers again with the
same id.  ``first_time`` answers whether the application should see it.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

from mqtt.files import create_private

PRUNE_EVERY = 500


class SeenIds:
    def __init__(
        self,
        path: Path | str,
        ttl_s: float = 7 * 86400,
        max_ids: int = 200_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._ttl_s = ttl_s
        self._max_ids = max_ids
        self._clock = clock
        self._lock = threading.Lock()
        self._inserts = 0
        create_private(path)  # payloads: 0600, in a 0700 folder
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, seen_at REAL NOT NULL)"
        )
        self._db.execute("CREATE INDEX IF NOT EXISTS seen_at_idx ON seen (seen_at)")

    def first_time(self, message_id: str) -> bool:
        """Record ``message_id``; ``True`` only the first time it is offered."""
        with self._lock:
            cur = self._db.execute(
                "INSERT OR IGNORE INTO seen (id, seen_at) VALUES (?, ?)",
                (message_id, self._clock()),
            )
            fresh = cur.rowcount == 1
            self._inserts += fresh
            if self._inserts >= PRUNE_EVERY:
                self._prune()
            return fresh

    def prune(self) -> None:
        with self._lock:
            self._prune()

    def _prune(self) -> None:
        self._inserts = 0
        self._db.execute("DELETE FROM seen WHERE seen_at < ?", (self._clock() - self._ttl_s,))
        self._db.execute(
            "DELETE FROM seen WHERE id IN (SELECT id FROM seen ORDER BY seen_at DESC LIMIT -1 OFFSET ?)",
            (self._max_ids,),
        )

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._db.execute("SELECT COUNT(*) FROM seen").fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._db.close()
