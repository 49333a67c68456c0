"""``branch-edge restore``: put a backup in place once it opens with the key and verifies."""

from __future__ import annotations

import argparse
import getpass
import json
from pathlib import Path

from edge.config import load_config
from edge.store.backup import restore_store
from edge.store.crypto import load_key_ring


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("restore", help="restore the store from a backup (verified first)")
    parser.add_argument("--backup", type=Path, required=True, help="file made by branch-edge backup")
    parser.add_argument("--db", type=Path, help="store database (default: store.path in config)")
    parser.add_argument("--key-file", type=Path, help="key file (default: from config/env)")
    parser.add_argument("--config", type=Path, help="edge TOML config")
    parser.add_argument("--force", action="store_true", help="replace an existing database")
    parser.add_argument("--actor", help="who restores (default: cli:<login name>)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    db = Path(args.db or cfg.store.path)
    actor = args.actor or f"cli:{getpass.getuser()}"
    report = restore_store(args.backup, db, load_key_ring(cfg.store, args.key_file), actor,
                           force=args.force)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"restored {report.path} from {args.backup}: {report.templates} templates, "
              f"{report.photos} photos, key {report.key_id} checked, audit chain verified "
              f"({report.audit_entries} entries, the last one records this restore)")
    return 0
