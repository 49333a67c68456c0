"""branch-hq: head office's command line (gallery packages, erasures, collector, reports, bench).

Each sub-command reads ``--config hq.toml`` (see :mod:`hq.config`); errors an operator can act
on are one line and exit code 2.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import re
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from hq.config import HqConfig, load_hq_config
from hq.contract import pack_contract
from hq.enrol import embed_photos, enrol_templates, parse_templates
from hq.errors import HqError
from hq.keys import init_keys, load_data_key, load_signing_key
from hq.packages import build_package
from hq.registry import Registry
from hq.service import HqService, hq_client
from models.pack import ModelPackError
from mqtt.files import read_bounded
from mqtt.messages import CUSTOMER_ID_PATTERN
from mqtt.package import PackageError, load_public_key
from mqtt.topics import TopicError, check_id

USER_ERRORS: tuple[type[Exception], ...] = (HqError, ModelPackError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="branch-hq", description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, help="head office's TOML config (hq.toml)")
    parser.add_argument("--log-level", default="WARNING", help="DEBUG, INFO, WARNING (default), ERROR")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    keys = sub.add_parser("keys", help="create head office's signing key and data key")
    keys.add_argument("--public-out", type=Path, required=True,
                      help="where the signing key's public half (PEM) goes: every branch is given it")
    keys.set_defaults(func=cmd_keys)

    branch = sub.add_parser("branch", help="register a branch (its X25519 public key) and who it serves")
    branch.add_argument("branch_id", help="the branch id (as in its topics)")
    branch.add_argument("--key", type=Path, help="the branch's public key (branch-edge fleet keygen)")
    branch.add_argument("--serve", nargs="*", default=[], metavar="CUSTOMER",
                        help="customers whose templates this branch gets")
    branch.set_defaults(func=cmd_branch)

    enrol = sub.add_parser("enrol", help="enrol customers centrally (photos or a templates file)")
    src = enrol.add_mutually_exclusive_group(required=True)
    src.add_argument("--photos", type=Path, help="photos folder: runs `branch-edge fleet embed`")
    src.add_argument("--templates", type=Path, help="JSON from `branch-edge fleet embed`")
    enrol.add_argument("--customers", type=Path, help="customers CSV (with consent columns)")
    enrol.add_argument("--consent-channel", help="folders: the channel the consents were recorded on")
    enrol.add_argument("--program", default="branch-edge", help="the branch-edge program to run")
    enrol.add_argument("--branch", action="append", default=[], help="assign the enrolled to this branch")
    enrol.add_argument("--json", action="store_true", help="machine-readable output")
    enrol.set_defaults(func=cmd_enrol)

    package = sub.add_parser("package", help="build gallery packages (one file per branch and version)")
    package.add_argument("branches", nargs="*", help="branches (default: every registered branch)")
    package.add_argument("--json", action="store_true", help="machine-readable output")
    package.set_defaults(func=cmd_package)

    erase = sub.add_parser("erase", help="erase a customer here and at every branch")
    erase.add_argument("--customer", required=True, help="customer id")
    erase.add_argument("--reason", default="consent withdrawn", help="recorded and sent with the erasure")
    erase.add_argument("--json", action="store_true", help="machine-readable output")
    erase.set_defaults(func=cmd_erase)

    erasures = sub.add_parser("erasures", help="each erasure: which branches confirmed, when; stragglers")
    erasures.add_argument("--json", action="store_true", help="machine-readable output")
    erasures.set_defaults(func=cmd_erasures)

    run = sub.add_parser("run", help="connect to the central broker: send erasures and packages, take acks")
    run.add_argument("--seconds", type=float, help="stop after this many seconds")
    run.set_defaults(func=cmd_run)

    for module in ("hq.collector", "hq.report", "hq.bench"):  # psycopg and matplotlib load with them
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args, load_hq_config(args.config)) or 0)
    except USER_ERRORS as err:
        print(f"branch-hq {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _registry(cfg: HqConfig, with_key: bool = True) -> Registry:
    return Registry(cfg.hq.db, load_data_key(cfg.hq.data_key) if with_key else None)


def _print(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if getattr(args, "json", False) else text)


def cmd_keys(args: argparse.Namespace, cfg: HqConfig) -> int:
    init_keys(cfg.hq.signing_key, cfg.hq.data_key, args.public_out)
    print(f"wrote {cfg.hq.signing_key} and {cfg.hq.data_key} (0600, keep them here) and "
          f"{args.public_out} (give it to every branch: [fleet] hq_public_key)")
    return 0


def cmd_branch(args: argparse.Namespace, cfg: HqConfig) -> int:
    try:
        check_id(args.branch_id, "branch id")
    except TopicError as err:
        raise HqError(str(err)) from err
    with _registry(cfg, with_key=False) as registry:
        if args.key is not None:
            try:
                pem = read_bounded(args.key, 16 * 1024, "branch key")
                load_public_key(pem, X25519PublicKey, str(args.key))
            except (OSError, PackageError) as err:
                raise HqError(str(err)) from err
            registry.add_branch(args.branch_id, pem)
        if args.serve:
            registry.assign(args.branch_id, args.serve)
        print(f"branch {args.branch_id}: {len(registry.served(args.branch_id))} customers served")
    return 0


def cmd_enrol(args: argparse.Namespace, cfg: HqConfig) -> int:
    contract = pack_contract(cfg.hq.model_pack, cfg.hq.models_dir)
    if args.templates is not None:
        try:
            data = parse_templates(read_bounded(args.templates, 512 * 1024 * 1024, "templates"))
        except OSError as err:
            raise HqError(f"cannot read {args.templates}: {err}") from err
    else:
        data = embed_photos(args.photos, customers_csv=args.customers, consent_channel=args.consent_channel,
                            models_dir=cfg.hq.models_dir, program=args.program)
    with _registry(cfg) as registry:
        report = enrol_templates(registry, data, contract)
        for branch in args.branch:
            registry.assign(branch, report.enrolled)
    _print(args, report.to_dict(), f"{len(report.enrolled)} customers enrolled ({report.templates_added} "
           f"new templates), {len(report.refused)} refused"
           + "".join(f"\n  {cid}: {why}" for cid, why in report.refused.items()))
    return 0 if not report.refused else 1


def cmd_package(args: argparse.Namespace, cfg: HqConfig) -> int:
    contract = pack_contract(cfg.hq.model_pack, cfg.hq.models_dir)
    key = load_signing_key(cfg.hq.signing_key)
    built = []
    with _registry(cfg) as registry:
        for branch in args.branches or registry.branches():
            row = build_package(registry, branch, contract, key, cfg.hq.packages_dir)
            if row is not None:
                built.append({"branch_id": branch, "version": row.version, "path": str(row.path),
                              "sha256": row.sha256, "size": row.size})
    _print(args, built, "\n".join(f"{b['branch_id']}: version {b['version']} -> {b['path']}" for b in built)
           or "nothing new for any branch")
    return 0


def cmd_erase(args: argparse.Namespace, cfg: HqConfig) -> int:
    if not re.fullmatch(CUSTOMER_ID_PATTERN, args.customer):
        raise HqError(f"invalid customer id {args.customer!r}")
    with _registry(cfg, with_key=False) as registry:
        branches = registry.branches()
        erasure_id = registry.issue_erasure(args.customer, args.reason)
    _print(args, {"erasure_id": erasure_id, "customer_id": args.customer, "branches": len(branches)},
           f"erasure {erasure_id}: customer {args.customer} erased here; {len(branches)} branches to confirm "
           "(`branch-hq run` sends it; `branch-hq erasures` shows who confirmed)")
    return 0


def cmd_erasures(args: argparse.Namespace, cfg: HqConfig) -> int:
    with _registry(cfg, with_key=False) as registry:
        report = registry.erasure_report()
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for e in report:
        state = "complete" if e["complete"] else f"{len(e['stragglers'])} stragglers"
        print(f"{e['erasure_id']} customer {e['customer_id']} issued {e['issued_at']}: "
              f"{e['confirmed']}/{e['branches']} branches confirmed ({state})")
        for s in e["stragglers"]:
            print(f"  waiting: {s['branch_id']} (sent {s['sends']} times, last {s['last_sent_at']})"
                  + (f" error: {s['error']}" if s["error"] else ""))
    return 0


def cmd_run(args: argparse.Namespace, cfg: HqConfig) -> int:
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    client = hq_client(cfg.mqtt)
    client.start()
    timer = threading.Timer(args.seconds, stop.set) if args.seconds else None
    if timer is not None:
        timer.start()
    try:
        with _registry(cfg, with_key=False) as registry:
            HqService(registry, client, resend_s=cfg.hq.resend_s).run(stop)
    finally:
        if timer is not None:
            timer.cancel()
        client.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return 0


if __name__ == "__main__":
    sys.exit(main())
