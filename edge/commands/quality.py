"""``branch-edge quality``: distribution of the quality measures over a photo
folder, and how many faces the configured gate passes.  This is the data
behind the ``[quality]`` defaults (README "Face engine")."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from edge.config import load_config
from edge.core.errors import ImageError
from edge.vision.engine import FaceEngine
from edge.vision.imageio import IMAGE_SUFFIXES, load_image

PERCENTILES = (1, 5, 50, 95, 99)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("quality", help="quality-measure percentiles over a photo folder")
    parser.add_argument("--faces", type=Path, required=True, help="folder of <identity>/<images>")
    parser.add_argument("--config", type=Path,
                        help="edge TOML config (default: $BRANCH_EDGE_CONFIG, else built-in)")
    parser.add_argument("--models", type=Path,
                        help="folder with the ONNX files (default: models.dir / $BRANCH_EDGE_MODELS)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def collect(engine: FaceEngine, folder: Path) -> tuple[dict[str, list[float]], dict[str, int], int]:
    measures = ("det_score", "interocular_px", "blur", "yaw_deg", "pitch_deg")
    values: dict[str, list[float]] = {k: [] for k in measures}
    reasons: dict[str, int] = {}
    no_face = 0
    for path in sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES):
        try:
            obs = engine.analyze(load_image(path), max_faces=1, embed=False)
        except ImageError:
            continue
        if not obs:
            no_face += 1
            continue
        q = obs[0].quality
        for key, column in values.items():
            column.append(float(getattr(q, key)))
        for reason in q.failures(engine.cfg.quality) or ["pass"]:
            reasons[reason] = reasons.get(reason, 0) + 1
    return values, reasons, no_face


def run(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    engine = FaceEngine.from_config(cfg, args.models)
    values, reasons, no_face = collect(engine, args.faces)
    stats = {
        key: {f"p{p}": round(float(np.percentile(v, p)), 3) for p in PERCENTILES} if v else {}
        for key, v in values.items()
    }
    report = {"faces": len(values["blur"]), "no_face": no_face, "percentiles": stats,
              "gate": reasons, "limits": cfg.quality.model_dump()}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    print(f"{report['faces']} faces, {no_face} images without a face")
    for key, row in stats.items():
        print(f"{key:<15} " + "  ".join(f"{k}={v:>8}" for k, v in row.items()))
    print("gate:", ", ".join(f"{k}={v}" for k, v in sorted(reasons.items())))
    return 0
