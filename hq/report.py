"""``branch-hq report``: conversion by branch, RM, product and segment, and the fleet view,
from the collector's PostgreSQL tables (CSV + PNG, and JSON on request).

Conversion: recommendations shown (the branches' daily counts) against purchases of the
recommended product linked to the visit (marketing outcome linking), with the amount, and
the sales RMs reported on their tablets (``product_sold`` outcomes).  The fleet view: each
branch's edge online or not, its model pack and gallery version, the last erasure it
applied and when it was last heard of.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import json
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import psycopg

from hq.config import HqConfig
from hq.errors import HqError

DIMENSIONS = {"branch": "branch_id", "rm": "rm_id", "product": "product_id", "segment": "segment"}
CONVERSION_COLUMNS = ["dimension", "key", "recommended", "converted", "conversion_rate", "sales_amount",
                      "reported_sold"]
FLEET_COLUMNS = ["branch_id", "online", "edge_devices", "model_pack", "gallery_version", "templates",
                 "last_erasure_id", "last_erasure_at", "last_seen"]


def conversion(conn: psycopg.Connection[Any], since: date, until: date) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for dimension, column in DIMENSIONS.items():
        shown = dict(conn.execute(
            f"SELECT {column}, SUM(shown) FROM shown_counts WHERE day BETWEEN %s AND %s GROUP BY 1",
            (since, until)).fetchall())
        linked = {k: (n, amount) for k, n, amount in conn.execute(
            f"SELECT {column}, COUNT(DISTINCT (visit_id, product_id)), SUM(amount) FROM purchase_links "
            "WHERE shown_on BETWEEN %s AND %s GROUP BY 1", (since, until)).fetchall()}
        reported: dict[str, int] = {}
        if dimension != "segment":  # an outcome does not carry the segment
            key = "p" if dimension == "product" else column
            reported = dict(conn.execute(
                f"SELECT {key}, COUNT(*) FROM outcomes, unnest(product_ids) AS p "
                "WHERE result = 'product_sold' AND sent_at::date BETWEEN %s AND %s GROUP BY 1",
                (since, until)).fetchall())
        for key in sorted(set(shown) | set(linked) | set(reported)):
            recommended = int(shown.get(key, 0))
            converted, amount = linked.get(key, (0, 0))
            rows.append({"dimension": dimension, "key": key, "recommended": recommended,
                         "converted": int(converted),
                         "conversion_rate": round(int(converted) / recommended, 4) if recommended else 0.0,
                         "sales_amount": round(float(amount or 0), 2),
                         "reported_sold": int(reported.get(key, 0))})
    return rows


def fleet(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    states = {r[0]: r for r in conn.execute(
        "SELECT branch_id, model_pack, gallery_version, templates, last_erasure_id, last_erasure_at, sent_at "
        "FROM fleet_state").fetchall()}
    devices: dict[str, list[tuple[str, Any]]] = {}
    for branch, state, sent_at in conn.execute(
            "SELECT branch_id, state, sent_at FROM device_status WHERE role = 'edge'").fetchall():
        devices.setdefault(branch, []).append((state, sent_at))
    out = []
    for branch in sorted(set(states) | set(devices)):
        state = states.get(branch)
        seen = [t for _, t in devices.get(branch, [])] + ([state[6]] if state else [])
        out.append({
            "branch_id": branch, "online": any(s == "online" for s, _ in devices.get(branch, [])),
            "edge_devices": len(devices.get(branch, [])),
            "model_pack": state[1] if state else "", "gallery_version": state[2] if state else None,
            "templates": state[3] if state else None, "last_erasure_id": state[4] if state else None,
            "last_erasure_at": state[5].isoformat() if state and state[5] else None,
            "last_seen": max(seen).isoformat() if seen else None})
    return out


def fleet_summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    packs: dict[str, int] = {}
    versions: dict[str, int] = {}
    for row in rows:
        packs[row["model_pack"] or "unknown"] = packs.get(row["model_pack"] or "unknown", 0) + 1
        key = str(row["gallery_version"]) if row["gallery_version"] is not None else "unknown"
        versions[key] = versions.get(key, 0) + 1
    return {"branches": len(rows), "online": sum(r["online"] for r in rows), "model_packs": packs,
            "gallery_versions": versions}


def write_csv(rows: list[dict[str, Any]], columns: list[str], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """One panel per dimension: conversion rate of the 15 keys most recommended."""
    matplotlib = importlib.import_module("matplotlib")
    matplotlib.use("Agg")
    pyplot = importlib.import_module("matplotlib.pyplot")
    figure, axes = pyplot.subplots(2, 2, figsize=(13, 8))
    for ax, dimension in zip(axes.flat, DIMENSIONS, strict=True):
        mine = sorted((r for r in rows if r["dimension"] == dimension), key=lambda r: -r["recommended"])[:15]
        ax.bar([str(r["key"]) for r in mine], [100 * r["conversion_rate"] for r in mine], color="#3b6ea5")
        ax.set_title(f"by {dimension}")
        ax.set_ylabel("converted / recommended (%)")
        ax.tick_params(axis="x", rotation=45, labelsize=7)
        if not mine:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    pyplot.close(figure)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("report",
                            help="conversion by branch, RM, product, segment (CSV + PNG); fleet view")
    parser.add_argument("--out", type=Path, required=True, help="folder for the CSV and PNG files")
    parser.add_argument("--since", type=date.fromisoformat, help="first day (default: 30 days ago)")
    parser.add_argument("--until", type=date.fromisoformat, help="last day (default: today)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, cfg: HqConfig) -> int:
    if not cfg.postgres.dsn:
        raise HqError("[postgres] dsn is not set")
    until = args.until or date.today()
    since = args.since or until - timedelta(days=30)
    try:
        with psycopg.connect(cfg.postgres.dsn, connect_timeout=5) as conn:
            rows, branches = conversion(conn, since, until), fleet(conn)
    except psycopg.Error as err:
        raise HqError(f"cannot read the collector's database: {str(err).strip()[:300]}") from err
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(rows, CONVERSION_COLUMNS, args.out / "conversion.csv")
    write_csv(branches, FLEET_COLUMNS, args.out / "fleet.csv")
    plot(rows, args.out / "conversion.png", f"Recommendations converted, {since} to {until}")
    summary = fleet_summary(branches)
    if args.json:
        print(json.dumps({"since": since.isoformat(), "until": until.isoformat(), "conversion": rows,
                          "fleet": branches, "fleet_summary": summary}, indent=2, default=str))
    else:
        print(f"conversion {since} to {until}: {len(rows)} rows -> {args.out / 'conversion.csv'}, "
              f"{args.out / 'conversion.png'}")
        print(f"fleet: {summary['branches']} branches, {summary['online']} online; model packs "
              f"{summary['model_packs']}; gallery versions {summary['gallery_versions']} -> "
              f"{args.out / 'fleet.csv'}")
    return 0
