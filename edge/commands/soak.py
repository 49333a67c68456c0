"""``branch-edge soak``: cameras and PADs under load for minutes; memory, thread,
descriptor and latency trends (edge/tools/soak.py).  Exit 1 when a limit is exceeded."""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from edge.commands.argtypes import bounded_float, bounded_int


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("soak", help="long run with looped cameras and PADs: leaks and latency trends")
    parser.add_argument("--cameras", type=bounded_int(1, 16), default=4, help="looped cameras (default 4)")
    parser.add_argument("--pads", type=bounded_int(1, 200), default=20, help="RM PAD clients (default 20)")
    parser.add_argument("--minutes", type=bounded_float(0.1, 1440.0), default=10.0, help="default 10")
    parser.add_argument("--sample-s", type=bounded_float(0.5, 600.0), default=10.0,
                        help="seconds between samples (default 10)")
    parser.add_argument("--warmup-s", type=bounded_float(0.0, 3600.0), default=60.0,
                        help="thread/fd start is taken after this (default 60)")
    parser.add_argument("--analyse-fps", type=bounded_float(0.5, 30.0), default=5.0,
                        help="per camera (default 5)")
    parser.add_argument("--max-slope", type=bounded_float(0.0, 1e6), default=20.0,
                        help="memory slope limit, MB/hour (default 20)")
    parser.add_argument("--faces", type=Path, help="labelled photos (default: $BRANCH_EDGE_DATA/faces)")
    parser.add_argument("--video", type=Path, help="opera walk video (default: $BRANCH_EDGE_DATA/video/...)")
    parser.add_argument("--models", type=Path, help="model folder (default: $BRANCH_EDGE_MODELS)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def data_dir() -> Path:
    return Path(os.environ.get("BRANCH_EDGE_DATA", "/work/shared/data"))


def run(args: argparse.Namespace) -> int:
    from edge.tools.soak import SoakOptions, run_soak

    video = args.video or data_dir() / "video" / "royal_opera_house_walk_1080p.mp4"
    options = SoakOptions(
        faces_dir=args.faces or data_dir() / "faces", opera_video=video if video.is_file() else None,
        cameras=args.cameras, pads=args.pads, seconds=args.minutes * 60, sample_s=args.sample_s,
        warmup_s=args.warmup_s, analyse_fps=args.analyse_fps, max_slope_mb_h=args.max_slope,
        models_dir=args.models)
    with tempfile.TemporaryDirectory(prefix="branch-edge-soak-") as tmp:
        result = run_soak(options, Path(tmp))
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_summary(result)
    return 0 if result["ok"] else 1


def print_summary(result: dict[str, Any]) -> None:
    mem, lat = result["memory"], result["latency_ms"]["overall"]
    print(f"memory {mem['start_mb']} -> {mem['end_mb']} MB, slope {mem['slope_mb_per_hour']} MB/hour; "
          f"threads {result['threads']['start']} -> {result['threads']['end']}; "
          f"fds {result['fds']['start']} -> {result['fds']['end']}; "
          f"arrivals {result['arrivals']['published']}, latency p50 {lat['p50']} ms p95 {lat['p95']} ms")
    for failure in result["failures"]:
        print(f"FAIL: {failure}")
    print("OK" if result["ok"] else "limits exceeded")
