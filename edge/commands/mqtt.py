"""``branch-edge mqtt``: message schemas and the embedded demo broker.

    branch-edge mqtt schemas --out DIR     write the JSON Schema of every message type
    branch-edge mqtt broker [--port N]     run the embedded loopback broker until Ctrl-C

The MQTT benchmark is ``branch-edge bench mqtt``, with the other benchmarks.
Exit codes: 0 done; 2 bad arguments or the port/folder cannot be used.
"""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path

from edge.core.errors import BranchEdgeError
from mqtt.embedded import EmbeddedBroker
from mqtt.jsonschema import write_schemas


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("mqtt", help="MQTT message schemas and the embedded demo broker")
    verbs = parser.add_subparsers(dest="mqtt_command", required=True, metavar="VERB")
    schemas = verbs.add_parser("schemas", help="write the JSON Schemas of all message types")
    schemas.add_argument("--out", type=Path, required=True, help="output folder")
    schemas.add_argument("--json", action="store_true", help="machine-readable output")
    schemas.set_defaults(func=_schemas)
    broker = verbs.add_parser("broker", help="embedded MQTT 3.1.1 broker on loopback (demo only)")
    broker.add_argument("--port", type=int, default=1883, help="loopback port (default 1883; 0 = any)")
    broker.set_defaults(func=_broker)


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
