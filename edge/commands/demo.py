"""``branch-edge demo``: the demo branch end to end (what `make demo` runs)."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("demo", help="enrol a fictional demo branch and identify probe photos")
    parser.add_argument("--out", type=Path, default=Path("demo-output"), help="output folder")
    parser.add_argument("--faces", type=Path, help="labelled photos (default: $BRANCH_EDGE_DATA/faces)")
    parser.add_argument("--config", type=Path,
                        help="edge TOML config (default: $BRANCH_EDGE_CONFIG, else built-in)")
    parser.add_argument("--models", type=Path,
                        help="folder with the ONNX files (default: models.dir / $BRANCH_EDGE_MODELS)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.config import load_config
    from edge.core.errors import BranchEdgeError
    from edge.tools.demo.branch import default_faces_dir, run_demo

    faces = args.faces or default_faces_dir()
    if not faces.is_dir():
        raise BranchEdgeError(f"no photo folder at {faces}: set BRANCH_EDGE_DATA or pass --faces")
    run_demo(args.out, faces, load_config(args.config), args.models)
    return 0
