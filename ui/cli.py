"""branch-pad: the PAD app (relationship manager's tablet, teller and supervisor terminals).

``branch-pad [--config pad.toml] [--console] [--language en]`` runs the app;
``branch-pad --demo [rm|teller|supervisor]`` shows it with fictional data and nothing else
installed or provisioned (``ui.demo``); tools that run
beside it are sub-commands, one module each in ``ui/commands/<name>.py`` with a
``register(subparsers)`` function, listed in ``COMMANDS``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import sys
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

from edge.core.errors import ConfigError
from mqtt.client import MqttError

# Sub-command modules under ui/commands/.
COMMANDS: tuple[str, ...] = ("idcard", "screenshots")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="branch-pad", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default), ERROR")
    parser.add_argument("--config", type=Path,
                        help="the PAD's config file (default: pad.toml); with --demo, optional and "
                             "its [mqtt] is not needed")
    parser.add_argument("--demo", nargs="?", const="", choices=("", "rm", "teller", "supervisor"),
                        metavar="ROLE", help="look at the app: an embedded broker and a stand-in edge "
                                             "replaying fictional arrivals and authorization requests "
                                             "(role: rm, teller or supervisor; default rm or the "
                                             "config's); stays open until closed")
    parser.add_argument("--console", action="store_true",
                        help="print arrivals on the terminal instead of opening a window")
    parser.add_argument("--language", choices=("zh-CN", "en"), help="override the config's language")
    parser.add_argument("--screenshots", type=Path, metavar="DIR",
                        help="save the customer card of every arrival as a PNG in DIR (rm role)")
    parser.add_argument("--exit-after", type=int, metavar="N",
                        help="exit after N arrivals (console or --screenshots)")
    parser.add_argument("--seconds", type=float, metavar="S", help="console: exit after S seconds")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"ui.commands.{name}").register(sub)
    return parser


NO_CONFIG = ("no pad.toml in this folder: give --config FILE (a provisioned device's, see "
             "docs/operations/pad.md); to look at the app without a broker: branch-pad --demo")


def run_app(args: argparse.Namespace) -> int:
    # Imported here so that `branch-pad --help` and the sub-commands start without Qt.
    from ui.state.config import load_pad_config  # noqa: PLC0415
    from ui.state.i18n import Texts  # noqa: PLC0415

    if args.exit_after is not None and args.exit_after < 1:
        raise ConfigError("--exit-after must be at least 1")
    if args.demo is not None:
        return run_demo(args)
    if args.config is None and not Path("pad.toml").exists():
        raise ConfigError(NO_CONFIG)
    config = load_pad_config(args.config or Path("pad.toml"))
    language = args.language or config.language
    if args.console:
        from ui.console import run_console  # noqa: PLC0415

        return run_console(config, Texts(language), sys.stdout, args.exit_after, args.seconds)
    from ui.app import run_gui  # noqa: PLC0415

    return run_gui(config, language, args.screenshots, args.exit_after)


def _exit_cleanly(*_: object) -> None:
    raise SystemExit(0)


def run_demo(args: argparse.Namespace) -> int:
    """The window (never the console) on the demo branch; see ``ui.demo``."""
    from ui.app import PadApp, run_gui  # noqa: PLC0415
    from ui.demo import DemoBranch  # noqa: PLC0415
    from ui.state.config import read_pad_tables  # noqa: PLC0415

    if args.console:
        raise ConfigError("--demo opens the window; --console needs a broker (--config)")
    base = read_pad_tables(args.config) if args.config is not None else {}
    role = args.demo or str(base.get("role", "rm"))
    if role not in ("rm", "teller", "supervisor"):
        raise ConfigError(f"{args.config}: role must be rm, teller or supervisor, got {role!r}")
    # The broker and the stand-in edge start before the window's loop: a stop in between is a
    # clean exit too (the window installs its own handlers once it runs).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _exit_cleanly)
    with DemoBranch(role, base) as demo:  # type: ignore[arg-type]  # checked just above
        def started(pad: PadApp) -> None:
            demo.start(lambda: pad.link.connected)

        return run_gui(demo.config, args.language or demo.config.language, args.screenshots,
                       args.exit_after, started=started)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.version:
        print(f"branch-pad {version('branch-edge')}")
        return 0
    func = getattr(args, "func", run_app)
    try:
        return int(func(args) or 0)
    except (ConfigError, MqttError) as err:
        print(f"branch-pad: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
