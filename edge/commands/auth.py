"""``branch-edge auth``: counter authorization — serve requests, show policies, record
an account holder's ID number (as a keyed hash)."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from edge.config import EdgeConfig, load_config
from edge.core.auth_policy import Policies
from edge.core.idcard_rules import normalize_id_number
from edge.counter.policies import AuthError, load_policies
from edge.counter.service import AuthService, auth_client_parts
from edge.store.database import open_configured
from mqtt.client import BranchClient, Identity


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("auth", help="counter authorization (ID card + face)")
    actions = parser.add_subparsers(dest="auth_command", required=True, metavar="ACTION")
    serve = actions.add_parser("serve", help="answer authorization requests over MQTT until stopped")
    common(serve)
    serve.add_argument("--models", type=Path, help="folder with the ONNX files")
    serve.set_defaults(func=run_serve)
    show = actions.add_parser("policies", help="print the scenario policies in force")
    common(show)
    show.add_argument("--json", action="store_true", help="print JSON")
    show.set_defaults(func=run_policies)
    holder = actions.add_parser("set-holder-id", help="record a customer's ID number (read from stdin)")
    common(holder)
    holder.add_argument("customer_id", help="the customer whose ID number is recorded")
    holder.add_argument("--json", action="store_true", help="print JSON")
    holder.set_defaults(func=run_set_holder)


def common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="edge TOML config (default: built-in)")
    parser.add_argument("--policies", type=Path, help="policy TOML (default: [auth] policies, else shipped)")
    parser.add_argument("--db", type=Path, help="store database (default: [store] path)")
    parser.add_argument("--key-file", type=Path, help="store key file (default: [store] key)")


def policies_of(args: argparse.Namespace, cfg: EdgeConfig) -> Policies:
    """The policies with their false-accept rates resolved for the configured model pack."""
    return load_policies(args.policies or cfg.auth.policies, cfg.models.pack)


def policy_rows(policies: Policies) -> list[dict[str, Any]]:
    return [{
        "scenario": p.name, "title": p.title_zh, "title_en": p.title_en, "class": p.risk_class,
        "checks": sorted(p.checks), "match_threshold": p.match_threshold, "match_far": p.match_far,
        "escalate_threshold": p.escalate_threshold, "escalate_far": p.escalate_far,
        "liveness_threshold": p.liveness_threshold, "min_live_frames": p.min_live_frames,
        "auto_approve": p.auto_approve, "escalation": p.escalation,
        "auto_approve_max_amount": p.auto_approve_max_amount,
    } for p in policies.scenarios.values()]


def run_policies(args: argparse.Namespace) -> int:
    policies = policies_of(args, load_config(args.config))
    rows = policy_rows(policies)
    if args.json:
        print(json.dumps({"escalation_timeout_s": policies.escalation_timeout_s,
                          "scenarios": rows}, ensure_ascii=False, indent=2))
        return 0
    print(f"escalation timeout {policies.escalation_timeout_s:g} s")
    print(f"{'scenario':<28} {'class':<10} {'match':>6} {'escal.':>6} {'live':>5} {'auto':>5} "
          f"{'limit':>10}  checks")
    for r in rows:
        limit = "-" if r["auto_approve_max_amount"] is None else f"{r['auto_approve_max_amount']:g}"
        print(f"{r['scenario']:<28} {r['class']:<10} {r['match_threshold']:>6.3f} "
              f"{r['escalate_threshold']:>6.3f} "
              f"{r['liveness_threshold']:>5.2f} {'yes' if r['auto_approve'] else 'no':>5} {limit:>10}  "
              f"{','.join(r['checks'])}")
    return 0


def run_set_holder(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    number = normalize_id_number(sys.stdin.readline())
    if not 8 <= len(number) <= 32:
        raise AuthError("give the ID number on standard input (one line)")
    with open_configured(cfg.store, args.db, args.key_file, create=False) as store:
        store.set_holder_id_number(args.customer_id, number, actor="cli")
    if args.json:
        print(json.dumps({"customer_id": args.customer_id, "recorded": True}))
    else:
        print(f"ID number recorded for {args.customer_id} (keyed hash only)")
    return 0


def edge_client(cfg: EdgeConfig) -> BranchClient:
    enabled = cfg.model_copy(update={"auth": cfg.auth.model_copy(update={"enabled": True})})
    receiver, topics = auth_client_parts(enabled)
    return BranchClient(cfg.mqtt, Identity(cfg.branch_id, cfg.mqtt.device_id, "edge"),
                        receiver=receiver, subscriptions=topics)


def run_serve(args: argparse.Namespace) -> int:
    from edge.vision.engine import FaceEngine  # onnxruntime: loaded only when serving

    cfg = load_config(args.config)
    policies = policies_of(args, cfg)
    engine = FaceEngine.from_config(cfg, args.models)
    open_configured(cfg.store, args.db, args.key_file, create=False).close()  # fail early
    client = edge_client(cfg)
    service = AuthService(engine, lambda: open_configured(cfg.store, args.db, args.key_file, create=False),
                          client, policies)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    client.start()
    print(f"serving authorization for branch {cfg.branch_id} "
          f"({len(policies.scenarios)} scenarios); Ctrl-C stops", flush=True)
    try:
        service.run(stop)
    finally:
        client.stop()
    return 0
