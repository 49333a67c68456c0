"""``branch-edge enrol``: enrol customers' photos into the store.

Exit codes: 0 every photo enrolled (or already enrolled); 1 the run completed
but some photos or customers were rejected (see the report); 2 the run could
not start (bad arguments, CSV, key, database or model pack).
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import sqlite3
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

from edge.config import load_config
from edge.core.errors import StoreError
from edge.core.safe_output import console_text
from edge.crm.records import CrmStore
from edge.enrol.enrolment import REASONS, EnrolReport, enrol_folder
from edge.store.base import parse_time
from edge.store.database import open_configured
from edge.vision.engine import FaceEngine


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("enrol", help="enrol customers' photos (needs recorded consent)")
    parser.add_argument("--db", type=Path, help="store database (default: store.path in config)")
    parser.add_argument("--photos", type=Path, required=True,
                        help="folder: one sub-folder per customer id, or photos named by --customers")
    parser.add_argument("--customers", type=Path, help="CSV mapping photos to customers")
    parser.add_argument("--encoding", help="encoding of the --customers CSV (default: UTF-8 with or "
                        "without BOM, else GB18030)")
    parser.add_argument("--review", choices=("off", "standard", "strict"),
                        help="cross-photo review (default: enrol.review in config)")
    parser.add_argument("--consent-channel",
                        help="folder mode: consent was given through this channel (e.g. paper-form)")
    parser.add_argument("--consent-time", type=_time_arg,
                        help="folder mode: when consent was given, ISO 8601 (default: now)")
    parser.add_argument("--allow-unnamed", action="store_true",
                        help="enrol customers that have no display name in the CSV, the store or the "
                             "CRM (the tablet then shows their id, marked 'name missing')")
    parser.add_argument("--actor", help="who enrols, for the audit log (default: cli:<login>)")
    parser.add_argument("--key-file", type=Path, help="key file (default: from config/env)")
    parser.add_argument("--models", type=Path, help="folder with the ONNX files")
    parser.add_argument("--config", type=Path, help="edge TOML config")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def _time_arg(text: str) -> datetime:
    try:
        return parse_time(text)
    except StoreError as err:
        raise argparse.ArgumentTypeError(str(err)) from err


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    engine = FaceEngine.from_config(cfg, models_dir=args.models)
    crm_path = Path(cfg.crm.path or args.db or cfg.store.path)
    with open_configured(cfg.store, args.db, args.key_file) as store, crm_names(crm_path) as names:
        report = enrol_folder(
            store, engine, cfg, args.photos, customers_csv=args.customers, review=args.review,
            progress=False if args.no_progress or args.json else None,
            consent_channel=args.consent_channel, consent_time=args.consent_time,
            actor=args.actor or f"cli:{getpass.getuser()}", csv_encoding=args.encoding,
            crm_names=names, allow_unnamed=args.allow_unnamed)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_report(report))
    return 0 if report.all_accepted else 1


@contextlib.contextmanager
def crm_names(path: Path) -> Iterator[Callable[[str], str | None] | None]:
    """Customer id -> the CRM's name, when the CRM tables were imported at ``path``."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
            imported = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' "
                                    "AND name = 'crm_customers'").fetchone() is not None
    except sqlite3.Error:
        imported = False
    if not imported:
        yield None
        return
    with CrmStore.open(path, create=False) as crm:
        def name(customer_id: str) -> str | None:
            customer = crm.customer(customer_id)
            return customer.name if customer is not None else None

        yield name


def format_report(report: EnrolReport) -> str:
    data = report.to_dict()
    lines = [f"model pack {report.model_pack}, review {report.review}",
             f"{'customer':<28} {'accepted':>8} {'already':>8} {'rejected':>8}  note"]
    for row in data["customers"]:
        lines.append(f"{row['customer_id']:<28} {row['accepted']:>8} {row['already_enrolled']:>8} "
                     f"{row['rejected']:>8}  {row['refused'] or ''}")
    for cid, reason in report.refused.items():
        lines.append(f"refused {cid}: {reason}: {REASONS[reason]}")
    rejected = [r for r in report.results
                if r.status == "rejected" and r.customer_id not in report.refused]
    if rejected:
        lines.append("rejected photos:")
        lines += [f"  {r.reason:<27} {r.message}" for r in rejected]
    if data["reasons"]:
        lines.append("reasons: " + ", ".join(f"{k} {v}" for k, v in data["reasons"].items()))
    totals = data["totals"]
    lines.append(f"total: {totals['photos']} photos, {totals['accepted']} accepted, "
                 f"{totals['already_enrolled']} already enrolled, {totals['rejected']} rejected "
                 f"in {report.seconds:.1f} s")
    noted = [r for r in report.results if r.notes]
    if noted:
        lines.append("notes:")
        lines += [f"  {r.photo}: {note}" for r in noted for note in r.notes]
    if report.ignored:
        lines.append(f"ignored (not in a customer folder): {', '.join(report.ignored)}")
    # Names and messages come from outside (folder and file names): no control or bidi
    # characters reach the terminal.
    return "\n".join(console_text(line) for line in lines)
