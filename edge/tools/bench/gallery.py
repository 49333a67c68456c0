"""``branch-edge bench gallery``: build time, memory, latency and accuracy of the gallery backends.

Synthetic but face-like data, seeded: identities are random unit vectors; each has
several templates (noisy copies, cosine ~0.7 to the identity); a mated query is a
fresh noisy copy of an enrolled identity (cosine ~0.6 to its templates) and a
non-mated query is a new random identity.  The ``exact`` backend (plain numpy
float32) is measured in the same run as the baseline: every other backend reports
its speed-up and memory fraction against it, and its top-1 and open-set decision
agreement with exact search on mated and non-mated queries.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from edge.commands.argtypes import bounded_float, bounded_int
from edge.core.gallery import Decision, Gallery, check_rule
from edge.vision.gallery_index import BACKENDS, Backend, make_gallery

TARGET_P95_MS = 5.0
TARGET_BYTES = 250_000_000  # 0.25 GB
TARGET_AGREEMENT = 0.999
WARMUP_QUERIES = 20
GENERATION_CHUNK = 65_536


@dataclass(frozen=True)
class BenchData:
    customer_ids: list[str]
    templates: np.ndarray  # (n, d) float32, unit rows
    mated: np.ndarray  # accuracy queries of enrolled identities
    mated_truth: list[str]
    non_mated: np.ndarray
    latency_queries: np.ndarray  # mated and non-mated interleaved
    stats: dict[str, float]


def unit_rows(x: np.ndarray) -> np.ndarray:
    rows: np.ndarray = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    return rows


def noisy_copies(centres: np.ndarray, cosine: float, rng: np.random.Generator) -> np.ndarray:
    """Unit vectors with expected cosine ``cosine`` to their (unit) centre."""
    sigma = np.sqrt(1.0 / cosine**2 - 1.0)
    noise = rng.standard_normal(centres.shape, dtype=np.float32) / np.sqrt(centres.shape[1])
    return unit_rows(centres + np.float32(sigma) * noise)


@dataclass(frozen=True)
class DataSpec:
    size: int
    dim: int
    per_customer: int
    n_accuracy: int  # mated and as many non-mated queries
    n_latency: int  # mated and as many non-mated queries
    seed: int


def make_data(spec: DataSpec) -> BenchData:
    size, dim, per_customer = spec.size, spec.dim, spec.per_customer
    n_accuracy, n_latency = spec.n_accuracy, spec.n_latency
    rng = np.random.default_rng(spec.seed)
    n_customers = -(-size // per_customer)
    centres = unit_rows(rng.standard_normal((n_customers, dim), dtype=np.float32))
    owner = np.arange(size) // per_customer
    templates = np.empty((size, dim), np.float32)
    for start in range(0, size, GENERATION_CHUNK):
        rows = slice(start, min(size, start + GENERATION_CHUNK))
        templates[rows] = noisy_copies(centres[owner[rows]], 0.70, rng)
    # Mated queries sit at cosine ~0.6 to each template: 0.6 / 0.7 to the identity.
    picked = rng.choice(n_customers, n_accuracy + n_latency, replace=n_accuracy + n_latency > n_customers)
    mated_all = noisy_copies(centres[picked], 0.60 / 0.70, rng)
    non_mated_all = unit_rows(rng.standard_normal((n_accuracy + n_latency, dim), dtype=np.float32))
    names = [f"C{i:07d}" for i in range(n_customers)]
    latency = np.empty((2 * n_latency, dim), np.float32)
    latency[0::2], latency[1::2] = mated_all[n_accuracy:], non_mated_all[n_accuracy:]
    first_template = templates[picked[:n_accuracy] * per_customer]
    stats = {
        "template_to_identity_cosine": float(np.mean(np.sum(templates[::per_customer] * centres, axis=1))),
        "mated_query_to_template_cosine": float(np.mean(np.sum(mated_all[:n_accuracy] * first_template,
                                                               axis=1))),
    }
    return BenchData([names[i] for i in owner.tolist()], templates, mated_all[:n_accuracy],
                     [names[i] for i in picked[:n_accuracy].tolist()], non_mated_all[:n_accuracy], latency,
                     stats)


def rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def percentiles_ms(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1e3
    return {"p50": round(float(np.percentile(ms, 50)), 3), "p95": round(float(np.percentile(ms, 95)), 3),
            "mean": round(float(ms.mean()), 3), "max": round(float(ms.max()), 3)}


def single_query_latency(identify: Callable[[np.ndarray], Decision], queries: np.ndarray) -> dict[str, float]:
    for q in queries[:WARMUP_QUERIES]:
        identify(q)
    seconds = []
    for q in queries:
        start = time.perf_counter()
        identify(q)
        seconds.append(time.perf_counter() - start)
    return percentiles_ms(seconds)



@dataclass(frozen=True)
class Rule:
    threshold: float
    margin: float
    k: int


@dataclass
class BackendResult:
    build_s: float
    index_bytes: int
    rss_delta_bytes: int
    latency_ms: dict[str, float]
    open_set: dict[str, float]
    params: dict[str, int]
    top1_agreement: dict[str, float] = field(default_factory=dict)
    decision_agreement: dict[str, float] = field(default_factory=dict)
    vs_exact: dict[str, float] = field(default_factory=dict)
    meets_target: bool = False


Decisions = dict[str, list[Decision]]


def top1(decisions: list[Decision]) -> list[str | None]:
    return [d.best.customer_id if d.best else None for d in decisions]


def outcome(decisions: list[Decision]) -> list[tuple[str, str | None]]:
    return [(d.reason, d.customer_id) for d in decisions]


def agreement(a: list[Any], b: list[Any]) -> float:
    return round(float(np.mean([x == y for x, y in zip(a, b, strict=True)])), 5)


def open_set_rates(decisions: Decisions, truth: list[str]) -> dict[str, float]:
    """How the decisions score against the ground truth of the synthetic data."""
    return {
        "mated_accepted_correct": agreement([d.customer_id for d in decisions["mated"]], truth),
        "mated_unknown": round(float(np.mean([not d.accepted for d in decisions["mated"]])), 5),
        "non_mated_accepted": round(float(np.mean([d.accepted for d in decisions["non_mated"]])), 5),
    }


def build(backend: Backend, data: BenchData, options: dict[str, float]) -> tuple[Gallery, float, int]:
    """The gallery, its build time in seconds and the RSS it added."""
    gc.collect()
    rss_before = rss_bytes()
    start = time.perf_counter()
    gallery = make_gallery(data.templates.shape[1], backend, **options)
    gallery.add(data.customer_ids, data.templates)
    return gallery, time.perf_counter() - start, rss_bytes() - rss_before


def measure_backend(backend: Backend, data: BenchData, rule: Rule,
                    options: dict[str, float]) -> tuple[BackendResult, Decisions]:
    gallery, build_s, rss_delta = build(backend, data, options)
    latency = single_query_latency(lambda q: gallery.identify(q, rule.threshold, rule.margin, rule.k),
                                   data.latency_queries)
    decisions = {kind: gallery.identify_batch(queries, rule.threshold, rule.margin, rule.k)
                 for kind, queries in (("mated", data.mated), ("non_mated", data.non_mated))}
    params = {name: int(getattr(gallery.index, name)) for name in ("nlist", "nprobe")
              if hasattr(gallery.index, name)}
    result = BackendResult(round(build_s, 3), gallery.nbytes, rss_delta, latency,
                           open_set_rates(decisions, data.mated_truth), params)
    return result, decisions


def compare(result: BackendResult, decisions: Decisions, exact: BackendResult,
            exact_decisions: Decisions) -> None:
    """Fill in agreement with exact search, the speed/memory ratios and the target check."""
    kinds = ("mated", "non_mated")
    result.top1_agreement = {k: agreement(top1(decisions[k]), top1(exact_decisions[k])) for k in kinds}
    result.decision_agreement = {k: agreement(outcome(decisions[k]), outcome(exact_decisions[k]))
                                 for k in kinds}
    result.vs_exact = {
        "speedup_p50": round(exact.latency_ms["p50"] / result.latency_ms["p50"], 2),
        "speedup_p95": round(exact.latency_ms["p95"] / result.latency_ms["p95"], 2),
        "memory_fraction": round(result.index_bytes / exact.index_bytes, 3),
    }
    memory = max(result.index_bytes, result.rss_delta_bytes)
    result.meets_target = bool(
        result.latency_ms["p95"] <= TARGET_P95_MS and memory <= TARGET_BYTES
        and result.top1_agreement["mated"] >= TARGET_AGREEMENT
        and min(result.decision_agreement.values()) >= TARGET_AGREEMENT)


@dataclass(frozen=True)
class BenchSpec:
    data: DataSpec
    rule: Rule
    backends: tuple[Backend, ...]
    ivf_options: dict[str, float]


def run_bench(spec: BenchSpec) -> dict[str, Any]:
    """Measure every backend (exact first: it is the baseline and the ground truth)."""
    threads = faiss_threads()  # imports faiss now, so that no backend's RSS counts the library
    load_before = os.getloadavg()[0]
    data = make_data(spec.data)
    results: dict[str, BackendResult] = {}
    exact_decisions: Decisions = {}
    order: list[Backend] = ["exact", *[b for b in spec.backends if b != "exact"]]
    for backend in order:
        result, decisions = measure_backend(backend, data, spec.rule,
                                            spec.ivf_options if backend == "ivf" else {})
        exact_decisions = exact_decisions or decisions
        compare(result, decisions, results.get("exact", result), exact_decisions)
        results[backend] = result
    return {
        "bench": "gallery", "size": spec.data.size, "dim": spec.data.dim,
        "customers": len(set(data.customer_ids)), "templates_per_customer": spec.data.per_customer,
        "seed": spec.data.seed, "cpus": os.cpu_count(), "faiss_threads": threads,
        "load_average_1m": {"start": round(load_before, 2), "end": round(os.getloadavg()[0], 2)},
        "rule": asdict(spec.rule),
        "queries": {"latency": len(data.latency_queries), "warmup": WARMUP_QUERIES,
                    "accuracy_mated": len(data.mated), "accuracy_non_mated": len(data.non_mated)},
        "data": {k: round(v, 4) for k, v in data.stats.items()},
        "target": {"p95_ms": TARGET_P95_MS, "bytes": TARGET_BYTES, "agreement": TARGET_AGREEMENT},
        "baseline": "exact",
        "backends": {name: asdict(result) for name, result in results.items()},
    }


def faiss_threads() -> int:
    import faiss  # noqa: PLC0415  (only to report its thread count)

    return int(faiss.omp_get_max_threads())


def backend_list(text: str) -> tuple[Backend, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in BACKENDS]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"backends are a comma list of {', '.join(BACKENDS)}")
    return tuple(b for b in BACKENDS if b in names)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("gallery", help="gallery search: build time, memory, latency, accuracy")
    parser.add_argument("--size", type=bounded_int(100, 5_000_000), default=1_000_000,
                        help="templates in the gallery (default 1000000)")
    parser.add_argument("--dim", type=bounded_int(8, 2048), default=128, help="embedding size (default 128)")
    parser.add_argument("--templates-per-customer", type=bounded_int(1, 50), default=5,
                        help="templates per synthetic customer (default 5)")
    parser.add_argument("--backends", type=backend_list, default=BACKENDS,
                        help="comma list among exact,int8,ivf (exact always runs: it is the baseline)")
    parser.add_argument("--queries", type=bounded_int(20, 100_000), default=300,
                        help="single queries timed per backend, half mated (default 300)")
    parser.add_argument("--accuracy-queries", type=bounded_int(10, 100_000), default=2000,
                        help="mated and as many non-mated queries for agreement (default 2000)")
    parser.add_argument("--threshold", type=bounded_float(-1.0, 1.0), default=0.5,
                        help="open-set threshold (default 0.5)")
    parser.add_argument("--margin", type=bounded_float(0.0, 2.0), default=0.05,
                        help="open-set margin (default 0.05)")
    parser.add_argument("--k", type=bounded_int(2, 100), default=10, help="templates fetched per query")
    parser.add_argument("--nlist", type=bounded_int(0, 1 << 20), default=0,
                        help="ivf lists (0 = about 2 sqrt(size))")
    parser.add_argument("--nprobe", type=bounded_int(0, 1 << 20), default=0,
                        help="ivf lists probed (0 = nlist / 6)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the synthetic embeddings and queries (default 0)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run_command)


def spec_from_args(args: argparse.Namespace) -> BenchSpec:
    check_rule(args.threshold, args.margin)
    return BenchSpec(
        DataSpec(args.size, args.dim, args.templates_per_customer, args.accuracy_queries,
                 args.queries // 2, args.seed),
        Rule(args.threshold, args.margin, args.k), args.backends,
        {name: float(value) for name, value in (("nlist", args.nlist), ("nprobe", args.nprobe)) if value})


def run_command(args: argparse.Namespace) -> int:
    report = run_bench(spec_from_args(args))
    print(json.dumps(report, indent=2) if args.json else format_table(report))
    return 0


def format_table(report: dict[str, Any]) -> str:
    lines = [f"gallery bench: {report['size']} templates of dim {report['dim']} "
             f"({report['customers']} customers), {report['cpus']} CPUs, seed {report['seed']}",
             f"{'backend':<8} {'build s':>8} {'index MB':>9} {'RSS+ MB':>8} {'p50 ms':>7} {'p95 ms':>7} "
             f"{'speed-up':>8} {'top1 mated':>10} {'top1 non':>8} {'decision':>8}  target"]
    for name, r in report["backends"].items():
        decision = min(r["decision_agreement"].values())
        lines.append(
            f"{name:<8} {r['build_s']:>8.2f} {r['index_bytes'] / 1e6:>9.1f} "
            f"{r['rss_delta_bytes'] / 1e6:>8.1f} "
            f"{r['latency_ms']['p50']:>7.2f} {r['latency_ms']['p95']:>7.2f} "
            f"{r['vs_exact']['speedup_p95']:>7.1f}x {r['top1_agreement']['mated']:>10.4f} "
            f"{r['top1_agreement']['non_mated']:>8.4f} {decision:>8.4f}  "
            f"{'met' if r['meets_target'] else 'missed'}")
    return "\n".join(lines)
