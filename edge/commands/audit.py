"""``branch-edge audit``: verify the audit log's chain and MACs; print its head for safekeeping."""

from __future__ import annotations

import argparse
import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from edge.config import load_config
from edge.core.errors import StoreError
from edge.store.audit import KEYED_SCHEMA_VERSION, audit_head, check_audit, head_mismatch
from edge.store.crypto import KeyRing, blob_key_id_of, load_key_ring, read_key_file

MAX_HEAD_BYTES = 4096


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("audit", help="the store's append-only audit log")
    asub = parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = asub.add_parser("verify", help="check the hash chain and its MACs; exit 1 when tampered")
    _store_options(verify)
    verify.add_argument("--expect-head", metavar="FILE_OR_JSON",
                        help="a head recorded earlier (`audit head`): fail unless the log still "
                             "contains it (finds a truncated or rolled-back log)")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.set_defaults(func=run_verify)
    head = asub.add_parser("head", help="print the newest entry (seq, hash, MAC) as JSON, for "
                                        "head office to keep; refuses a log that does not verify")
    _store_options(head)
    head.add_argument("--out", type=Path, help="also write the head to this file")
    head.set_defaults(func=run_head)


def _store_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, help="store database (default: store.path in config)")
    parser.add_argument("--config", type=Path, help="edge TOML config")
    parser.add_argument("--key-file", type=Path, help="store key file (default: from config/env); "
                                                      "the MACs are keyed with it")
    parser.add_argument("--old-key-file", type=Path, action="append", default=[],
                        help="a key the store had before a rotation; repeatable (default: "
                             "store.old_key_files)")


def key_ring(args: argparse.Namespace) -> tuple[Path, KeyRing]:
    cfg = load_config(args.config)
    ring = load_key_ring(cfg.store, args.key_file)
    extra = tuple(read_key_file(p) for p in args.old_key_file)
    older = tuple(dict.fromkeys(k for k in (*ring.older, *extra) if k != ring.primary))
    return Path(args.db or cfg.store.path), KeyRing(ring.primary, older)


@contextmanager
def read_only(db: Path) -> Iterator[sqlite3.Connection]:
    if not db.is_file():
        raise StoreError(f"database {db} does not exist")
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.DatabaseError as err:
        raise StoreError(f"{db}: not a usable Branch Edge database: {err}") from err
    try:
        yield conn
    except sqlite3.DatabaseError as err:
        raise StoreError(f"{db}: not a usable Branch Edge database: {err}") from err
    finally:
        conn.close()


def expected_key(conn: sqlite3.Connection, db: Path, keys: KeyRing) -> None:
    """A wrong key is a usage error, not a tampered log."""
    row = conn.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
    if row is None:
        raise StoreError(f"{db}: not a Branch Edge store (no key check)")
    wanted = blob_key_id_of(bytes(row[0]), f"database {db}")
    if wanted not in keys.key_ids:
        raise StoreError(f"database {db} expects the key with id {wanted}; the loaded key has id "
                         f"{keys.primary_id}")


def keyed_schema(version: int) -> bool:
    return version >= KEYED_SCHEMA_VERSION


def verify_file(db: Path, keys: KeyRing, expect_head: dict[str, Any] | None = None) -> dict[str, Any]:
    with read_only(db) as conn:
        expected_key(conn, db, keys)
        conn_version = int(conn.execute("PRAGMA user_version").fetchone()[0])
        check = check_audit(conn, keys)
        head = audit_head(conn)
        missing = head_mismatch(conn, expect_head) if expect_head is not None else None
    broken = check.broken
    first_broken = broken.seq if broken else (int(expect_head["seq"]) if missing and expect_head else None)
    return {"db": str(db), "intact": broken is None and missing is None, "entries": check.entries,
            "head_seq": head.seq if head else 0, "head_hash": head.hash if head else None,
            "head_mac": head.mac if head else None, "macs_verified": check.macs_verified,
            "macs_covered_by_later_entries": check.macs_unchecked, "unkeyed_entries": check.unkeyed,
            "keyed": keyed_schema(conn_version),
            "expected_head_found": None if expect_head is None else missing is None,
            "first_broken_seq": first_broken,
            "reason": broken.reason if broken else missing}


def read_head(text: str) -> dict[str, Any]:
    """A head as JSON text, or the file that holds it."""
    raw = text
    if not text.lstrip().startswith("{"):
        path = Path(text)
        try:
            with path.open("rb") as handle:
                data = handle.read(MAX_HEAD_BYTES + 1)
        except OSError as err:
            raise StoreError(f"cannot read the recorded head {path}: {err.strerror}") from err
        if len(data) > MAX_HEAD_BYTES:
            raise StoreError(f"{path} is larger than a recorded head ({MAX_HEAD_BYTES} bytes)")
        raw = data.decode("utf-8", "replace")
    try:
        head = json.loads(raw)
    except json.JSONDecodeError as err:
        raise StoreError(f"the recorded head is not JSON: {err.msg}") from err
    valid = isinstance(head, dict) and isinstance(head.get("seq"), int) and isinstance(head.get("hash"), str)
    if not valid:
        raise StoreError('the recorded head must be a JSON object with "seq", "hash" and "mac"')
    return dict(head)


def run_verify(args: argparse.Namespace) -> int:
    db, keys = key_ring(args)
    expected = read_head(args.expect_head) if args.expect_head else None
    result = verify_file(db, keys, expected)
    if args.json:
        print(json.dumps(result, indent=2))
    elif result["intact"]:
        print(f"audit log of {result['db']} intact: {result['entries']} entries, head "
              f"{result['head_seq']} {result['head_hash']}"
              + (f"; contains the recorded head {expected['seq']}" if expected else ""))
        if not result["keyed"]:
            print("note: this file predates keyed MACs (schema version < "
                  f"{KEYED_SCHEMA_VERSION}): only its hashes were checked; opening it with the key "
                  "migrates and seals it")
    else:
        print(f"audit log of {result['db']} TAMPERED: first broken entry "
              f"{result['first_broken_seq']} ({result['reason']})")
    return 0 if result["intact"] else 1


def run_head(args: argparse.Namespace) -> int:
    db, keys = key_ring(args)
    with read_only(db) as conn:
        expected_key(conn, db, keys)
        broken = check_audit(conn, keys).broken
        head = audit_head(conn)
    if broken is not None:
        raise StoreError(f"{db}: audit log broken at entry {broken.seq} ({broken.reason}); "
                         "no head exported")
    if head is None:
        raise StoreError(f"{db}: the audit log is empty; there is no head to record")
    text = json.dumps(head.to_dict())
    if args.out is not None:
        partial = args.out.with_name(args.out.name + ".partial")
        partial.write_text(text + "\n", encoding="utf-8")
        partial.replace(args.out)
    print(text)
    return 0
