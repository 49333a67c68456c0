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

import logging
import os
import sqlite3
from pathlib import Path

from edge.config import StoreConfig
from edge.core.errors import StoreError
from edge.store.base import BUSY_TIMEOUT_MS
from edge.store.biometrics import Biometrics
from edge.store.crypto import KeyRing, load_key_ring
from edge.store.sealing import Sealing

log = logging.getLogger(__name__)

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
    # 3: audit entries sealed with a keyed MAC (edge.store.audit).  Older entries keep their
    # plain hash; once the key is checked, one MAC'd ``audit_keyed`` entry seals them.
    """
    ALTER TABLE audit ADD COLUMN key_id TEXT NOT NULL DEFAULT '';
    ALTER TABLE audit ADD COLUMN mac TEXT NOT NULL DEFAULT '';
    INSERT INTO meta VALUES ('audit_seal_pending', 1);
    """,
)


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


class Store(Biometrics, Sealing):
    """One connection to the store.  Use :meth:`open`; close it (or use ``with``).

    Its parts live beside this module: audit log (``audit``), customers and consent
    (``customers``), photos, templates and erasure (``biometrics``), key check and
    re-sealing (``sealing``), connection and transactions (``base``).
    """

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
            store._seal_after_migration()
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

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

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
