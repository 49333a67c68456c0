"""The branch's SQLite store: customers, consents, encrypted templates and photos,
erasures and an append-only, hash-chained audit log.

SQLite runs in WAL mode with a busy timeout so the daemon can read while an
enrolment writes.  ``secure_delete`` is on for every connection of ours, and an
erasure ends with a WAL checkpoint and ``VACUUM`` so that removed ciphertexts
do not linger in the database file or its WAL.  Templates and photos are
AES-GCM encrypted (``edge.store.crypto``); the key never touches the database — only
a small "key check" ciphertext is kept so that a wrong key is reported at open
time, naming the key id the database expects.

Logs at INFO and above carry customer ids and counts, never names or biometric
data; so does the audit log.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from edge.config import StoreConfig
from edge.core.errors import StoreError
from edge.store.crypto import KeyRing, associated_data, blob_key_id_of, key_id_of, load_key_ring

log = logging.getLogger(__name__)

BUSY_TIMEOUT_MS = 5000
GENESIS_HASH = "0" * 64
# meta key: {"seq", "hash"} of the last audit entry that retention deleted (edge.store.retention).
AUDIT_CHECKPOINT_KEY = "audit_checkpoint"
CUSTOMER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_KEY_CHECK_PLAINTEXT = b"branch-edge key check v1"
# A consent may be stamped slightly ahead of this PC's clock (another terminal), not more.
_CLOCK_SKEW = timedelta(minutes=5)

# Schema migrations; PRAGMA user_version counts how many have been applied.
# Append new entries, never edit applied ones.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
    CREATE TABLE customers (
        customer_id TEXT PRIMARY KEY,
        display_name TEXT NOT NULL DEFAULT '',
        tier TEXT NOT NULL DEFAULT '',
        assigned_rm TEXT NOT NULL DEFAULT '',
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE consents (
        id INTEGER PRIMARY KEY,
        customer_id TEXT NOT NULL REFERENCES customers(customer_id),
        granted_at TEXT NOT NULL,
        channel TEXT NOT NULL,
        withdrawn_at TEXT,
        recorded_by TEXT NOT NULL
    );
    CREATE INDEX consents_customer ON consents(customer_id);
    CREATE TABLE photos (
        id INTEGER PRIMARY KEY,
        customer_id TEXT NOT NULL REFERENCES customers(customer_id),
        sha256 TEXT NOT NULL UNIQUE,
        key_id TEXT NOT NULL,
        ciphertext BLOB NOT NULL,
        created_at TEXT NOT NULL
    );
    CREATE INDEX photos_customer ON photos(customer_id);
    CREATE TABLE templates (
        id INTEGER PRIMARY KEY,
        customer_id TEXT NOT NULL REFERENCES customers(customer_id),
        model_pack TEXT NOT NULL,
        key_id TEXT NOT NULL,
        embedding BLOB NOT NULL,
        quality TEXT NOT NULL,
        source_sha256 TEXT NOT NULL,
        source_name TEXT NOT NULL,
        photo_id INTEGER REFERENCES photos(id) ON DELETE SET NULL,
        created_at TEXT NOT NULL,
        UNIQUE (model_pack, source_sha256)
    );
    CREATE INDEX templates_pack ON templates(model_pack, customer_id);
    CREATE TABLE erasures (
        id INTEGER PRIMARY KEY,
        customer_id TEXT NOT NULL,
        erased_at TEXT NOT NULL,
        templates_removed INTEGER NOT NULL,
        photos_removed INTEGER NOT NULL,
        actor TEXT NOT NULL,
        reason TEXT NOT NULL
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY,
        time TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        subject TEXT NOT NULL,
        details TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'audit log is append-only'); END;
    CREATE TRIGGER erasures_no_update BEFORE UPDATE ON erasures
        BEGIN SELECT RAISE(ABORT, 'erasure records are append-only'); END;
    CREATE TRIGGER erasures_no_delete BEFORE DELETE ON erasures
        BEGIN SELECT RAISE(ABORT, 'erasure records are append-only'); END;
    """,
    # 2: the account holder's ID number as a keyed hash (HMAC-SHA256 under a key
    # derived from the store key), so the counter can check "card holder = account
    # holder" without the database holding any ID number in clear.
    """
    CREATE TABLE holder_ids (
        customer_id TEXT PRIMARY KEY REFERENCES customers(customer_id),
        key_id TEXT NOT NULL,
        id_hmac TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE INDEX holder_ids_hmac ON holder_ids(id_hmac);
    """,
)


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


def check_customer_id(customer_id: str) -> None:
    if not CUSTOMER_ID_RE.match(customer_id):
        raise StoreError(
            f"invalid customer id {customer_id!r}: 1-64 characters, letters, digits and _ . @ -, "
            "starting with a letter or digit"
        )


@dataclass(frozen=True)
class Customer:
    customer_id: str
    display_name: str
    tier: str
    assigned_rm: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Consent:
    id: int
    customer_id: str
    granted_at: str
    channel: str
    withdrawn_at: str | None
    recorded_by: str


@dataclass(frozen=True)
class Erasure:
    customer_id: str
    erased_at: str
    templates_removed: int
    photos_removed: int
    consents_withdrawn: int
    actor: str
    scrubbed: bool  # WAL checkpointed and file vacuumed: no old pages left

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _audit_hash(prev_hash: str, fields: tuple[int, str, str, str, str, str]) -> str:
    """Hash of (seq, time, actor, action, subject, details) chained to the previous hash."""
    record = json.dumps(list(fields), separators=(",", ":"))
    return hashlib.sha256((prev_hash + record).encode("utf-8")).hexdigest()


def _create_private_file(path: Path) -> None:
    # The database holds customer names: readable by the service account only.
    if path.exists():
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass
    except OSError as err:
        raise StoreError(f"cannot create database {path}: {err.strerror}") from err


class Store:
    """One connection to the store.  Use :meth:`open`; close it (or use ``with``)."""

    def __init__(self, conn: sqlite3.Connection, keys: KeyRing, path: Path) -> None:
        self._conn = conn
        self._keys = keys
        self.path = path
        self._depth = 0

    # -- opening -----------------------------------------------------------------

    @classmethod
    def open(cls, path: Path | str, keys: KeyRing, create: bool = True) -> Store:
        path = Path(path)
        if not create and not path.exists():
            raise StoreError(f"database {path} does not exist")
        if create:
            _create_private_file(path)
        try:
            conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
        except sqlite3.Error as err:
            raise StoreError(f"cannot open database {path}: {err}") from err
        store = cls(conn, keys, path)
        try:
            store._configure()
            store._migrate()
            store._check_key()
        except sqlite3.DatabaseError as err:
            conn.close()
            raise StoreError(f"{path}: not a usable Branch Edge database: {err}") from err
        except BaseException:
            conn.close()
            raise
        return store

    def _configure(self) -> None:
        c = self._conn
        c.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        mode = c.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StoreError(f"{self.path}: cannot switch the database to WAL mode (got {mode})")
        c.execute("PRAGMA synchronous = FULL")
        c.execute("PRAGMA foreign_keys = ON")
        c.execute("PRAGMA secure_delete = ON")

    def _migrate(self) -> None:
        version = int(self._conn.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: schema version {version} is newer than this program "
                f"(knows {len(MIGRATIONS)}); upgrade Branch Edge"
            )
        for number in range(version, len(MIGRATIONS)):
            with self.transaction():
                for statement in _split_sql(MIGRATIONS[number]):
                    self._conn.execute(statement)
                self._conn.execute(f"PRAGMA user_version = {number + 1}")
            log.info("store %s migrated to schema version %d", self.path, number + 1)

    def _check_key(self) -> None:
        aad = associated_data("meta", "", "key_check")
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
        if row is None:
            with self.transaction():
                blob = self._keys.encrypt(_KEY_CHECK_PLAINTEXT, aad)
                self._conn.execute("INSERT INTO meta VALUES ('key_check', ?)", (blob,))
            return
        if self._keys.decrypt(bytes(row[0]), aad, f"database {self.path}") != _KEY_CHECK_PLAINTEXT:
            raise StoreError(f"database {self.path}: key check failed")

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def key_id(self) -> str:
        return self._keys.primary_id

    # -- transactions and audit --------------------------------------------------

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

    # -- customers and consent ---------------------------------------------------

    def get_customer(self, customer_id: str) -> Customer | None:
        row = self._conn.execute(
            "SELECT * FROM customers WHERE customer_id = ?", (customer_id,)
        ).fetchone()
        return Customer(*row) if row else None

    def upsert_customer(self, customer_id: str, actor: str, display_name: str | None = None,
                        tier: str | None = None, assigned_rm: str | None = None) -> Customer:
        """Create the customer or update the given fields (None leaves a field as it is)."""
        check_customer_id(customer_id)
        given = {"display_name": display_name, "tier": tier, "assigned_rm": assigned_rm}
        with self.transaction() as c:
            old = self.get_customer(customer_id)
            now = iso(utc_now())
            if old is None:
                values = {k: v or "" for k, v in given.items()}
                c.execute(
                    "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)",
                    (customer_id, *values.values(), now, now),
                )
                self.audit(actor, "customer_created", customer_id, {"fields": sorted(values)})
            else:
                changed = {k: v for k, v in given.items() if v is not None and v != getattr(old, k)}
                if changed:
                    sets = ", ".join(f"{k} = ?" for k in changed)
                    c.execute(
                        f"UPDATE customers SET {sets}, updated_at = ? WHERE customer_id = ?",
                        (*changed.values(), now, customer_id),
                    )
                    self.audit(actor, "customer_updated", customer_id, {"fields": sorted(changed)})
            customer = self.get_customer(customer_id)
        assert customer is not None
        return customer

    def active_consent(self, customer_id: str) -> Consent | None:
        row = self._conn.execute(
            "SELECT * FROM consents WHERE customer_id = ? AND withdrawn_at IS NULL "
            "ORDER BY granted_at DESC LIMIT 1",
            (customer_id,),
        ).fetchone()
        return Consent(*row) if row else None

    def last_withdrawal(self, customer_id: str) -> str | None:
        row = self._conn.execute(
            "SELECT MAX(withdrawn_at) FROM consents WHERE customer_id = ?", (customer_id,)
        ).fetchone()
        return row[0] if row else None

    def consent_refusal(self, customer_id: str, granted_at: datetime) -> tuple[str, str] | None:
        """Why a new consent given at ``granted_at`` cannot be recorded: (code, message)."""
        granted = iso(granted_at)
        if granted_at > utc_now() + _CLOCK_SKEW:
            return "consent_in_future", f"customer {customer_id}: consent time {granted} is in the future"
        withdrawn = self.last_withdrawal(customer_id)
        if withdrawn is not None and granted <= withdrawn:
            return ("consent_predates_withdrawal",
                    f"customer {customer_id}: consent of {granted} predates the withdrawal of "
                    f"{withdrawn}; record a new consent")
        return None

    def record_consent(self, customer_id: str, channel: str, granted_at: datetime,
                       recorded_by: str) -> Consent:
        """Record a consent; an active one is kept as is (idempotent).

        A consent dated at or before the customer's last withdrawal is refused: re-running an
        old import must not silently re-enrol someone who withdrew.
        """
        if not channel.strip():
            raise StoreError(f"customer {customer_id}: consent channel is empty")
        with self.transaction() as c:
            active = self.active_consent(customer_id)
            if active is not None:
                return active
            refusal = self.consent_refusal(customer_id, granted_at)
            if refusal is not None:
                raise StoreError(refusal[1])
            c.execute(
                "INSERT INTO consents (customer_id, granted_at, channel, recorded_by) "
                "VALUES (?, ?, ?, ?)",
                (customer_id, iso(granted_at), channel.strip(), recorded_by),
            )
            self.audit(recorded_by, "consent_recorded", customer_id, {"channel": channel.strip()})
            consent = self.active_consent(customer_id)
        assert consent is not None
        return consent

    # -- photos and templates ----------------------------------------------------

    def add_photo(self, customer_id: str, data: bytes) -> tuple[int, bool]:
        """Store an encrypted photo; (id, created).  The same bytes twice give the same row."""
        sha = hashlib.sha256(data).hexdigest()
        with self.transaction() as c:
            sql = "SELECT id, customer_id FROM photos WHERE sha256 = ?"
            row = c.execute(sql, (sha,)).fetchone()
            if row is not None:
                if row[1] != customer_id:
                    raise StoreError(f"photo {sha[:12]} is already enrolled for another customer")
                return int(row[0]), False
            blob = self._keys.encrypt(data, associated_data("photos", customer_id, f"photo:{sha}"))
            cur = c.execute(
                "INSERT INTO photos (customer_id, sha256, key_id, ciphertext, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (customer_id, sha, self._keys.primary_id, blob, iso(utc_now())),
            )
        return int(cur.lastrowid or 0), True

    def load_photo(self, photo_id: int) -> bytes:
        row = self._conn.execute(
            "SELECT customer_id, sha256, ciphertext FROM photos WHERE id = ?", (photo_id,)
        ).fetchone()
        if row is None:
            raise StoreError(f"no photo with id {photo_id}")
        customer_id, sha, blob = row
        aad = associated_data("photos", customer_id, f"photo:{sha}")
        data = self._keys.decrypt(bytes(blob), aad, f"photo {photo_id}")
        if hashlib.sha256(data).hexdigest() != sha:
            raise StoreError(f"photo {photo_id}: content does not match its recorded digest")
        return data

    def template_owner(self, model_pack: str, source_sha256: str) -> str | None:
        """The customer whose template of ``model_pack`` came from this photo, if any."""
        row = self._conn.execute(
            "SELECT customer_id FROM templates WHERE model_pack = ? AND source_sha256 = ?",
            (model_pack, source_sha256),
        ).fetchone()
        return str(row[0]) if row else None

    def count_templates(self, customer_id: str, model_pack: str) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) FROM templates WHERE customer_id = ? AND model_pack = ?",
            (customer_id, model_pack),
        ).fetchone()
        return int(row[0])

    def add_template(self, customer_id: str, model_pack: str, embedding: np.ndarray, *,
                     quality: dict[str, Any], source_sha256: str, source_name: str,
                     photo_id: int | None = None) -> tuple[int, bool]:
        """Store an encrypted template; (id, created).  Idempotent on (pack, source photo)."""
        vector = np.ascontiguousarray(embedding, dtype="<f4").reshape(-1)
        if vector.size == 0 or not np.all(np.isfinite(vector)):
            raise StoreError(f"customer {customer_id}: template is empty or not finite")
        with self.transaction() as c:
            owner = self.template_owner(model_pack, source_sha256)
            if owner is not None:
                if owner != customer_id:
                    raise StoreError(f"photo {source_sha256[:12]} is enrolled for another customer")
                row = c.execute(
                    "SELECT id FROM templates WHERE model_pack = ? AND source_sha256 = ?",
                    (model_pack, source_sha256),
                ).fetchone()
                return int(row[0]), False
            purpose = _template_purpose(model_pack, source_sha256)
            aad = associated_data("templates", customer_id, purpose)
            cur = c.execute(
                "INSERT INTO templates (customer_id, model_pack, key_id, embedding, quality, "
                "source_sha256, source_name, photo_id, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (customer_id, model_pack, self._keys.primary_id,
                 self._keys.encrypt(vector.tobytes(), aad), json.dumps(quality, sort_keys=True),
                 source_sha256, source_name, photo_id, iso(utc_now())),
            )
            self._bump_gallery_generation()
        return int(cur.lastrowid or 0), True

    def load_templates(self, model_pack: str, dim: int | None = None,
                       customer_id: str | None = None) -> tuple[list[str], np.ndarray]:
        """Decrypted templates of one model pack: (customer ids, float32 (n, d) embeddings).

        Templates of other packs are never returned: their vectors live in another space.
        """
        sql = "SELECT id, customer_id, source_sha256, embedding FROM templates WHERE model_pack = ?"
        params: tuple[str, ...] = (model_pack,)
        if customer_id is not None:
            sql, params = sql + " AND customer_id = ?", (model_pack, customer_id)
        ids: list[str] = []
        vectors: list[np.ndarray] = []
        for template_id, owner, sha, blob in self._conn.execute(sql + " ORDER BY id", params):
            aad = associated_data("templates", owner, _template_purpose(model_pack, sha))
            plain = self._keys.decrypt(bytes(blob), aad, f"template {template_id}")
            vectors.append(np.frombuffer(plain, dtype="<f4"))
            ids.append(owner)
        return ids, _stack(vectors, dim, model_pack)

    # -- erasure -----------------------------------------------------------------

    def erase_customer(self, customer_id: str, actor: str, reason: str = "customer request",
                       scrub: bool = True) -> Erasure:
        """Remove the customer's templates and photos in one transaction and record it.

        The consent is marked withdrawn, so enrolling again needs a new consent.  The customer
        row (CRM data, no biometrics) stays.  ``scrub`` checkpoints the WAL and vacuums.
        """
        with self.transaction() as c:
            if self.get_customer(customer_id) is None:
                raise StoreError(f"unknown customer id {customer_id!r}")
            now = iso(utc_now())
            where = "WHERE customer_id = ?"
            n_templates = c.execute(f"DELETE FROM templates {where}", (customer_id,)).rowcount
            n_photos = c.execute(f"DELETE FROM photos {where}", (customer_id,)).rowcount
            n_consents = c.execute(
                f"UPDATE consents SET withdrawn_at = ? {where} AND withdrawn_at IS NULL",
                (now, customer_id),
            ).rowcount
            c.execute(
                "INSERT INTO erasures (customer_id, erased_at, templates_removed, photos_removed, "
                "actor, reason) VALUES (?, ?, ?, ?, ?, ?)",
                (customer_id, now, n_templates, n_photos, actor, reason),
            )
            counts = {"templates_removed": n_templates, "photos_removed": n_photos,
                      "consents_withdrawn": n_consents, "reason": reason}
            self.audit(actor, "customer_erased", customer_id, counts)
            self._bump_gallery_generation()
        scrubbed = self.scrub() if scrub else False
        log.info("erased customer %s: %d templates, %d photos", customer_id, n_templates, n_photos)
        return Erasure(customer_id, now, n_templates, n_photos, n_consents, actor, scrubbed)

    def scrub(self) -> bool:
        """Push deleted pages out of the WAL and the file; False when a reader kept the WAL."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.execute("VACUUM")
        busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            log.warning("store %s: a reader holds the WAL; old pages remain until the next "
                        "checkpoint", self.path)
        return not busy

    # -- account holder's ID number (keyed hash only) ---------------------------------

    def set_holder_id_number(self, customer_id: str, normalized_id: str, actor: str) -> None:
        """Record the account holder's (normalised) ID number as a keyed hash."""
        digest = _id_hmac(self._keys.primary, normalized_id)
        with self.transaction() as c:
            if self.get_customer(customer_id) is None:
                raise StoreError(f"unknown customer id {customer_id!r}")
            c.execute(
                "INSERT INTO holder_ids VALUES (?, ?, ?, ?) ON CONFLICT(customer_id) DO UPDATE "
                "SET key_id = excluded.key_id, id_hmac = excluded.id_hmac, "
                "updated_at = excluded.updated_at",
                (customer_id, self._keys.primary_id, digest, iso(utc_now())),
            )
            self.audit(actor, "holder_id_set", customer_id, {"key_id": self._keys.primary_id})

    def holder_id_matches(self, customer_id: str, normalized_id: str) -> bool | None:
        """Whether the card's number is the account holder's; None when none is on file."""
        row = self._conn.execute(
            "SELECT key_id, id_hmac FROM holder_ids WHERE customer_id = ?", (customer_id,)
        ).fetchone()
        if row is None:
            return None
        key = next((k for k in (self._keys.primary, *self._keys.older) if key_id_of(k) == row[0]), None)
        if key is None:
            raise StoreError(f"the holder ID hash of {customer_id} needs the key with id {row[0]}")
        return hmac.compare_digest(_id_hmac(key, normalized_id), row[1])

    # -- key rotation (``branch-edge keys rotate``) -------------------------------------

    def rows_under_other_keys(self) -> dict[str, int]:
        """Per table, how many rows are sealed (or hashed) with a key other than the primary."""
        return {table: int(self._conn.execute(
            f"SELECT COUNT(*) FROM {table} WHERE key_id != ?", (self.key_id,)).fetchone()[0])
            for table in ("templates", "photos", "holder_ids")}

    def rows_sealed_outside(self, key_ids: tuple[str, ...]) -> int:
        """Templates and photos sealed by none of ``key_ids`` (they would not decrypt)."""
        marks = ",".join("?" * len(key_ids))
        return sum(int(self._conn.execute(
            f"SELECT COUNT(*) FROM {table} WHERE key_id NOT IN ({marks})", key_ids).fetchone()[0])
            for table in _SEALED_ROWS)

    def reencrypt_batch(self, table: str, limit: int) -> int:
        """Re-seal up to ``limit`` rows of ``table`` under the primary key in one short
        transaction; the rows not yet done still decrypt with the older keys in the ring."""
        if table not in _SEALED_ROWS:
            raise StoreError(f"{table} holds no encrypted rows")
        with self.transaction() as c:
            rows = c.execute(_SEALED_ROWS[table], (self.key_id, limit)).fetchall()
            for row_id, customer_id, pack, sha, blob in rows:
                aad = _sealed_aad(table, customer_id, pack, sha)
                plain = self._keys.decrypt(bytes(blob), aad, f"{table} row {row_id}")
                c.execute(
                    f"UPDATE {table} SET {_BLOB_COLUMN[table]} = ?, key_id = ? WHERE id = ?",
                    (self._keys.encrypt(plain, aad), self.key_id, row_id),
                )
        return len(rows)

    def key_check_id(self) -> str:
        """The id of the key that sealed the key-check blob (the key the store expects)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
        return blob_key_id_of(bytes(row[0]), f"database {self.path}")

    def reseal_key_check(self) -> None:
        """Seal the key check with the primary key: from now on the store expects that key."""
        aad = associated_data("meta", "", "key_check")
        with self.transaction() as c:
            blob = self._keys.encrypt(_KEY_CHECK_PLAINTEXT, aad)
            c.execute("UPDATE meta SET value = ? WHERE key = 'key_check'", (blob,))

    def erasures(self, customer_id: str) -> list[dict[str, Any]]:
        cur = self._conn.execute(
            "SELECT * FROM erasures WHERE customer_id = ? ORDER BY id", (customer_id,)
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


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


_SEALED_ROWS = {
    "templates": "SELECT id, customer_id, model_pack, source_sha256, embedding FROM templates "
                 "WHERE key_id != ? ORDER BY id LIMIT ?",
    "photos": "SELECT id, customer_id, '', sha256, ciphertext FROM photos "
              "WHERE key_id != ? ORDER BY id LIMIT ?",
}
_BLOB_COLUMN = {"templates": "embedding", "photos": "ciphertext"}


def _sealed_aad(table: str, customer_id: str, model_pack: str, sha: str) -> bytes:
    if table == "templates":
        return associated_data("templates", customer_id, _template_purpose(model_pack, sha))
    return associated_data("photos", customer_id, f"photo:{sha}")


def _id_hmac(store_key: bytes, normalized_id: str) -> str:
    hmac_key = hashlib.sha256(b"branch-edge holder-id hmac v1\x00" + store_key).digest()
    return hmac.new(hmac_key, normalized_id.encode("utf-8"), hashlib.sha256).hexdigest()


def _template_purpose(model_pack: str, source_sha256: str) -> str:
    return f"embedding:{model_pack}:{source_sha256}"


def _stack(vectors: list[np.ndarray], dim: int | None, model_pack: str) -> np.ndarray:
    if not vectors:
        return np.zeros((0, dim or 0), dtype=np.float32)
    sizes = {v.size for v in vectors}
    if len(sizes) != 1 or (dim is not None and sizes != {dim}):
        raise StoreError(
            f"templates of pack {model_pack!r} have sizes {sorted(sizes)}"
            + (f", expected {dim}" if dim is not None else "")
        )
    return np.stack(vectors).astype(np.float32, copy=False)


def _split_sql(script: str) -> list[str]:
    """Statements of a migration script; triggers keep their inner ``;``."""
    statements: list[str] = []
    buffer = ""
    for line in script.splitlines(keepends=True):
        buffer += line
        if sqlite3.complete_statement(buffer):
            statements.append(buffer.strip())
            buffer = ""
    if buffer.strip():
        raise StoreError("migration script ends with an incomplete statement")
    return statements


def open_configured(cfg: StoreConfig, db: Path | None = None, key_file: Path | None = None,
                    create: bool = True) -> Store:
    """The store at ``db`` (else ``cfg.path``) with the configured key (``key_file`` overrides)."""
    return Store.open(db or cfg.path, load_key_ring(cfg, key_file), create=create)
