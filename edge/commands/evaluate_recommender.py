"""``branch-edge evaluate-recommender``: hit-rate@3 (all and new products), MAP@7 and
coverage on held-out later purchases, against most-popular and most-popular-not-held
baselines, in one run on a time split."""

from __future__ import annotations

import argparse
import json
import tempfile
from datetime import date
from pathlib import Path

from edge.commands.crm import add_db_arguments, crm_db, parse_day


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("evaluate-recommender",
                            help="hit-rate@3, MAP@7 and coverage of recommendations on later purchases")
    parser.add_argument("--horizon", type=int, default=180, help="days of held-out purchases (default 180)")
    parser.add_argument("--cutoff", type=parse_day, help="default: last purchase minus the horizon")
    parser.add_argument("--demo", action="store_true",
                        help="evaluate on a freshly generated demo CRM (temporary database)")
    parser.add_argument("--today", type=parse_day,
                        help="with --demo: the day the demo CRM ends (default today)")
    add_db_arguments(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.core.errors import BranchEdgeError
    from edge.crm.evaluation import evaluate_recommender
    from edge.crm.records import CrmStore
    from edge.tools.demo.crm import demo_people, load_demo_crm

    if not 7 <= args.horizon <= 730:
        raise BranchEdgeError("--horizon must be 7 to 730 days")
    cfg = load_config(args.config)
    with tempfile.TemporaryDirectory() as tmp:
        db = crm_db(args)
        if args.demo:
            db = Path(tmp) / "demo-crm.db"
            load_demo_crm(db, demo_people(), args.today or date.today(), Path(tmp) / "csv")
        with CrmStore.open(db, create=args.demo) as crm:  # a read never creates the bank's CRM
            report = evaluate_recommender(crm, cfg.crm, args.horizon, args.cutoff)
    report["data"] = "generated demo CRM (fictional)" if args.demo else str(db)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    for name in ("recommender", "recommender_without_triggers", "most_popular_baseline",
                 "most_popular_unheld_baseline"):
        s = report[name]
        print(f"{name:<29} hit-rate@3 {s['hit_rate_at_3']:.3f}  new products "
              f"{s['new_product_hit_rate_at_3']:.3f}  MAP@7 {s['map_at_7']:.3f}  "
              f"coverage {s['coverage']:.3f}")
    print(f"{report['customers_evaluated']} customers, cutoff {report['cutoff']}, "
          f"horizon {report['horizon_days']} days")
    return 0
