"""Head office's registry (SQLite): who is enrolled centrally, their templates (sealed with
the data key), the branches and who they serve, the packages built for each branch and how
far each got, and every erasure with each branch's acknowledgement.

One connection per thread; every write is one transaction.
"""

from __future__ import annotations

import json
import os
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hq.errors import HqError
from mqtt.files import create_private

_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    customer_id TEXT PRIMARY KEY, display_name TEXT NOT NULL, tier TEXT NOT NULL,
    assigned_rm TEXT NOT NULL, consent_channel TEXT NOT NULL, consent_time TEXT NOT NULL,
    enrolled_at TEXT NOT NULL, erased_at TEXT
);
CREATE TABLE IF NOT EXISTS templates (
    id INTEGER PRIMARY KEY, customer_id TEXT NOT NULL REFERENCES customers(customer_id),
    model_pack TEXT NOT NULL, recognizer_sha256 TEXT NOT NULL, source_sha256 TEXT NOT NULL,
    nonce BLOB NOT NULL, ciphertext BLOB NOT NULL, created_at TEXT NOT NULL,
    UNIQUE (model_pack, recognizer_sha256, source_sha256)
);
CREATE TABLE IF NOT EXISTS branches (
    branch_id TEXT PRIMARY KEY, public_key BLOB NOT NULL, added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS assignments (
    branch_id TEXT NOT NULL REFERENCES branches(branch_id), customer_id TEXT NOT NULL,
    PRIMARY KEY (branch_id, customer_id)
);
CREATE TABLE IF NOT EXISTS packages (
    branch_id TEXT NOT NULL, version INTEGER NOT NULL, base_version INTEGER NOT NULL,
    package_id TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL, path TEXT NOT NULL,
    created_at TEXT NOT NULL, customers INTEGER NOT NULL, templates INTEGER NOT NULL,
    erasures INTEGER NOT NULL, state TEXT NOT NULL DEFAULT 'built', reason TEXT NOT NULL DEFAULT '',
    state_at TEXT, sends INTEGER NOT NULL DEFAULT 0, last_sent_at TEXT,
    PRIMARY KEY (branch_id, version)
);
CREATE TABLE IF NOT EXISTS shipped (
    branch_id TEXT NOT NULL, template_id INTEGER NOT NULL, version INTEGER NOT NULL,
    PRIMARY KEY (branch_id, template_id)
);
CREATE TABLE IF NOT EXISTS erasures (
    erasure_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, issued_at TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS erasure_targets (
    erasure_id TEXT NOT NULL REFERENCES erasures(erasure_id), branch_id TEXT NOT NULL,
    sends INTEGER NOT NULL DEFAULT 0, first_sent_at TEXT, last_sent_at TEXT, acked_at TEXT,
    applied_at TEXT, result TEXT, templates_removed INTEGER, error TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (erasure_id, branch_id)
);
CREATE INDEX IF NOT EXISTS erasure_targets_open ON erasure_targets (acked_at, last_sent_at);
"""


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class StoredTemplate:
    id: int
    customer_id: str
    source_sha256: str
    embedding: bytes


@dataclass(frozen=True)
class PackageRow:
    branch_id: str
    version: int
    base_version: int
    package_id: str
    sha256: str
    size: int
    path: Path
    state: str
    reason: str
    sends: int
    last_sent_at: str | None


@dataclass(frozen=True)
class ErasureAckRow:
    erasure_id: str
    branch_id: str
    result: str
    applied_at: str
    templates_removed: int
    error: str = ""


@dataclass(frozen=True)
class ErasureTarget:
    erasure_id: str
    branch_id: str
    customer_id: str
    issued_at: str
    reason: str
    sends: int


class Registry:
    def __init__(self, path: Path | str, data_key: AESGCM | None = None) -> None:
        create_private(path)
        self.path = path
        self._key = data_key
        self._conn = sqlite3.connect(str(path), isolation_level=None, timeout=10)
        self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute("PRAGMA foreign_keys = ON")
        self._conn.execute("PRAGMA secure_delete = ON")
        self._conn.executescript(_SCHEMA)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    # --- customers and templates --------------------------------------------------------

    def enrol(self, customer_id: str, *, display_name: str, tier: str, assigned_rm: str,
              consent_channel: str, consent_time: str, model_pack: str, recognizer_sha256: str,
              templates: list[tuple[str, bytes]]) -> int:
        """Record a consenting customer and their templates (sealed); the number of new templates.

        A customer erased here needs a consent newer than the erasure to be enrolled again."""
        if self._key is None:
            raise HqError("the registry was opened without the data key")
        with self.transaction() as c:
            sql = "SELECT erased_at FROM customers WHERE customer_id = ?"
            row = c.execute(sql, (customer_id,)).fetchone()
            if row is not None and row[0] is not None and consent_time <= row[0]:
                raise HqError(f"customer {customer_id} was erased on {row[0]}; their consent of "
                              f"{consent_time} predates it: record a new consent")
            c.execute(
                "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?, ?, NULL) ON CONFLICT(customer_id) DO UPDATE "
                "SET display_name = excluded.display_name, tier = excluded.tier, "
                "assigned_rm = excluded.assigned_rm, consent_channel = excluded.consent_channel, "
                "consent_time = excluded.consent_time, erased_at = NULL",
                (customer_id, display_name, tier, assigned_rm, consent_channel, consent_time, now_iso()))
            added = 0
            for source_sha256, vector in templates:
                nonce = os.urandom(12)
                sealed = self._key.encrypt(nonce, vector, _aad(customer_id, source_sha256))
                cur = c.execute(
                    "INSERT OR IGNORE INTO templates (customer_id, model_pack, recognizer_sha256, "
                    "source_sha256, nonce, ciphertext, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (customer_id, model_pack, recognizer_sha256, source_sha256, nonce, sealed, now_iso()))
                added += cur.rowcount
        return added

    def customer(self, customer_id: str) -> dict[str, Any] | None:
        cur = self._conn.execute("SELECT * FROM customers WHERE customer_id = ?", (customer_id,))
        row = cur.fetchone()
        return None if row is None else dict(zip([d[0] for d in cur.description], row, strict=True))

    def templates(self, customer_id: str, model_pack: str, recognizer_sha256: str) -> list[StoredTemplate]:
        if self._key is None:
            raise HqError("the registry was opened without the data key")
        rows = self._conn.execute(
            "SELECT id, source_sha256, nonce, ciphertext FROM templates WHERE customer_id = ? "
            "AND model_pack = ? AND recognizer_sha256 = ? ORDER BY id",
            (customer_id, model_pack, recognizer_sha256)).fetchall()
        out = []
        for template_id, sha, nonce, sealed in rows:
            try:
                plain = self._key.decrypt(bytes(nonce), bytes(sealed), _aad(customer_id, sha))
            except InvalidTag as err:
                raise HqError(f"template {template_id} does not decrypt with this data key") from err
            out.append(StoredTemplate(template_id, customer_id, sha, plain))
        return out

    # --- branches ---------------------------------------------------------------------------

    def add_branch(self, branch_id: str, public_key_pem: bytes) -> None:
        with self.transaction() as c:
            c.execute("INSERT INTO branches VALUES (?, ?, ?) ON CONFLICT(branch_id) DO UPDATE "
                      "SET public_key = excluded.public_key", (branch_id, public_key_pem, now_iso()))

    def branches(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT branch_id FROM branches ORDER BY branch_id")]

    def branch_key(self, branch_id: str) -> bytes:
        sql = "SELECT public_key FROM branches WHERE branch_id = ?"
        row = self._conn.execute(sql, (branch_id,)).fetchone()
        if row is None:
            raise HqError(f"unknown branch {branch_id!r}: register it with `branch-hq branch add`")
        return bytes(row[0])

    def assign(self, branch_id: str, customer_ids: list[str]) -> None:
        self.branch_key(branch_id)
        with self.transaction() as c:
            c.executemany("INSERT OR IGNORE INTO assignments VALUES (?, ?)",
                          [(branch_id, cid) for cid in customer_ids])

    def served(self, branch_id: str) -> list[str]:
        return [r[0] for r in self._conn.execute(
            "SELECT a.customer_id FROM assignments a JOIN customers c USING (customer_id) "
            "WHERE a.branch_id = ? AND c.erased_at IS NULL ORDER BY a.customer_id", (branch_id,))]

    # --- packages ---------------------------------------------------------------------------

    def unshipped(self, branch_id: str, customer_id: str, model_pack: str,
                  recognizer_sha256: str) -> list[StoredTemplate]:
        shipped = {r[0] for r in self._conn.execute(
            "SELECT template_id FROM shipped WHERE branch_id = ?", (branch_id,))}
        return [t for t in self.templates(customer_id, model_pack, recognizer_sha256) if t.id not in shipped]

    def last_version(self, branch_id: str) -> int:
        sql = "SELECT MAX(version) FROM packages WHERE branch_id = ?"
        row = self._conn.execute(sql, (branch_id,)).fetchone()
        return int(row[0] or 0)

    def record_package(self, row: PackageRow, *, customers: int, templates: list[int], erasures: int) -> None:
        with self.transaction() as c:
            c.execute(
                "INSERT INTO packages (branch_id, version, base_version, package_id, sha256, size, path, "
                "created_at, customers, templates, erasures) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (row.branch_id, row.version, row.base_version, row.package_id, row.sha256, row.size,
                 str(row.path), now_iso(), customers, len(templates), erasures))
            c.executemany("INSERT OR IGNORE INTO shipped VALUES (?, ?, ?)",
                          [(row.branch_id, t, row.version) for t in templates])

    def packages(self, branch_id: str | None = None) -> list[PackageRow]:
        sql = ("SELECT branch_id, version, base_version, package_id, sha256, size, path, state, reason, "
               "sends, last_sent_at FROM packages")
        rows = (self._conn.execute(sql + " WHERE branch_id = ? ORDER BY version", (branch_id,))
                if branch_id else self._conn.execute(sql + " ORDER BY branch_id, version"))
        return [PackageRow(r[0], r[1], r[2], r[3], r[4], r[5], Path(r[6]), r[7], r[8], r[9], r[10])
                for r in rows]

    def next_to_deliver(self) -> list[PackageRow]:
        """Per branch, the oldest package not yet applied or refused (sent in version order)."""
        out = []
        for branch in self.branches():
            pending = [p for p in self.packages(branch) if p.state not in ("applied", "refused")]
            if pending:
                out.append(pending[0])
        return out

    def package_by_sha(self, branch_id: str, sha256: str) -> PackageRow | None:
        found = [p for p in self.packages(branch_id) if p.sha256 == sha256]
        return found[0] if found else None

    def package_sent(self, branch_id: str, version: int) -> None:
        with self.transaction() as c:
            c.execute("UPDATE packages SET sends = sends + 1, last_sent_at = ?, "
                      "state = CASE state WHEN 'built' THEN 'sending' ELSE state END "
                      "WHERE branch_id = ? AND version = ?", (now_iso(), branch_id, version))

    def package_state(self, branch_id: str, version: int, state: str, reason: str = "") -> None:
        with self.transaction() as c:
            c.execute("UPDATE packages SET state = ?, reason = ?, state_at = ? WHERE branch_id = ? "
                      "AND version = ?", (state, reason[:300], now_iso(), branch_id, version))

    # --- erasures ---------------------------------------------------------------------------

    def issue_erasure(self, customer_id: str, reason: str, branches: list[str] | None = None) -> str:
        """Erase the customer here (templates gone, record kept) and address every branch."""
        erasure_id = str(uuid.uuid4())
        targets = self.branches() if branches is None else branches
        now = now_iso()
        with self.transaction() as c:
            c.execute("INSERT INTO erasures VALUES (?, ?, ?, ?)", (erasure_id, customer_id, now, reason))
            c.executemany("INSERT INTO erasure_targets (erasure_id, branch_id) VALUES (?, ?)",
                          [(erasure_id, b) for b in targets])
            c.execute("DELETE FROM templates WHERE customer_id = ?", (customer_id,))
            c.execute("UPDATE customers SET erased_at = ? WHERE customer_id = ?", (now, customer_id))
        return erasure_id

    def erasures_due(self, older_than: str, limit: int = 10_000) -> list[ErasureTarget]:
        """Targets not acknowledged, never sent or last sent before ``older_than``."""
        rows = self._conn.execute(
            "SELECT t.erasure_id, t.branch_id, e.customer_id, e.issued_at, e.reason, t.sends "
            "FROM erasure_targets t JOIN erasures e USING (erasure_id) WHERE t.acked_at IS NULL "
            "AND (t.last_sent_at IS NULL OR t.last_sent_at < ?) ORDER BY e.issued_at LIMIT ?",
            (older_than, limit)).fetchall()
        return [ErasureTarget(*r) for r in rows]

    def erasures_sent(self, targets: list[ErasureTarget]) -> None:
        now = now_iso()
        with self.transaction() as c:
            c.executemany(
                "UPDATE erasure_targets SET sends = sends + 1, last_sent_at = ?, "
                "first_sent_at = COALESCE(first_sent_at, ?) WHERE erasure_id = ? AND branch_id = ?",
                [(now, now, t.erasure_id, t.branch_id) for t in targets])

    def erasure_acked(self, erasure_id: str, branch_id: str, *, result: str, applied_at: str,
                      templates_removed: int, error: str = "") -> bool:
        """Record a branch's acknowledgement; False when no such target (another branch's
        erasure, or an unknown id).  A ``failed`` result is kept as the error and the target
        stays open (sent again)."""
        return self.erasures_acked([ErasureAckRow(erasure_id, branch_id, result, applied_at,
                                                  templates_removed, error)])[0]

    def erasures_acked(self, acks: list[ErasureAckRow]) -> list[bool]:
        """Many acknowledgements in one transaction (one disk sync for a whole fleet's)."""
        known = []
        now = now_iso()
        with self.transaction() as c:
            for a in acks:
                if a.result == "failed":
                    cur = c.execute("UPDATE erasure_targets SET error = ? WHERE erasure_id = ? "
                                    "AND branch_id = ?", (a.error[:300], a.erasure_id, a.branch_id))
                else:
                    cur = c.execute(
                        "UPDATE erasure_targets SET acked_at = COALESCE(acked_at, ?), applied_at = ?, "
                        "result = ?, templates_removed = ?, error = '' WHERE erasure_id = ? "
                        "AND branch_id = ?",
                        (now, a.applied_at, a.result, a.templates_removed, a.erasure_id, a.branch_id))
                known.append(cur.rowcount == 1)
        return known

    def erasure_report(self) -> list[dict[str, Any]]:
        out = []
        for erasure_id, customer_id, issued_at, reason in self._conn.execute(
                "SELECT erasure_id, customer_id, issued_at, reason FROM erasures ORDER BY issued_at"):
            targets = self._conn.execute(
                "SELECT branch_id, sends, first_sent_at, last_sent_at, acked_at, applied_at, result, "
                "templates_removed, error FROM erasure_targets WHERE erasure_id = ? ORDER BY branch_id",
                (erasure_id,)).fetchall()
            confirmed = [{"branch_id": t[0], "acked_at": t[4], "applied_at": t[5], "result": t[6],
                          "templates_removed": t[7], "sends": t[1]} for t in targets if t[4] is not None]
            stragglers = [{"branch_id": t[0], "sends": t[1], "first_sent_at": t[2], "last_sent_at": t[3],
                           "error": t[8]} for t in targets if t[4] is None]
            out.append({"erasure_id": erasure_id, "customer_id": customer_id, "issued_at": issued_at,
                        "reason": reason, "branches": len(targets), "confirmed": len(confirmed),
                        "complete": not stragglers, "stragglers": stragglers,
                        "confirmations": confirmed})
        return out

    def pending_erasures(self, branch_id: str) -> list[tuple[str, str, str]]:
        """(erasure id, customer id, reason) not acknowledged by ``branch_id``: an air-gapped
        branch gets them in its next package."""
        return [(r[0], r[1], r[2]) for r in self._conn.execute(
            "SELECT e.erasure_id, e.customer_id, e.reason FROM erasure_targets t JOIN erasures e "
            "USING (erasure_id) WHERE t.branch_id = ? AND t.acked_at IS NULL ORDER BY e.issued_at",
            (branch_id,))]

    def stats(self) -> dict[str, Any]:
        one = self._conn.execute
        return {
            "customers": one("SELECT COUNT(*) FROM customers WHERE erased_at IS NULL").fetchone()[0],
            "templates": one("SELECT COUNT(*) FROM templates").fetchone()[0],
            "branches": one("SELECT COUNT(*) FROM branches").fetchone()[0],
            "packages": json.loads(json.dumps(dict(one("SELECT state, COUNT(*) FROM packages GROUP BY state")
                                                   .fetchall()))),
        }


def _aad(customer_id: str, source_sha256: str) -> bytes:
    return f"hq-template:{customer_id}:{source_sha256}".encode()
