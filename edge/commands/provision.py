"""``branch-edge provision``: CA, device credentials, Mosquitto config and ACL for one branch.

Exit codes: 0 written; 2 bad arguments or devices file (nothing half-written
is left that a broker would load: the config files are written last).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge.core.errors import BranchEdgeError
from mqtt.provision import ProvisionError, load_devices, provision
from mqtt.provision.run import BrokerOptions, CentralLink
from mqtt.topics import TopicError, check_id


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("provision", help="create the branch broker's CA, device credentials and ACL")
    parser.add_argument("--branch", required=True, help="branch id ([A-Za-z0-9_-]{1,64})")
    parser.add_argument("--devices", type=Path, required=True, help="devices.toml ([[devices]] id, role)")
    parser.add_argument("--out", type=Path, required=True, help="output folder (an existing CA is reused)")
    parser.add_argument("--port", type=int, default=8883, help="TLS listener port (default 8883)")
    parser.add_argument("--bind", default="0.0.0.0", help="listener address (default 0.0.0.0)")
    parser.add_argument("--host", action="append", dest="hosts", metavar="NAME",
                        help="broker host name or IP for its certificate (repeatable; "
                             "default: localhost and 127.0.0.1); the first one goes into devices' mqtt.toml")
    parser.add_argument("--broker-user", default="mosquitto",
                        help="system user Mosquitto drops privileges to (default mosquitto)")
    parser.add_argument("--central", metavar="HOST:PORT", help="head-office broker to bridge to")
    parser.add_argument("--central-ca", type=Path, help="CA certificate of the head-office broker")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def _central(args: argparse.Namespace) -> CentralLink | None:
    if args.central is None:
        if args.central_ca is not None:
            raise BranchEdgeError("--central-ca needs --central HOST:PORT")
        return None
    host, _, port = args.central.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise BranchEdgeError(f"--central must be HOST:PORT, got {args.central!r}")
    if args.central_ca is None or not args.central_ca.is_file():
        raise BranchEdgeError("--central needs --central-ca FILE (the head-office broker's CA)")
    return CentralLink(host, int(port), args.central_ca)


def run(args: argparse.Namespace) -> int:
    if not 0 < args.port < 65536:
        raise BranchEdgeError(f"--port must be 1-65535, got {args.port}")
    try:
        check_id(args.branch, "branch id")
        devices = load_devices(args.devices)
        options = BrokerOptions(
            port=args.port,
            bind=args.bind,
            server_names=tuple(args.hosts or ("localhost", "127.0.0.1")),
            broker_user=args.broker_user,
        )
        result = provision(args.branch, devices, args.out, options, _central(args))
    except (ProvisionError, TopicError) as err:
        raise BranchEdgeError(str(err)) from err
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return 0
    roles = ", ".join(f"{d.id} ({d.role})" for d in devices)
    print(f"provisioned branch {args.branch} in {result.out}")
    print(f"  devices: {roles}")
    print(f"  broker:  mosquitto -c {result.broker_conf}")
    print(f"  each device's files and [mqtt] settings: {result.out / 'devices'}/<id>/")
    print(f"  keep {result.out / 'ca.key'} offline once provisioning is done")
    return 0
