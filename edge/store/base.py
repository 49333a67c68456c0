"""What every part of the store shares: the connection, transactions, stored times."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from edge.core.errors import StoreError
from edge.store.crypto import KeyRing

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """One text format for every stored time, so that text order is time order."""
    if moment.tzinfo is None:
        raise StoreError(f"time {moment} has no time zone")
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def parse_time(text: str) -> datetime:
    """ISO 8601; a time without zone is taken as UTC."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as err:
        raise StoreError(
            f"{text!r} is not an ISO 8601 time (e.g. 2025-03-01T09:30:00+08:00)"
        ) from err
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class StoreBase:
    """The connection and its transactions; the store's parts are mixins over it."""

    path: Path

    def __init__(self, conn: sqlite3.Connection, keys: KeyRing, path: Path) -> None:
        self._conn = conn
        self._keys = keys
        self.path = path
        self._depth = 0

    @property
    def key_id(self) -> str:
        return self._keys.primary_id

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT; nested uses join the outer transaction."""
        if self._depth:
            self._depth += 1
            try:
                yield self._conn
            finally:
                self._depth -= 1
            return
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as err:
            raise StoreError(f"{self.path}: cannot start a transaction: {err}") from err
        self._depth = 1
        try:
            yield self._conn
            self._conn.execute("COMMIT")
        except sqlite3.Error as err:
            self._rollback()
            raise StoreError(f"{self.path}: {err}; nothing was changed") from err
        except BaseException:
            self._rollback()
            raise
        finally:
            self._depth = 0

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")

    def meta_value(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta_value(self, key: str, value: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                      (key, value))

    def gallery_generation(self) -> int:
        """Bumped on every template change: a running gallery reloads when it moves."""
        sql = "SELECT value FROM meta WHERE key = 'gallery_generation'"
        row = self._conn.execute(sql).fetchone()
        return int(row[0]) if row else 0

    def _bump_gallery_generation(self) -> None:
        self._conn.execute(
            "INSERT INTO meta VALUES ('gallery_generation', 1) ON CONFLICT(key) "
            "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
        )

