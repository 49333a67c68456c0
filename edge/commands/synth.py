"""``branch-edge synth lobby``: a synthetic lobby video with ground truth (see ``edge.tools.synth``)."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from edge.commands.argtypes import bounded_float, bounded_int
from edge.tools.synth import SynthError, SynthSpec, generate_lobby, write_customers_csv


def default_background() -> Path | None:
    data = os.environ.get("BRANCH_EDGE_DATA")
    return Path(data) / "video" / "royal_opera_house_walk_1080p.mp4" if data else None


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("synth", help="synthetic test media with ground truth")
    kinds = parser.add_subparsers(dest="synth_command", required=True, metavar="KIND")
    lobby = kinds.add_parser("lobby", help="people walking toward a lobby camera, from face photos")
    lobby.add_argument("--faces", type=Path, required=True, help="folder of <identity>/<LFW photos>")
    lobby.add_argument("--out", type=Path, required=True, help="video file to write (.mp4)")
    lobby.add_argument("--truth", type=Path, required=True, help="ground-truth JSON to write")
    who = lobby.add_mutually_exclusive_group()
    who.add_argument("--customers", type=Path, help="customers CSV (customer_id,photo): who is enrolled")
    who.add_argument("--enrolled", type=bounded_int(0, 50), default=3,
                     help="pick this many enrolled customers (default 3)")
    lobby.add_argument("--strangers", type=bounded_int(0, 50), default=2,
                       help="strangers walking in (default 2)")
    lobby.add_argument("--customers-out", type=Path, help="write the enrolled people as a customers CSV")
    lobby.add_argument("--seconds", type=bounded_float(2.0, 600.0), default=16.0,
                       help="video length in seconds (default 16)")
    lobby.add_argument("--fps", type=bounded_float(1.0, 60.0), default=12.0,
                       help="frames per second (default 12)")
    lobby.add_argument("--size", default="960x540", help="WxH (default 960x540)")
    lobby.add_argument("--background", type=Path, default=default_background(),
                       help="video whose first frame (blurred) is the lobby; default the opera walk")
    lobby.add_argument("--seed", type=int, default=7,
                       help="seed of who walks in, when and where (default 7)")
    lobby.add_argument("--json", action="store_true", help="print the ground truth as JSON")
    lobby.set_defaults(func=run)


def parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise SynthError(f"--size must be WxH, e.g. 960x540, got {text!r}") from None
    if not (160 <= width <= 3840 and 120 <= height <= 2160) or width % 2 or height % 2:
        raise SynthError(f"--size {text}: even sides within 160x120 .. 3840x2160")
    return width, height


def run(args: argparse.Namespace) -> int:
    width, height = parse_size(args.size)
    spec = SynthSpec(width=width, height=height, fps=args.fps, seconds=args.seconds,
                     walk_s=min(5.0, args.seconds * 0.6))
    truth = generate_lobby(args.faces, args.out, args.truth, enrolled=args.enrolled, strangers=args.strangers,
                           customers_csv=args.customers, spec=spec, seed=args.seed,
                           background_video=args.background)
    if args.customers_out:
        write_customers_csv(truth, args.customers_out)
    if args.json:
        print(json.dumps(truth))
    else:
        people = truth["people"]
        assert isinstance(people, list)
        enrolled = sum(1 for p in people if p["enrolled"])
        print(f"wrote {args.out} ({truth['frames']} frames, {width}x{height} at {args.fps:g} fps): "
              f"{enrolled} enrolled, {len(people) - enrolled} strangers; ground truth {args.truth}")
    return 0
