"""``branch-edge purge``: apply the retention policy now (the daemon also does it hourly)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.config import load_config
from edge.store.database import Store, open_configured
from edge.store.retention import RetentionJob, open_outbox


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("purge", help="delete expired live captures and audit entries past policy")
    parser.add_argument("--config", type=Path, help="edge TOML config (default: $BRANCH_EDGE_CONFIG)")
    parser.add_argument("--db", type=Path, help="store database (default: store.path in config)")
    parser.add_argument("--key-file", type=Path, help="key file (default: from config/env)")
    parser.add_argument("--dry-run", action="store_true", help="count what would go; delete nothing")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)

    def open_store() -> Store:
        return open_configured(cfg.store, args.db, args.key_file, create=False)

    outbox = open_outbox(cfg.mqtt.outbox_path)
    try:
        report = RetentionJob(cfg.retention, open_store, outbox).run_once(dry_run=args.dry_run)
    finally:
        if outbox is not None:
            outbox.close()
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 0
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {report.captures_removed} live captures (older than "
          f"{cfg.retention.live_captures_h:g} h or expired) and {report.audit_removed} audit entries "
          f"(older than {cfg.retention.audit_days} days); audit chain starts after entry "
          f"{report.audit_checkpoint_seq}")
    return 0
