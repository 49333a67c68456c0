"""``branch-edge crm``: import CRM exports and the product catalogue, generate the
demo CRM, and show a customer's portrait."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from datetime import date
from pathlib import Path
from typing import Any, TextIO

from edge.core.safe_output import console_text

KIND_OPTIONS = ("products", "customers", "holdings", "transactions", "interactions")


def add_db_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="edge TOML config (default: built-in)")
    parser.add_argument("--db", type=Path, help="CRM database (default: [crm] path, else [store] path)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def crm_db(args: argparse.Namespace) -> Path:
    from edge.config import load_config

    cfg = load_config(args.config)
    return Path(args.db or cfg.crm.path or cfg.store.path)


def parse_day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from err


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("crm", help="import CRM data and the product catalogue; show portraits")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = actions.add_parser("import", help="import CSV or JSON files (validated row by row)")
    for kind in KIND_OPTIONS:
        imp.add_argument(f"--{kind}", type=Path, metavar="FILE", help=f"{kind} file (.csv or .json)")
    imp.add_argument("--dir", type=Path, help="folder with <kind>.csv or <kind>.json files")
    imp.add_argument("--encoding", help="encoding of the files (default: UTF-8 with or without BOM, "
                     "else GB18030, what Excel saves in China)")
    add_db_arguments(imp)
    imp.set_defaults(func=run_import)
    demo = actions.add_parser("demo", help="generate the fictional demo CRM and import it")
    demo.add_argument("--out", type=Path, default=Path("demo-output/crm"), help="where the CSVs go")
    demo.add_argument("--today", type=parse_day, help="date the life events are set around (default today)")
    demo.add_argument("--extra", type=int, default=380, help="fictional customers besides the demo's 20")
    add_db_arguments(demo)
    demo.set_defaults(func=run_demo)
    show = actions.add_parser("show", help="print a customer's portrait, recommendations, talking points")
    show.add_argument("customer_id", help="the customer's CRM id")
    show.add_argument("--today", type=parse_day, help="portrait as of this day (YYYY-MM-DD; default today)")
    add_db_arguments(show)
    show.set_defaults(func=run_show)


def files_from(args: argparse.Namespace) -> dict[str, Path]:
    files = {k: getattr(args, k) for k in KIND_OPTIONS if getattr(args, k)}
    if args.dir:
        for kind in KIND_OPTIONS:
            for suffix in (".csv", ".json"):
                candidate = args.dir / f"{kind}{suffix}"
                if kind not in files and candidate.is_file():
                    files[kind] = candidate
    return files


def print_reports(reports: list[Any], as_json: bool) -> int:
    rejected = sum(len(r.rejected) for r in reports)
    if as_json:
        print(json.dumps([r.to_dict() for r in reports], ensure_ascii=False, indent=2))
        return 1 if rejected else 0
    for r in reports:  # file names and cell values come from outside: escaped for the terminal
        print(console_text(f"{r.kind:<13} {r.source}: {r.rows} rows, {r.inserted} new, "
                           f"{r.updated} updated, {r.unchanged} unchanged, {len(r.rejected)} rejected"))
        for rejection in r.rejected:
            print(console_text(f"  {rejection.where}: {'; '.join(rejection.reasons)}"))
    return 1 if rejected else 0


def run_import(args: argparse.Namespace) -> int:
    from edge.crm.importer import apply_files, read_files
    from edge.crm.records import CrmError, CrmStore

    files = files_from(args)
    if not files:
        raise CrmError("nothing to import: give --customers, --holdings, ... or --dir")
    rows = read_files(files, args.encoding)  # a file that cannot be read creates no database
    with CrmStore.open(crm_db(args)) as crm:
        return print_reports(apply_files(crm, files, rows), args.json)


def run_demo(args: argparse.Namespace) -> int:
    from edge.tools.demo.crm import demo_people, load_demo_crm

    reports = load_demo_crm(crm_db(args), demo_people(), args.today or date.today(), args.out,
                            extra=args.extra)
    return print_reports(reports, args.json)


def run_show(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.crm.portrait import PortraitBuilder
    from edge.crm.records import CrmError, CrmStore

    cfg = load_config(args.config)
    db = crm_db(args)
    builder = PortraitBuilder(CrmStore.open(db, create=False), cfg.crm)  # a read creates nothing
    try:
        bundle = builder.build(args.customer_id, args.today or date.today())
    finally:
        builder.close()
    if bundle is None:
        raise CrmError(f"customer {args.customer_id} is not in the CRM at {db}")
    data = json.loads(json.dumps(dataclasses.asdict(bundle), default=str))
    if args.json:
        print(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        print_bundle(data)
    return 0


def print_bundle(data: dict[str, Any]) -> None:
    p = data["portrait"]
    out = _ConsoleOut(sys.stdout)
    out.write(f"segment {p['segment']}  AUM {p['aum_band']}  risk {p['risk_level']} "
              f"(assessment until {p['risk_assessment_expires_on']}"
              f", {p['risk_assessment']})\n")
    out.write("holdings: " + ", ".join(f"{h['category']} {h['amount_band']}" for h in p["holdings"]) + "\n")
    for event in p["life_events"]:
        out.write(f"event: {event['note']}\n")
    for r in data["recommendations"]:
        out.write(f"recommend {r['product_id']} {r['name']}: {r['reason']}\n")
    for point in data["talking_points"] + data["talking_points_en"]:
        out.write(f"  - {point}\n")


class _ConsoleOut:
    """Writes CRM text (names, notes, product names from imports) with control and bidi
    characters escaped; the newlines the caller adds are kept."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def write(self, text: str) -> None:
        self.stream.write("\n".join(console_text(line) for line in text.split("\n")))
