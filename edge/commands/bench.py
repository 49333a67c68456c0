"""``branch-edge bench``: benchmarks, one sub-command each (``gallery``; more to come).

Each benchmark lives in its own module with a ``register(subparsers)`` function;
add a new one to ``BENCHES``.
"""

from __future__ import annotations

import argparse
import importlib

BENCHES = (
    "edge.tools.bench.gallery",
    "edge.tools.bench.mqtt",
    "edge.tools.bench.pipeline",
    "edge.tools.bench.notify",
    "edge.tools.bench.counter",
    "edge.tools.bench.recommender",
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("bench", help="benchmarks (gallery search, ...)")
    benches = parser.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    for name in BENCHES:
        importlib.import_module(name).register(benches)
