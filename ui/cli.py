"""branch-pad: the PAD app (relationship manager's tablet, teller and supervisor terminals).

``branch-pad [--config pad.toml] [--console]`` runs the app; tools that run
beside it are sub-commands, one module each in ``ui/commands/<name>.py`` with a
``register(subparsers)`` function, listed in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import version

# Sub-command modules under ui/commands/.
COMMANDS: tuple[str, ...] = ()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="branch-pad", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default), ERROR")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"ui.commands.{name}").register(sub)
    return parser


def run_app(args: argparse.Namespace) -> int:
    del args
    print("branch-pad: the PAD app is not part of this release yet; see README 'Roadmap'.",
          file=sys.stderr)
    return 2


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.version:
        print(f"branch-pad {version('branch-edge')}")
        return 0
    func = getattr(args, "func", run_app)
    return int(func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
