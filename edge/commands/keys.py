"""``branch-edge keys``: generate a store encryption key; rotate the store to a new key."""

from __future__ import annotations

import argparse
import getpass
import json
from pathlib import Path

from edge.commands.argtypes import bounded_int
from edge.config import load_config
from edge.core.errors import StoreError
from edge.store.crypto import KeyRing, generate_key_file, load_key_ring, read_key_file
from edge.store.database import Store
from edge.store.rotation import DEFAULT_BATCH, RotationReport, rotate_store


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("keys", help="encryption keys for the store")
    ksub = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    generate = ksub.add_parser("generate", help="write a new random key file (mode 0600)")
    generate.add_argument("--out", type=Path, required=True, help="key file to create")
    generate.add_argument("--json", action="store_true", help="machine-readable output")
    generate.set_defaults(func=run_generate)
    _register_rotate(ksub)


def _register_rotate(ksub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rotate = ksub.add_parser("rotate", help="re-encrypt templates and photos under a new key, online")
    rotate.add_argument("--new-key", type=Path, required=True, help="the new key file (0600)")
    rotate.add_argument("--old-key", type=Path, action="append", default=[],
                        help="the current key file; repeatable (default: the configured keys)")
    rotate.add_argument("--db", type=Path, help="store database (default: store.path in config)")
    rotate.add_argument("--config", type=Path, help="edge TOML config")
    rotate.add_argument("--batch", type=bounded_int(1, 10_000), default=DEFAULT_BATCH,
                        help=f"rows per transaction (default {DEFAULT_BATCH})")
    rotate.add_argument("--actor", help="who rotates (default: cli:<login name>)")
    rotate.add_argument("--json", action="store_true", help="machine-readable output")
    rotate.set_defaults(func=run_rotate)


def run_generate(args: argparse.Namespace) -> int:
    key_id = generate_key_file(args.out)
    if args.json:
        print(json.dumps({"key_file": str(args.out), "key_id": key_id}))
    else:
        print(f"wrote key {key_id} to {args.out} (mode 0600); keep a copy in the bank's key "
              "escrow: without it the templates and photos cannot be read")
    return 0


def rotation_ring(new_key: Path, old_keys: list[Path], configured: KeyRing | None) -> KeyRing:
    """The new key encrypts; the old keys (given, else configured) only decrypt."""
    primary = read_key_file(new_key)
    older = [read_key_file(p) for p in old_keys]
    if not older and configured is not None:
        older = [configured.primary, *configured.older]
    return KeyRing(primary, tuple(dict.fromkeys(k for k in older if k != primary)))


def run_rotate(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    configured = None
    if not args.old_key:
        try:
            configured = load_key_ring(cfg.store)
        except StoreError:
            configured = None  # no key configured: the store's own key check will say which
    ring = rotation_ring(args.new_key, args.old_key, configured)
    actor = args.actor or f"cli:{getpass.getuser()}"
    with Store.open(args.db or cfg.store.path, ring, create=False) as store:
        report = rotate_store(store, actor, args.batch)
    _print_report(report, args.json)
    return 0


def _print_report(report: RotationReport, as_json: bool) -> None:
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    print(f"rotated the store from key {report.previous_key_id} to {report.new_key_id}: "
          f"{report.templates_reencrypted} templates and {report.photos_reencrypted} photos "
          f"re-encrypted in {report.batches} batches, {report.seconds:.2f} s")
    if report.holder_ids_need_old_key:
        print(f"note: {report.holder_ids_need_old_key} holder ID hashes can only be checked "
              "with an old key: keep it in store.old_key_files until they are re-recorded "
              "(branch-edge auth set-holder-id)")
