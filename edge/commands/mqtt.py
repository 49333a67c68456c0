"""``branch-edge mqtt``: message schemas, the embedded demo broker, the MQTT benchmark.

    branch-edge mqtt schemas --out DIR     write the JSON Schema of every message type
    branch-edge mqtt broker [--port N]     run the embedded loopback broker until Ctrl-C
    branch-edge mqtt bench [--json]        latency/throughput, 1 edge -> N PADs over TLS

Exit codes: 0 done (bench: no message lost); 1 bench lost messages; 2 bad
arguments or mosquitto missing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import threading
from pathlib import Path

from edge.core.errors import BranchEdgeError
from mqtt.bench import BenchOptions, run_bench
from mqtt.embedded import EmbeddedBroker
from mqtt.jsonschema import write_schemas


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("mqtt", help="MQTT schemas, embedded demo broker, benchmark")
    verbs = parser.add_subparsers(dest="mqtt_command", required=True, metavar="VERB")
    schemas = verbs.add_parser("schemas", help="write the JSON Schemas of all message types")
    schemas.add_argument("--out", type=Path, required=True, help="output folder")
    schemas.add_argument("--json", action="store_true", help="machine-readable output")
    schemas.set_defaults(func=_schemas)
    broker = verbs.add_parser("broker", help="embedded MQTT 3.1.1 broker on loopback (demo only)")
    broker.add_argument("--port", type=int, default=1883, help="loopback port (default 1883; 0 = any)")
    broker.set_defaults(func=_broker)
    add_bench_parser(verbs, "bench")


def add_bench_parser(subparsers: argparse._SubParsersAction, name: str) -> None:  # type: ignore[type-arg]
    """The MQTT benchmark, shared by `branch-edge bench mqtt` and `branch-edge mqtt bench`."""
    bench = subparsers.add_parser(name, help="publish-to-receive latency over TLS with real Mosquitto")
    bench.add_argument("--pads", type=int, default=20, help="subscribing RM PADs (default 20)")
    bench.add_argument("--rate", type=float, default=50.0, help="arrivals per second (default 50)")
    bench.add_argument("--seconds", type=float, default=10.0, help="how long to publish (default 10)")
    bench.add_argument("--json", action="store_true", help="machine-readable output")
    bench.set_defaults(func=_bench)


def _schemas(args: argparse.Namespace) -> int:
    try:
        written = write_schemas(args.out)
    except OSError as err:
        raise BranchEdgeError(f"cannot write schemas to {args.out}: {err.strerror}") from err
    if args.json:
        print(json.dumps({"written": [str(p) for p in written]}))
    else:
        for path in written:
            print(path)
    return 0


def _broker(args: argparse.Namespace) -> int:
    server = EmbeddedBroker(port=args.port)
    try:
        port = server.start()
    except OSError as err:
        raise BranchEdgeError(f"cannot listen on 127.0.0.1:{args.port}: {err.strerror}") from err
    print(f"embedded MQTT broker on 127.0.0.1:{port} (Ctrl-C stops it)", flush=True)
    try:
        threading.Event().wait()
    finally:
        server.stop()
    return 0


def _bench(args: argparse.Namespace) -> int:
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
