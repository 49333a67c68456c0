"""The append-only audit log: a hash chain, sealed entry by entry with a keyed MAC.

Each entry carries

* ``hash``: SHA-256 of the previous entry's hash and this entry's fields (seq, time,
  actor, action, subject, details).  The chain makes a deleted, inserted or reordered
  entry visible, but anyone who can write the file can recompute it;
* ``mac``: HMAC-SHA256 of ``hash`` under a key derived from the store key (never in the
  database), and ``key_id``, the id of that store key.  Without the key file nobody can
  recompute a MAC, so an edited entry, a re-computed chain or a forged prune checkpoint is
  found by ``branch-edge audit verify``.

Because each ``hash`` covers everything before it, one verified MAC vouches for the whole
chain up to its entry: entries sealed with a key that is no longer loaded (before a key
rotation) are still covered by the later entries' MACs, and a rotated store verifies with
the new key alone.

Entries written before the store had MACs (schema version 2 and older) keep their plain
hash; the migration appends an ``audit_keyed`` entry whose MAC seals them.  After the first
sealed entry every entry must carry a MAC.

What the chain cannot show on its own is that entries were removed from the *end*, or that
the whole file was replaced by an older copy: for that the head (``seq``, ``hash``, ``mac``)
is recorded outside the branch (``branch-edge audit head``, the daemon's ``audit_head``
message) and checked with ``audit verify --expect-head``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

from edge.store.base import StoreBase, iso, utc_now
from edge.store.crypto import KeyRing, key_id_of

GENESIS_HASH = "0" * 64
# meta key: {"seq", "hash"} of the last audit entry that retention deleted (edge.store.retention).
AUDIT_CHECKPOINT_KEY = "audit_checkpoint"
# The first schema version whose entries carry a MAC (edge.store.database.MIGRATIONS).
KEYED_SCHEMA_VERSION = 3
_COLUMNS = "seq, time, actor, action, subject, details, prev_hash, hash, key_id, mac"


def _audit_hash(prev_hash: str, fields: tuple[int, str, str, str, str, str]) -> str:
    """Hash of (seq, time, actor, action, subject, details) chained to the previous hash."""
    record = json.dumps(list(fields), separators=(",", ":"))
    return hashlib.sha256((prev_hash + record).encode("utf-8")).hexdigest()


def audit_mac_key(store_key: bytes) -> bytes:
    """The audit MAC key: derived from the store key (domain-separated), so it is rotated with it."""
    return hashlib.sha256(b"branch-edge audit hmac v1\x00" + store_key).digest()


def audit_mac(store_key: bytes, digest: str) -> str:
    return hmac.new(audit_mac_key(store_key), digest.encode("ascii"), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class AuditHead:
    """The newest entry: what head office records to detect a truncated or rolled-back log."""

    seq: int
    hash: str
    mac: str
    key_id: str
    time: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class AuditLog(StoreBase):
    """Entries that name who did what to whom; no names or biometrics."""

    def audit(self, actor: str, action: str, subject: str, details: dict[str, Any]) -> int:
        """Append one audit entry chained to the previous one.  No names or biometrics here."""
        with self.transaction() as c:
            last = c.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            seq, prev = (int(last[0]) + 1, str(last[1])) if last else (1, GENESIS_HASH)
            time, text = iso(utc_now()), json.dumps(details, sort_keys=True, separators=(",", ":"))
            digest = _audit_hash(prev, (seq, time, actor, action, subject, text))
            c.execute(
                f"INSERT INTO audit ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (seq, time, actor, action, subject, text, prev, digest, self._keys.primary_id,
                 audit_mac(self._keys.primary, digest)),
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
        """The first audit seq whose hash, chain link or MAC is wrong, or None when intact."""
        broken = audit_chain_break(self._conn, self._keys)
        return broken.seq if broken else None

    def audit_head(self) -> AuditHead | None:
        return audit_head(self._conn)

    def _seal_after_migration(self) -> None:
        """Right after the migration to keyed entries (and only once the key is known to be the
        store's): one MAC'd entry vouches for every plain-hash entry before it.  Opening a store
        takes no write lock unless this is due (a reader must open while another process writes)."""
        pending = "SELECT 1 FROM meta WHERE key = 'audit_seal_pending'"
        if self._conn.execute(pending).fetchone() is None:
            return
        with self.transaction() as c:
            if c.execute("DELETE FROM meta WHERE key = 'audit_seal_pending'").rowcount == 0:
                return
            row = c.execute("SELECT MAX(seq) FROM audit").fetchone()
            if row[0] is not None:
                self.audit("store", "audit_keyed", "audit", {"unkeyed_through_seq": int(row[0])})


@dataclass(frozen=True)
class AuditBreak:
    seq: int  # the first entry that is missing, altered or not linked to its predecessor
    reason: str


@dataclass(frozen=True)
class AuditCheck:
    """What a verification saw: ``broken`` is None when the chain is intact."""

    broken: AuditBreak | None
    entries: int
    macs_verified: int
    macs_unchecked: int  # sealed with a key not loaded; covered by a later verified MAC
    unkeyed: int  # plain-hash entries from before the store had MACs


def audit_chain_break(conn: sqlite3.Connection, keys: KeyRing | None = None) -> AuditBreak | None:
    """Walk the chain.  Without ``keys`` only the hashes and links are checked (what a backup
    can check without the key); with them every MAC whose key is in the ring, and the newest
    entry's MAC must verify."""
    return check_audit(conn, keys).broken


def check_audit(conn: sqlite3.Connection, keys: KeyRing | None) -> AuditCheck:
    walk = _Walk(conn, keys)
    broken = walk.run()
    return AuditCheck(broken, walk.entries, walk.verified, walk.unchecked, walk.unkeyed)


class _Walk:
    def __init__(self, conn: sqlite3.Connection, keys: KeyRing | None) -> None:
        self.conn, self.keys = conn, keys
        self.by_id = {key_id_of(k): k for k in (keys.primary, *keys.older)} if keys else {}
        self.keyed_schema = int(conn.execute("PRAGMA user_version").fetchone()[0]) >= KEYED_SCHEMA_VERSION
        self.entries = self.verified = self.unchecked = self.unkeyed = 0
        self.pending_since: int | None = None  # first entry whose MAC nothing has vouched for yet
        self.pending_key = ""
        self.keyed_seen = False

    def run(self) -> AuditBreak | None:
        start, prev = _audit_checkpoint(self.conn)
        if start and not _prune_recorded(self.conn, start, prev):
            return AuditBreak(start, f"entries up to {start} were deleted without a recorded prune")
        columns = _COLUMNS if self.keyed_schema else _COLUMNS.rsplit(", key_id", 1)[0]
        last_seq = start
        for expected_seq, row in enumerate(self.conn.execute(f"SELECT {columns} FROM audit ORDER BY seq"),
                                           start=start + 1):
            self.entries += 1
            last_seq = int(row[0])
            broken = self._entry(expected_seq, prev, row)
            if broken is not None:
                return broken
            prev = row[7]
        return self._finish(last_seq)

    def _entry(self, expected_seq: int, prev: str, row: tuple[Any, ...]) -> AuditBreak | None:
        seq, time, actor, action, subject, details, prev_hash, digest = row[:8]
        key_id, mac = (row[8], row[9]) if self.keyed_schema else ("", "")
        if seq != expected_seq:
            return AuditBreak(expected_seq, f"entry {expected_seq} is missing")
        if prev_hash != prev:
            return AuditBreak(int(seq), f"entry {seq} does not link to entry {seq - 1}")
        if digest != _audit_hash(prev_hash, (seq, time, actor, action, subject, details)):
            return AuditBreak(int(seq), f"entry {seq} was altered")
        if mac:
            self.keyed_seen = True
            return self._check_mac(int(seq), str(key_id), str(mac), str(digest))
        if self.keyed_seen:
            return AuditBreak(int(seq), f"entry {seq} has no MAC: written without the store key")
        self.unkeyed += 1
        self._pending(int(seq), "")
        return None

    def _pending(self, seq: int, key_id: str) -> None:
        if self.pending_since is None:
            self.pending_since, self.pending_key = seq, key_id

    def _check_mac(self, seq: int, key_id: str, mac: str, digest: str) -> AuditBreak | None:
        if self.keys is None:
            return None
        key = self.by_id.get(key_id)
        if key is None:
            self.unchecked += 1
            self._pending(seq, key_id)
            return None
        if not hmac.compare_digest(audit_mac(key, digest), mac):
            return AuditBreak(seq, f"entry {seq} was altered (its MAC does not match)")
        self.verified += 1
        self.pending_since = None  # this MAC covers every entry before it
        return None

    def _finish(self, last_seq: int) -> AuditBreak | None:
        if self.keys is None or not self.keyed_schema or self.entries == 0:
            return None
        if not self.keyed_seen:
            return AuditBreak(last_seq, "no entry carries a MAC: the log was rewritten without the key")
        if self.pending_since is not None:
            return AuditBreak(self.pending_since,
                              f"entries from {self.pending_since} on are sealed with key id "
                              f"{self.pending_key}, which is not loaded: they cannot be checked "
                              "(add that key to store.old_key_files or pass --old-key-file)")
        return None


def audit_head(conn: sqlite3.Connection) -> AuditHead | None:
    keyed = int(conn.execute("PRAGMA user_version").fetchone()[0]) >= KEYED_SCHEMA_VERSION
    columns = "seq, hash, key_id, mac, time" if keyed else "seq, hash, '', '', time"
    row = conn.execute(f"SELECT {columns} FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        return None
    return AuditHead(int(row[0]), str(row[1]), str(row[3]), str(row[2]), str(row[4]))


def head_mismatch(conn: sqlite3.Connection, head: dict[str, Any]) -> str | None:
    """Why the chain does not contain the recorded ``head`` (truncated, rolled back, rewritten)."""
    try:
        seq, digest, mac = int(head["seq"]), str(head["hash"]), str(head.get("mac") or "")
    except (KeyError, TypeError, ValueError):
        return "the recorded head is not {\"seq\", \"hash\", \"mac\"}"
    checkpoint_seq, checkpoint_hash = _audit_checkpoint(conn)
    if seq <= checkpoint_seq:  # pruned by retention; the prune itself is a verified entry
        return None if seq < checkpoint_seq or digest == checkpoint_hash else \
            f"entry {seq} differs from the recorded head"
    keyed = int(conn.execute("PRAGMA user_version").fetchone()[0]) >= KEYED_SCHEMA_VERSION
    if mac and not keyed:
        return (f"the recorded head {seq} carries a MAC but this file has none: it was replaced by "
                "an older, unkeyed copy")
    column = "mac" if keyed else "''"
    row = conn.execute(f"SELECT hash, {column} FROM audit WHERE seq = ?", (seq,)).fetchone()
    if row is None:
        newest = conn.execute("SELECT MAX(seq) FROM audit").fetchone()[0] or checkpoint_seq
        return (f"entry {seq} of the recorded head is missing (the log ends at {newest}): "
                "it was truncated or rolled back")
    if row[0] != digest or (mac and row[1] != mac):
        return f"entry {seq} differs from the recorded head: the log was rewritten"
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
