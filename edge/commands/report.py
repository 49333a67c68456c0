"""``branch-edge report outcomes``: conversion of recommendations by RM, product
and segment, as CSV and a PNG chart."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.commands.crm import add_db_arguments, crm_db, parse_day


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("report", help="reports (outcomes: recommendation conversion)")
    kinds = parser.add_subparsers(dest="report", required=True, metavar="REPORT")
    outcomes = kinds.add_parser("outcomes", help="conversion by RM, product and segment (CSV + PNG)")
    outcomes.add_argument("--from", dest="start", type=parse_day, required=True, help="first visit day")
    outcomes.add_argument("--to", dest="end", type=parse_day, required=True, help="last visit day")
    outcomes.add_argument("--out", type=Path, default=Path("reports"), help="folder (default reports/)")
    add_db_arguments(outcomes)
    outcomes.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.core.errors import BranchEdgeError
    from edge.crm.outcomes import conversion, link_sales, plot_png, write_csv
    from edge.crm.records import CrmStore

    if args.end < args.start:
        raise BranchEdgeError("--to is before --from")
    cfg = load_config(args.config)
    with CrmStore.open(crm_db(args)) as crm:
        linked = link_sales(crm, cfg.crm.attribution_days)
        rows = conversion(crm, args.start, args.end)
    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"outcomes-{args.start}-{args.end}"
    csv_path, png_path = args.out / f"{stem}.csv", args.out / f"{stem}.png"
    write_csv(rows, csv_path)
    plot_png(rows, png_path, f"Recommendation conversion {args.start} to {args.end} "
                             f"(window {cfg.crm.attribution_days} days)")
    if args.json:
        print(json.dumps({"linked_now": linked, "csv": str(csv_path), "png": str(png_path), "rows": rows},
                         ensure_ascii=False, indent=2))
        return 0
    for r in rows:
        print(f"{r['dimension']:<8} {r['key']:<40} {r['converted']:>4}/{r['recommended']:<4} "
              f"{100 * r['conversion_rate']:5.1f}%")
    print(f"{linked} purchases newly linked; wrote {csv_path} and {png_path}")
    return 0
