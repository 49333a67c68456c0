"""``branch-edge audit verify``: walk the audit log's hash chain (no key needed)."""

from __future__ import annotations

import argparse
import json
import sqlite3
from pathlib import Path
from typing import Any

from edge.config import load_config
from edge.core.errors import StoreError
from edge.store.audit import audit_chain_break


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("audit", help="the store's append-only audit log")
    asub = parser.add_subparsers(dest="audit_command", required=True, metavar="ACTION")
    verify = asub.add_parser("verify", help="check the hash chain; exit 1 when tampered")
    verify.add_argument("--db", type=Path, help="store database (default: store.path in config)")
    verify.add_argument("--config", type=Path, help="edge TOML config")
    verify.add_argument("--json", action="store_true", help="machine-readable output")
    verify.set_defaults(func=run_verify)


def verify_file(db: Path) -> dict[str, Any]:
    if not db.is_file():
        raise StoreError(f"database {db} does not exist")
    try:
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            broken = audit_chain_break(conn)
            head = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
            entries = int(conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.DatabaseError as err:
        raise StoreError(f"{db}: not a usable Branch Edge database: {err}") from err
    return {"db": str(db), "intact": broken is None, "entries": entries,
            "head_seq": head[0] if head else 0, "head_hash": head[1] if head else None,
            "first_broken_seq": broken.seq if broken else None,
            "reason": broken.reason if broken else None}


def run_verify(args: argparse.Namespace) -> int:
    result = verify_file(Path(args.db or load_config(args.config).store.path))
    if args.json:
        print(json.dumps(result, indent=2))
    elif result["intact"]:
        print(f"audit log of {result['db']} intact: {result['entries']} entries, head "
              f"{result['head_seq']} {result['head_hash']}")
    else:
        print(f"audit log of {result['db']} TAMPERED: first broken entry "
              f"{result['first_broken_seq']} ({result['reason']})")
    return 0 if result["intact"] else 1
