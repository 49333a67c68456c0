"""``branch-edge keys generate``: a new encryption key for templates and photos."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.crypto import generate_key_file


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("keys", help="encryption keys for the store")
    ksub = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    generate = ksub.add_parser("generate", help="write a new random key file (mode 0600)")
    generate.add_argument("--out", type=Path, required=True, help="key file to create")
    generate.add_argument("--json", action="store_true", help="machine-readable output")
    generate.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    key_id = generate_key_file(args.out)
    if args.json:
        print(json.dumps({"key_file": str(args.out), "key_id": key_id}))
    else:
        print(f"wrote key {key_id} to {args.out} (mode 0600); keep a copy in the bank's key "
              "escrow: without it the templates and photos cannot be read")
    return 0
