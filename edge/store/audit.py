"""The append-only, hash-chained audit log."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from typing import Any

from edge.store.base import StoreBase, iso, utc_now

GENESIS_HASH = "0" * 64
# meta key: {"seq", "hash"} of the last audit entry that retention deleted (edge.store.retention).
AUDIT_CHECKPOINT_KEY = "audit_checkpoint"


def _audit_hash(prev_hash: str, fields: tuple[int, str, str, str, str, str]) -> str:
    """Hash of (seq, time, actor, action, subject, details) chained to the previous hash."""
    record = json.dumps(list(fields), separators=(",", ":"))
    return hashlib.sha256((prev_hash + record).encode("utf-8")).hexdigest()


class AuditLog(StoreBase):
    """Entries that name who did what to whom; no names or biometrics."""

    def audit(self, actor: str, action: str, subject: str, details: dict[str, Any]) -> int:
        """Append one audit entry chained to the previous one.  No names or biometrics here."""
        with self.transaction() as c:
            last = c.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS_HASH)
            time, text = iso(utc_now()), json.dumps(details, sort_keys=True, separators=(",", ":"))
            digest = _audit_hash(prev, (seq, time, actor, action, subject, text))
            c.execute(
                "INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, time, actor, action, subject, text, prev, digest),
            )
        return int(seq)

    def audit_entries(self, subject: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT seq, time, actor, action, subject, details FROM audit"
        rows = self._conn.execute(
            sql + (" WHERE subject = ? ORDER BY seq" if subject else " ORDER BY seq"),
            (subject,) if subject else (),
        ).fetchall()
        keys = ("seq", "time", "actor", "action", "subject")
        return [dict(zip(keys, r[:5], strict=True)) | {"details": json.loads(r[5])} for r in rows]

    def verify_audit(self) -> int | None:
        """The first audit seq whose hash or chain link is wrong, or None when intact."""
        broken = audit_chain_break(self._conn)
        return broken.seq if broken else None

@dataclass(frozen=True)
class AuditBreak:
    seq: int  # the first entry that is missing, altered or not linked to its predecessor
    reason: str


def audit_chain_break(conn: sqlite3.Connection) -> AuditBreak | None:
    """Walk the hash chain; needs no key, so an auditor can run it on a copy of the file."""
    start, prev = _audit_checkpoint(conn)
    if start and not _prune_recorded(conn, start, prev):
        return AuditBreak(start, f"entries up to {start} were deleted without a recorded prune")
    rows = conn.execute("SELECT * FROM audit ORDER BY seq")
    for expected_seq, row in enumerate(rows, start=start + 1):
        seq, time, actor, action, subject, details, prev_hash, digest = row
        if seq != expected_seq:
            return AuditBreak(expected_seq, f"entry {expected_seq} is missing")
        if prev_hash != prev:
            return AuditBreak(int(seq), f"entry {seq} does not link to entry {seq - 1}")
        if digest != _audit_hash(prev_hash, (seq, time, actor, action, subject, details)):
            return AuditBreak(int(seq), f"entry {seq} was altered")
        prev = digest
    return None


def _audit_checkpoint(conn: sqlite3.Connection) -> tuple[int, str]:
    """Where the chain starts: after the entries retention deleted, else at the genesis."""
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (AUDIT_CHECKPOINT_KEY,)).fetchone()
    if row is None:
        return 0, GENESIS_HASH
    checkpoint = json.loads(row[0])
    return int(checkpoint["seq"]), str(checkpoint["hash"])


def _prune_recorded(conn: sqlite3.Connection, seq: int, digest: str) -> bool:
    """A checkpoint counts only with the chained ``audit_pruned`` entry that names it."""
    rows = conn.execute("SELECT details FROM audit WHERE action = 'audit_pruned'").fetchall()
    named = [json.loads(r[0]) for r in rows]
    return any(d.get("through_seq") == seq and d.get("checkpoint_hash") == digest for d in named)


