"""``branch-edge bench recommender``: training time and memory, and arrival scoring latency.

A synthetic CRM copy, seeded: ``--customers`` customers (100,000 by default)
in six investing styles, 24 products (current accounts, term deposits and
plans, funds, insurance, cards and loans), an opening portfolio each and
month-over-month acquisitions for the 18 months before the bench day, with
amounts.  It is written to a temporary CRM database like an import would,
then a fresh process (so its memory is the recommender's alone) loads the
population, fits the recommender (propensity models, co-holding facts,
segments, every customer's scores) under ``--threads`` worker threads, and
scores arriving customers one at a time the way the portrait does.

Reported (JSON with ``--json``): load and training seconds, the process's
peak resident memory, the training rows, and the per-arrival scoring time's
p50/p95/max in milliseconds (target p95 <= 10 ms).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import date, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from edge.commands.argtypes import bounded_int
from edge.core.ranking import add_months
from edge.crm.catalogue import Product
from edge.crm.records import CrmCustomer, CrmStore, HoldingRecord, TransactionRecord

TARGET_P95_MS = 10.0
BENCH_DAY = date(2026, 12, 1)
MONTHS = 18
STYLES = 6
# product id, category, risk rating, tenure days
PRODUCTS: tuple[tuple[str, str, str, int], ...] = (
    ("CUR-BASIC", "current", "R1", 0), ("CUR-PAYROLL", "current", "R1", 0), ("CUR-PLUS", "current", "R1", 0),
    ("CUR-DEBIT", "current", "R1", 0), ("CUR-ONLINE", "current", "R1", 0),
    ("DEP-3M", "deposit", "R1", 91), ("DEP-1Y", "deposit", "R1", 365), ("DEP-3Y", "deposit", "R1", 1095),
    ("DEP-SAVE", "deposit", "R1", 0), ("DEP-HOME", "deposit", "R1", 0),
    ("WM-90", "wealth", "R2", 90), ("WM-180", "wealth", "R2", 180), ("WM-365", "wealth", "R3", 365),
    ("FD-MMF", "fund", "R1", 0), ("FD-BOND", "fund", "R2", 0), ("FD-MIX", "fund", "R3", 0),
    ("FD-EQ", "fund", "R4", 0), ("IN-ANN", "insurance", "R1", 0), ("IN-HLTH", "insurance", "R1", 0),
    ("IN-PENS", "insurance", "R3", 0), ("CD-STD", "card", "R1", 0), ("CD-GOLD", "card", "R1", 0),
    ("LN-CONS", "loan", "R1", 0), ("LN-HOME", "loan", "R1", 0),
)
TIERS = ("大众", "贵宾", "财富管理", "私人银行")


def register(benches: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = benches.add_parser("recommender",
                                help="recommender: training time and memory, scoring latency per arrival")
    parser.add_argument("--customers", type=bounded_int(100, 2_000_000), default=100_000,
                        help="synthetic customers (default 100000)")
    parser.add_argument("--threads", type=bounded_int(1, 64), default=2,
                        help="worker threads for training (default 2: the branch PC)")
    parser.add_argument("--arrivals", type=bounded_int(10, 100_000), default=2000,
                        help="arriving customers scored one at a time (default 2000)")
    parser.add_argument("--seed", type=int, default=7, help="seed of the synthetic CRM (default 7)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=run)


def synthetic_crm(customers: int, seed: int) -> tuple[list[Product], list[CrmCustomer],
                                                      list[HoldingRecord], list[TransactionRecord]]:
    """A seeded population with styles that drive what customers hold and take up next."""
    rng = np.random.default_rng(seed)
    products = [Product(pid, pid, pid, cat, risk, 0.0, tenure, None, None, ())
                for pid, cat, risk, tenure in PRODUCTS]
    p = len(products)
    affinity = rng.dirichlet(np.full(p, 0.4), size=STYLES)
    style = rng.integers(0, STYLES, size=customers)
    level = np.clip(style % 5 + 1, 1, 5)
    tier = rng.choice(len(TIERS), size=customers, p=[0.5, 0.3, 0.15, 0.05])
    start = add_months(BENCH_DAY, -MONTHS - 1)
    people = [CrmCustomer(f"B{i:07d}", f"Customer {i}", TIERS[tier[i]], "RM-01", "", f"C{level[i]}",
                          date(2030, 12, 31), None, "zh-CN", (), "", "") for i in range(customers)]
    holdings: list[HoldingRecord] = []
    buys: list[TransactionRecord] = []
    scale = np.asarray([10 ** (4 + tier[i]) for i in range(customers)], dtype=np.float64)
    opening = rng.poisson(1.5, size=customers) + 1
    for i in range(customers):
        weights = affinity[style[i]]
        held = set(rng.choice(p, size=min(int(opening[i]), p), replace=False, p=weights).tolist())
        for j in sorted(held):
            holdings.append(_holding(products[j], f"B{i:07d}", start, float(scale[i] * rng.lognormal(0, 1))))
        months = np.flatnonzero(rng.random(MONTHS) < 0.04 + 0.02 * tier[i])
        for m in months:
            j = int(rng.choice(p, p=weights))
            day = add_months(start, int(m) + 1) + timedelta(days=int(rng.integers(0, 27)))
            amount = float(round(scale[i] * rng.lognormal(0, 1), -2))
            buys.append(TransactionRecord(f"T{len(buys):08d}", f"B{i:07d}", day, products[j].product_id,
                                          products[j].category, amount, "buy"))
            tenure = products[j].tenure_days
            if not tenure or day + timedelta(days=tenure) > BENCH_DAY:
                holdings.append(_holding(products[j], f"B{i:07d}", day, amount))
    return products, people, holdings, buys


def _holding(product: Product, customer_id: str, opened: date, amount: float) -> HoldingRecord:
    matures = opened + timedelta(days=product.tenure_days) if product.tenure_days else None
    return HoldingRecord(f"H{customer_id}-{product.product_id}-{opened:%Y%m%d}", customer_id,
                         product.product_id, product.category, round(amount, -2), opened, matures)


def write_crm(path: Path, customers: int, seed: int) -> dict[str, int]:
    products, people, holdings, buys = synthetic_crm(customers, seed)
    with CrmStore.open(path) as crm, crm.transaction() as c:
        for table, rows in (("crm_products", products), ("crm_customers", people),
                            ("crm_holdings", holdings), ("crm_transactions", buys)):
            if rows:
                marks = ", ".join("?" * len(rows[0].row()))
                c.executemany(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", (r.row() for r in rows))
    return {"customers": len(people), "products": len(products), "holdings": len(holdings),
            "purchases": len(buys)}


def peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return round(peak / 1024, 1)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return float(usage.ru_utime + usage.ru_stime)


def measure(db: str, threads: int, arrivals: int, seed: int) -> dict[str, Any]:
    """Runs in a fresh process: load, fit, then score arrivals one by one."""
    from threadpoolctl import threadpool_limits  # noqa: PLC0415 - the CLI starts without scikit-learn

    from edge.config import CrmConfig  # noqa: PLC0415
    from edge.crm.recommend import Population, Recommender  # noqa: PLC0415

    before = peak_rss_mb()
    busy = os.getloadavg()[0]
    with threadpool_limits(limits=threads):
        t0 = time.perf_counter()
        with CrmStore.open(Path(db)) as crm:
            pop = Population.load(crm)
        t1 = time.perf_counter()
        cpu = _cpu_s()
        rec = Recommender(pop, CrmConfig(), as_of=BENCH_DAY)
        t2 = time.perf_counter()
        cpu = _cpu_s() - cpu
    rng = np.random.default_rng(seed)
    ids = sorted(pop.customers)
    times = []
    for i in rng.choice(len(ids), size=min(arrivals, len(ids)), replace=False):
        s = time.perf_counter()
        rec.recommend(ids[int(i)], BENCH_DAY)
        times.append((time.perf_counter() - s) * 1000)
    ms = np.asarray(times)
    return {
        "load_s": round(t1 - t0, 2), "train_s": round(t2 - t1, 2), "train_cpu_s": round(cpu, 2),
        "load_average_1m": round(busy, 2),  # other work on the machine slows the wall-clock figures
        "training_rows": rec.propensity.training_rows,
        "product_models": len(rec.propensity.models), "segments": len(set(rec.segments.keys)),
        "peak_rss_mb": peak_rss_mb(), "rss_before_load_mb": before,
        "scoring_ms": {"count": len(ms), "p50": round(float(np.percentile(ms, 50)), 3),
                       "p95": round(float(np.percentile(ms, 95)), 3), "max": round(float(ms.max()), 3)},
    }


def bench(customers: int, threads: int, arrivals: int, seed: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-recommender-") as tmp:
        db = Path(tmp) / "crm.db"
        t0 = time.perf_counter()
        sizes = write_crm(db, customers, seed)
        generated = time.perf_counter() - t0
        with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
            result = pool.submit(measure, str(db), threads, arrivals, seed).result()
    return {"bench": "recommender", **sizes, "months": MONTHS, "threads": threads,
            "cpu_count": os.cpu_count(), "generate_s": round(generated, 2), **result,
            "target": {"scoring_p95_ms": TARGET_P95_MS}}


def run(args: argparse.Namespace) -> int:
    result = bench(args.customers, args.threads, args.arrivals, args.seed)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    s = result["scoring_ms"]
    print(f"{result['customers']} customers, {result['training_rows']} training rows: "
          f"load {result['load_s']} s, "
          f"train {result['train_s']} s on {result['threads']} threads, peak {result['peak_rss_mb']} MB",
          file=sys.stdout)
    print(f"scoring one arrival: p50 {s['p50']} ms, p95 {s['p95']} ms (target p95 <= {TARGET_P95_MS:g} ms)")
    return 0
