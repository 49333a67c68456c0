"""``branch-edge erase``: remove a customer's templates and photos, and record it."""

from __future__ import annotations

import argparse
import getpass
import json
from pathlib import Path

from edge.config import EdgeConfig, load_config
from edge.store.database import open_configured
from edge.store.retention import forget_customer, known_outboxes, open_outbox


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("erase", help="erase a customer's face data (consent withdrawn)")
    parser.add_argument("--db", type=Path, help="store database (default: store.path in config)")
    parser.add_argument("--customer", required=True, help="customer id")
    parser.add_argument("--reason", default="customer request", help="recorded with the erasure")
    parser.add_argument("--actor", help="who asks (default: cli:<login name>)")
    parser.add_argument("--key-file", type=Path, help="key file (default: from config/env)")
    parser.add_argument("--config", type=Path, help="edge TOML config")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    actor = args.actor or f"cli:{getpass.getuser()}"
    with open_configured(cfg.store, args.db, args.key_file, create=False) as store:
        erasure = store.erase_customer(args.customer, actor, args.reason)
        outboxes = outboxes_of(cfg, known_outboxes(store))
    arrivals_dropped = forget_waiting_arrivals(outboxes, args.customer)
    if args.json:
        print(json.dumps(erasure.to_dict() | {"waiting_arrivals_removed": arrivals_dropped}, indent=2))
    else:
        print(f"erased customer {erasure.customer_id}: {erasure.templates_removed} templates, "
              f"{erasure.photos_removed} photos removed; consent withdrawn "
              f"({erasure.consents_withdrawn}); {arrivals_dropped} waiting arrivals removed; "
              f"recorded at {erasure.erased_at} by {actor}")
        if not erasure.scrubbed:
            print("warning: another process holds the database open; deleted pages leave "
                  "the WAL file at its next checkpoint")
    return 0


def outboxes_of(cfg: EdgeConfig, recorded: list[Path]) -> list[Path]:
    """Every outbox that may hold the customer's arrivals: those the daemons of this store
    recorded in it (whatever flags this command got) and the configured one."""
    paths = [*recorded, Path(cfg.mqtt.outbox_path)]
    unique = {str(p.expanduser().resolve()) if str(p) != ":memory:" else str(p): p for p in paths}
    return list(unique.values())


def forget_waiting_arrivals(outboxes: list[Path], customer_id: str) -> int:
    """Arrivals (with the live thumbnail) still in a daemon's outbox go too.  The daemon
    drops such arrivals itself as well, before it sends anything (edge.lobby.daemon)."""
    removed = 0
    for path in outboxes:
        outbox = open_outbox(path)
        if outbox is None:
            continue
        try:
            removed += forget_customer(outbox, customer_id)
        finally:
            outbox.close()
    return removed
