"""``branch-edge bench mqtt``: publish-to-receive latency and throughput, one edge to N PADs
over TLS with a real Mosquitto.  Exit 0 when no message was lost, 1 otherwise, 2 when
the arguments are bad or Mosquitto is not installed."""

from __future__ import annotations

import argparse
import json
import shutil

from edge.core.errors import BranchEdgeError
from mqtt.bench import BenchOptions, run_bench


def register(benches: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    bench = benches.add_parser("mqtt", help="publish-to-receive latency over TLS with real Mosquitto")
    bench.add_argument("--pads", type=int, default=20, help="subscribing RM PADs (default 20)")
    bench.add_argument("--rate", type=float, default=50.0, help="arrivals per second (default 50)")
    bench.add_argument("--seconds", type=float, default=10.0, help="how long to publish (default 10)")
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    mosquitto = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if mosquitto is None:
        raise BranchEdgeError("mosquitto is not installed (apt-get install mosquitto)")
    if args.pads < 1 or args.rate <= 0 or args.seconds <= 0:
        raise BranchEdgeError("--pads, --rate and --seconds must be positive")
    result = run_bench(BenchOptions(args.pads, args.rate, args.seconds, mosquitto=mosquitto))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        lat = result["latency_ms"]
        print(f"{result['arrivals_published']} arrivals x {result['pads']} PADs at {result['rate_per_s']}/s,"
              f" {result['arrival_payload_bytes']} bytes each")
        print(f"latency p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms;"
              f" {result['throughput_deliveries_per_s']} deliveries/s; lost {result['lost']}")
    return 0 if result["lost"] == 0 else 1
