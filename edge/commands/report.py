"""``branch-edge report outcomes``: conversion of recommendations by RM, product
and segment, as CSV and a PNG chart."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edge.commands.crm import add_db_arguments, crm_db, parse_day
from edge.core.safe_output import console_text


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("report", help="reports (outcomes: recommendation conversion)")
    kinds = parser.add_subparsers(dest="report", required=True, metavar="REPORT")
    outcomes = kinds.add_parser("outcomes", help="conversion by RM, product and segment (CSV + PNG)")
    outcomes.add_argument("--from", dest="start", type=parse_day, required=True, help="first visit day")
    outcomes.add_argument("--to", dest="end", type=parse_day, required=True, help="last visit day")
    outcomes.add_argument("--out", type=Path, default=Path("reports"), help="folder (default reports/)")
    add_db_arguments(outcomes)
    outcomes.set_defaults(func=run)


COLUMNS = ("by", "key", "converted/shown", "rate", "sales amount", "RM-reported sold")


def table_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The conversion table for the terminal, with its column headers."""
    def line(cells: tuple[Any, ...]) -> str:
        by, key, converted, rate, amount, sold = cells
        key = console_text(key)  # segments come from CRM imports: no terminal escapes
        return f"{by:<8} {key:<28} {converted:>15} {rate:>6} {amount:>14} {sold:>16}"

    out = [line(COLUMNS)]
    for r in rows:
        out.append(line((r["dimension"], r["key"], f"{r['converted']}/{r['recommended']}",
                         f"{100 * r['conversion_rate']:.1f}%", f"{r['sales_amount']:.2f}",
                         r["reported_sold"])))
    return out


def run(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.core.errors import BranchEdgeError
    from edge.crm.outcomes import conversion, link_sales, plot_png, write_csv
    from edge.crm.records import CrmStore

    if args.end < args.start:
        raise BranchEdgeError("--to is before --from")
    cfg = load_config(args.config)
    with CrmStore.open(crm_db(args), create=False) as crm:  # a report never creates a CRM
        linked = link_sales(crm, cfg.crm.attribution_days)
        rows = conversion(crm, args.start, args.end)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"outcomes-{args.start}-{args.end}"
    csv_path, png_path = args.out / f"{stem}.csv", args.out / f"{stem}.png"
    write_csv(rows, csv_path)  # headers only for an empty range: still a valid table
    if rows:
        plot_png(rows, png_path, f"Recommendation conversion {args.start} to {args.end} "
                                 f"(window {cfg.crm.attribution_days} days)")
    if args.json:
        print(json.dumps({"linked_now": linked, "csv": str(csv_path), "png": str(png_path) if rows else None,
                          "empty": not rows, "rows": rows}, ensure_ascii=False, indent=2))
        return 0
    if not rows:
        print(f"no recommendations were shown from {args.start} to {args.end}: nothing to report, "
              f"no chart drawn; {linked} purchases newly linked; wrote the empty table {csv_path}")
        return 0
    print("\n".join(table_lines(rows)))
    print(f"{linked} purchases newly linked; wrote {csv_path} and {png_path}")
    return 0
