"""``branch-edge bench notify``: time to notify, end to end.

From the first frame in which an enrolled customer's face is at least the
minimum size (the synthetic video's ground truth) to the arrival received by
a subscribed PAD: synthetic lobby video at real-time pacing → the real daemon
→ outbox → broker (the embedded one unless ``[mqtt] host`` is set) → subscriber.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from edge.config import EdgeConfig, load_config
from edge.enrol.enrolment import enrol_folder
from edge.store.crypto import load_key_ring
from edge.store.database import Store
from edge.tools.demo.branch import (
    default_background_video,
    default_faces_dir,
    open_demo_store,
    plan_demo_branch,
    write_customers_csv,
)
from edge.tools.demo.lobby import run_lobby_demo
from edge.vision.engine import FaceEngine


def register(benches: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = benches.add_parser("notify", help="time to notify: face big enough -> arrival on a PAD")
    parser.add_argument("--faces", type=Path, help="labelled photos (default: $BRANCH_EDGE_DATA/faces)")
    parser.add_argument("--visitors", type=int, default=8, help="customers walking in (default 8)")
    parser.add_argument("--strangers", type=int, default=3, help="strangers walking in (default 3)")
    parser.add_argument("--seconds", type=float, default=40.0, help="video length (default 40)")
    parser.add_argument("--config", type=Path,
                        help="edge TOML config (default: $BRANCH_EDGE_CONFIG, else built-in)")
    parser.add_argument("--models", type=Path,
                        help="folder with the ONNX files (default: models.dir / $BRANCH_EDGE_MODELS)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def measure(cfg: EdgeConfig, faces: Path, out: Path, args: argparse.Namespace) -> dict[str, Any]:
    people, _ = plan_demo_branch(faces)
    customers = out / "customers.csv"
    write_customers_csv(people, faces, customers)
    engine = FaceEngine.from_config(cfg, args.models)
    with open_demo_store(out, cfg) as store:
        enrol_folder(store, engine, cfg, faces, customers_csv=customers, actor="bench", progress=False)
    keys = load_key_ring(cfg.store, out / "demo-store.key")
    lines: list[str] = []
    summary = run_lobby_demo(
        out / "lobby", faces, cfg, engine, customers_csv=customers,
        open_store=lambda: Store.open(out / "demo.db", keys, create=False),
        visitors=args.visitors, strangers=args.strangers, seconds=args.seconds, pace="native",
        background_video=default_background_video(faces), show=lines.append)
    return {"bench": "notify", "pace": "native", "analyse_fps": 10.0, **summary,
            "target": {"time_to_notify_p95_ms": 500}}


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    faces = args.faces or default_faces_dir()
    with tempfile.TemporaryDirectory(prefix="bench-notify-") as tmp:
        result = measure(cfg, faces, Path(tmp), args)
    result.pop("pad_card_screenshots", None)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        ttn = result.get("time_to_notify_ms", {})
        print(f"time to notify over {ttn.get('count', 0)} arrivals: p50 {ttn.get('p50')} ms, "
              f"p95 {ttn.get('p95')} ms (target p95 <= 500 ms)", file=sys.stdout)
    return 0
