"""Backup and restore of the branch store, without ever decrypting it.

``backup_store`` uses SQLite's online backup API: one consistent snapshot even
while the daemon reads and an enrolment writes.  The copy holds the same
ciphertexts as the store and **no key**: the key is backed up separately (key
escrow), so a stolen backup yields no face data.  ``restore_store`` refuses to
replace an existing database unless forced, and only moves the restored file
into place after it opened with the given key ring, every encrypted row's key
is in that ring, SQLite's integrity check passed and the audit chain verified.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from edge.core.errors import StoreError
from edge.store.audit import audit_chain_break
from edge.store.crypto import KeyRing, blob_key_id_of
from edge.store.database import Store


@dataclass(frozen=True)
class BackupReport:
    path: str
    bytes: int
    sha256: str
    templates: int
    photos: int
    audit_entries: int
    key_id: str  # the key a restore needs (it is not in the backup)
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def backup_store(db: Path, out: Path) -> BackupReport:
    """Snapshot ``db`` into the new file ``out`` (mode 0600, one self-contained file)."""
    started = time.monotonic()
    if not db.is_file():
        raise StoreError(f"database {db} does not exist")
    if out.exists():
        raise StoreError(f"{out} already exists; refusing to overwrite a backup")
    partial = out.with_name(out.name + ".partial")
    _fresh_private_file(partial)
    try:
        _copy_database(db, partial)
        counts = _check_copy(partial, f"backup of {db}")
        os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupReport(str(out), out.stat().st_size, _sha256(out), counts["templates"],
                        counts["photos"], counts["audit"], counts["key_id"],
                        round(time.monotonic() - started, 3))


@dataclass(frozen=True)
class RestoreReport:
    path: str
    backup_sha256: str
    templates: int
    photos: int
    audit_entries: int
    key_id: str
    replaced_existing: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def restore_store(backup: Path, db: Path, keys: KeyRing, actor: str,
                  force: bool = False) -> RestoreReport:
    """Put ``backup`` in place as ``db`` once it has proven usable with ``keys``."""
    if not backup.is_file():
        raise StoreError(f"backup {backup} does not exist")
    existed = db.exists()
    if existed and not force:
        raise StoreError(f"database {db} exists; refusing to overwrite it without --force "
                         "(stop the daemon first)")
    staging = db.with_name(f".{db.name}.restoring")
    _fresh_private_file(staging)
    try:
        _copy_database(backup, staging)
        counts = _check_copy(staging, f"backup {backup}")
        _check_opens(staging, keys, actor, backup)
        for suffix in ("-wal", "-shm"):  # a stale WAL would be replayed onto the restored file
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        os.replace(staging, db)
    finally:
        for leftover in (staging, Path(f"{staging}-wal"), Path(f"{staging}-shm")):
            leftover.unlink(missing_ok=True)
    return RestoreReport(str(db), _sha256(backup), counts["templates"], counts["photos"],
                         counts["audit"] + 1, counts["key_id"], existed)


def _check_opens(path: Path, keys: KeyRing, actor: str, backup: Path) -> None:
    with Store.open(path, keys, create=False) as store:
        foreign = store.rows_sealed_outside(keys.key_ids)
        if foreign:
            raise StoreError(f"backup {backup}: {foreign} encrypted rows need a key that was "
                             "not given (a backup taken during a key rotation needs both keys)")
        broken = store.verify_audit()  # with the key: the MACs too, not only the hashes
        if broken is not None:
            raise StoreError(f"backup {backup}: audit log broken at entry {broken} (its MAC or chain)")
        store.audit(actor, "store_restored", "store", {"backup_sha256": _sha256(backup)})
        store.scrub()


def _copy_database(source: Path, target: Path) -> None:
    try:
        src = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
        dst = sqlite3.connect(str(target))
        try:
            src.backup(dst)  # all pages in one step: one consistent snapshot
            dst.execute("PRAGMA journal_mode = DELETE")  # one self-contained file
        finally:
            dst.close()
            src.close()
    except sqlite3.Error as err:
        raise StoreError(f"cannot copy {source}: {err}") from err


def _check_copy(path: Path, what: str) -> dict[str, Any]:
    """Integrity, audit chain and counts of a copied store, read without any key (the audit
    MACs need the key: a restore checks them in ``_check_opens``)."""
    conn = sqlite3.connect(str(path))
    try:
        if conn.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise StoreError(f"{what}: SQLite integrity check failed")
        broken = audit_chain_break(conn)
        if broken is not None:
            raise StoreError(f"{what}: audit log broken at entry {broken.seq}: {broken.reason}")
        row = conn.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
        if row is None:
            raise StoreError(f"{what}: not a Branch Edge store (no key check)")
        return {"templates": _count(conn, "templates"), "photos": _count(conn, "photos"),
                "audit": _count(conn, "audit"), "key_id": blob_key_id_of(bytes(row[0]), what)}
    except sqlite3.DatabaseError as err:
        raise StoreError(f"{what}: not a usable Branch Edge database: {err}") from err
    finally:
        conn.close()


def _count(conn: sqlite3.Connection, table: str) -> int:
    return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])


def _fresh_private_file(path: Path) -> None:
    path.unlink(missing_ok=True)  # a leftover of an interrupted run
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError as err:
        raise StoreError(f"cannot create {path}: {err.strerror}") from err


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as data:
        for chunk in iter(lambda: data.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
