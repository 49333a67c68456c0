"""``branch-edge run``: the camera daemon (what the systemd unit starts)."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("run", help="run the camera daemon: cameras -> arrivals over MQTT")
    parser.add_argument("--config", type=Path, help="edge TOML config (default: $BRANCH_EDGE_CONFIG)")
    parser.add_argument("--models", type=Path, help="model folder (default: models.dir / env)")
    parser.add_argument("--key-file", type=Path, help="store key file (default: from config/env)")
    parser.add_argument("--log-format", choices=("text", "json"), help="override [logging] format")
    parser.add_argument("--until-end", action="store_true",
                        help="exit once every camera's file has ended (demos, tests, benchmarks)")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds (benchmarks)")
    parser.add_argument("--json", action="store_true", help="print the final status as JSON on exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.core.errors import ConfigError
    from edge.counter.policies import load_policies
    from edge.counter.service import AuthService
    from edge.crm.portrait import PortraitBuilder
    from edge.lobby.daemon import EdgeDaemon, package_version
    from edge.lobby.inbound import edge_inbound
    from edge.lobby.status import status_dict
    from edge.logging_setup import configure_logging
    from edge.store.database import Store, open_configured
    from edge.store.retention import RetentionJob
    from edge.vision.engine import FaceEngine
    from mqtt.client import BranchClient, Identity

    cfg = load_config(args.config)
    if not cfg.cameras:
        raise ConfigError("no cameras configured: add a [[cameras]] section (see scripts/edge.sample.toml)")
    configure_logging(cfg.logging.level, args.log_format or cfg.logging.format, file=cfg.logging.file,
                      max_bytes=cfg.logging.max_bytes, backups=cfg.logging.backups)
    engine = FaceEngine.from_config(cfg, args.models)
    identity = Identity(cfg.branch_id, cfg.mqtt.device_id, "edge", package_version()[:32])
    portraits = PortraitBuilder.open(cfg)
    inbound = edge_inbound(cfg, portraits.crm)
    client = BranchClient(cfg.mqtt, identity, receiver=inbound.receiver,
                          subscriptions=inbound.subscriptions)

    def open_store() -> Store:
        return open_configured(cfg.store, None, args.key_file, create=False)

    daemon = EdgeDaemon(cfg, engine, open_store, client, exit_when_sources_end=args.until_end,
                        portraits=portraits)
    if cfg.auth.enabled:
        daemon.services.append(AuthService(engine, open_store, client, load_policies(cfg.auth.policies),
                                           inbox=inbound.auth_inbox, counter_frames=daemon.counter_frames()))
    daemon.services.append(RetentionJob(cfg.retention, open_store, client.outbox))
    if cfg.fleet.enabled:
        from edge.fleet.agent import FleetAgent
        from edge.fleet.contract import branch_contract
        from edge.fleet.keys import load_fleet_keys

        daemon.services.append(FleetAgent(cfg, open_store, client, contract=branch_contract(cfg, args.models),
                                          keys=load_fleet_keys(cfg.fleet), inbox=inbound.fleet_inbox))
    started = time.monotonic()
    try:
        code = daemon.run(args.seconds)
    finally:
        portraits.close()
    seconds = time.monotonic() - started
    final = daemon.final_status or daemon.status()
    summary = {"exit": code, "seconds": round(seconds, 1), "arrivals": daemon.worker.arrivals,
               "analysed_fps_per_camera": {name: round(n / seconds, 2)
                                           for name, n in daemon.worker.analysed.items()},
               "status": status_dict(final)}
    if args.json:
        print(json.dumps(summary, indent=2))
    return code
