"""branch-edge: the edge daemon's command line.

Each sub-command lives in ``edge/commands/<name>.py`` with a ``register``
function; this module only assembles them and turns our own errors into one
clear line and a non-zero exit code.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from importlib import metadata

from edge.errors import USER_ERRORS

# Sub-command modules, in the order `--help` lists them.
COMMANDS = (
    "models",
    "quality",
    "enrol",
    "erase",
    "purge",
    "keys",
    "audit",
    "backup",
    "restore",
    "evaluate",
    "calibrate",
    "bench",
    "demo",
    "provision",
    "mqtt",
    "auth",
    "synth",
    "run",
    "doctor",
    "crm",
    "evaluate_recommender",
    "report",
    "soak",
    "fleet",
)


def package_version() -> str:
    """The installed package's version (``0+unknown`` when run from an uninstalled tree)."""
    try:
        return metadata.version("branch-edge")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="branch-edge", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"branch-edge {package_version()}",
                        help="print the version and exit")
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default), ERROR")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"edge.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args) or 0)
    except USER_ERRORS as err:
        print(f"branch-edge {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
