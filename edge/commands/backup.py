"""``branch-edge backup``: a consistent, still-encrypted copy of the store (no key inside)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.config import load_config
from edge.store.backup import backup_store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("backup", help="online backup of the store (stays encrypted)")
    parser.add_argument("--db", type=Path, help="store database (default: store.path in config)")
    parser.add_argument("--out", type=Path, required=True, help="backup file to create")
    parser.add_argument("--config", type=Path, help="edge TOML config")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    db = args.db or load_config(args.config).store.path
    report = backup_store(Path(db), args.out)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(f"backed up {db} to {report.path}: {report.bytes} bytes, {report.templates} "
              f"templates, {report.photos} photos, {report.audit_entries} audit entries, "
              f"{report.seconds:.2f} s; still encrypted: restoring needs key {report.key_id}, "
              "which is not in the backup")
    return 0
