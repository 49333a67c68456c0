"""``branch-edge calibrate``: the recognition threshold for a target false-match rate,
measured on faces like the customers', optionally written into the TOML config.

Thresholds belong to the population and to the recognizer: impostor scores
on East Asian faces run much higher than on LFW, and every model has its own
score scale.  So the threshold is calibrated per deployment, not guessed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import tempfile
import tomllib
from pathlib import Path
from typing import Any

from edge.commands.evaluate import add_engine_arguments, run_evaluation
from edge.config import parse_config
from edge.core import accuracy as metrics
from edge.core.errors import ConfigError
from edge.tools.evaluate import Evaluation, EvaluationError, rate_key
from models.pack import load_pack

SECTION_RE = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")
THRESHOLD_RE = re.compile(r"^(\s*)threshold\s*=")


def target_rate(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1, e.g. 1e-3")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("calibrate", help="recognition threshold for a target FAR or FPIR")
    parser.add_argument("--faces", type=Path, required=True,
                        help="folder of <identity>/<images> that look like the customers")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--target-far", type=target_rate, help="1:1 false accept rate, e.g. 1e-3")
    target.add_argument("--target-fpir", type=target_rate,
                        help="open-set false positive identification rate, e.g. 1e-2")
    parser.add_argument("--write-config", type=Path, metavar="TOML",
                        help="set [recognition] threshold in this config file (created if missing)")
    parser.add_argument("--force", action="store_true",
                        help="with --write-config: write the threshold even when the faces are too few "
                             "to measure the target rate")
    add_engine_arguments(parser)
    parser.set_defaults(func=run)


def round_up(threshold: float) -> float:
    """Four decimals, rounded up so the rounded threshold never accepts more impostors."""
    return math.ceil(threshold * 10_000 - 1e-9) / 10_000


def calibration(evaluation: Evaluation, far: float | None, fpir: float | None) -> dict[str, Any]:
    if far is not None:
        point = metrics.tar_at_far(evaluation.genuine, evaluation.impostor, far)
        negatives, positives = evaluation.impostor.size, evaluation.genuine.size
        kind, value = "far", round_up(point.threshold)
        false_rate = metrics.accept_rate(evaluation.impostor, value)
        miss_rate = 1.0 - metrics.accept_rate(evaluation.genuine, value)
    else:
        if fpir is None or evaluation.open_set is None:
            raise EvaluationError("an FPIR target needs a folder of identities")
        point = metrics.fnir_at_fpir(evaluation.open_set, fpir)
        negatives, positives = evaluation.open_set.nonmated_best.size, evaluation.open_set.mate.size
        kind, value = "fpir", round_up(point.threshold)
        false_rate = metrics.fpir(evaluation.open_set, value)
        miss_rate = metrics.fnir(evaluation.open_set, value)
    if not math.isfinite(value):
        raise EvaluationError("no threshold meets that target on these faces")
    return {
        "target": {kind: point.target},
        "threshold": value,
        "exact_threshold": point.threshold,
        f"achieved_{kind}": false_rate,
        ("tar" if kind == "far" else "fnir"): 1.0 - miss_rate if kind == "far" else miss_rate,
        "negatives": negatives,
        "negatives_needed": metrics.comparisons_needed(point.target),
        "false_matches": round(false_rate * negatives),
        "positives": positives,
        "measurable": metrics.is_measurable(point.target, negatives),
        "resolvable": point.target * negatives >= 1.0,
    }


def config_line(indent: str, value: float, note: str) -> str:
    return f"{indent}threshold = {value}  # {note}\n"


def set_threshold(text: str, value: float, note: str) -> str:
    """``text`` with ``[recognition] threshold`` set to ``value``; the rest is kept as written."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    section, header = None, None
    for i, line in enumerate(lines):
        match = SECTION_RE.match(line)
        if match and not line.lstrip().startswith("[["):
            section = match.group(1).strip()
            header = i if section == "recognition" else header
            continue
        found = THRESHOLD_RE.match(line)
        if section == "recognition" and found:
            lines[i] = config_line(found.group(1), value, note)
            return "".join(lines)
    if header is not None:
        lines.insert(header + 1, config_line("", value, note))
    else:
        lines += ["\n" if lines else "", "[recognition]\n", config_line("", value, note)]
    return "".join(lines)


def write_threshold(path: Path, value: float, note: str, pack_id: str) -> None:
    try:
        old = path.read_text(encoding="utf-8") if path.exists() else ""
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read {path}: {err}") from err
    new = set_threshold(old, value, note)
    try:
        cfg = parse_config(tomllib.loads(new), str(path))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from err
    if cfg.recognition.threshold != value:
        raise ConfigError(f"{path}: could not set recognition.threshold here; edit it by hand")
    if load_pack(cfg.models.pack).id != pack_id:
        raise ConfigError(f"{path} uses model pack {cfg.models.pack!r} but the threshold was "
                          f"calibrated with {pack_id!r}; thresholds do not carry over between packs")
    atomic_write(path, new)


def atomic_write(path: Path, text: str) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        if path.exists():
            os.chmod(tmp, path.stat().st_mode & 0o777)
        os.replace(tmp, path)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"cannot write {path}: {err.strerror}") from err


def describe(result: dict[str, Any], report: dict[str, Any]) -> list[str]:
    (kind, target), = result["target"].items()
    counts = report["counts"]
    trade = (f"TAR {100 * result['tar']:.2f}%" if kind == "far"
             else f"FNIR {100 * result['fnir']:.2f}%")
    lines = [
        f"{report['dataset']['name']}: {counts['images']} images, {counts['identities']} identities, "
        f"{counts['failures_to_acquire']} failures to acquire; pack {report['model_pack']}",
        f"target {kind.upper()} {rate_key(target)} over {result['negatives']} "
        f"{'impostor pairs' if kind == 'far' else 'non-mated probes'}: threshold "
        f"{result['threshold']:.4f} (achieved {kind.upper()} {result[f'achieved_{kind}']:.5f}, {trade})",
    ]
    positives = "genuine pairs" if kind == "far" else "mated probes"
    lines.append(f"  rests on {result['false_matches']} false matches among {result['negatives']} "
                 f"{negatives_word(kind)} and {result['positives']} {positives}")
    if not result["measurable"]:
        lines.append(f"  {not_measurable(result, kind, target)}")
    if not result["resolvable"]:
        lines.append(f"  note: {result['negatives']} negatives cannot resolve {rate_key(target)}; "
                     "the threshold sits above every negative score — use more faces")
    return lines


def negatives_word(kind: str) -> str:
    return "impostor pairs" if kind == "far" else "non-mated probes"


def not_measurable(result: dict[str, Any], kind: str, target: float) -> str:
    return (f"not measurable: {result['negatives']} {negatives_word(kind)} "
            f"({result['negatives_needed']} needed for {kind.upper()} {rate_key(target)}: "
            f"at least {metrics.MIN_FALSE_MATCHES} / rate)")


def run(args: argparse.Namespace) -> int:
    if args.target_fpir is not None:
        _, evaluation = run_evaluation(args, fpir_targets=(args.target_fpir,))
    else:
        _, evaluation = run_evaluation(args, far_targets=(args.target_far,))
    report = evaluation.report
    result = calibration(evaluation, args.target_far, args.target_fpir)
    result.update(model_pack=report["model_pack"], dataset=report["dataset"], counts=report["counts"])
    if args.write_config is not None:
        (kind, target), = result["target"].items()
        if not result["measurable"] and not args.force:
            raise EvaluationError(f"{not_measurable(result, kind, target)}; the threshold would rest on "
                                  f"{result['false_matches']} false matches, so it is not written to "
                                  f"{args.write_config} — use more faces, a higher target, or --force")
        note = (f"calibrated on {report['dataset']['name']}, pack {report['model_pack']}, "
                f"{kind.upper()} {rate_key(target)}")
        if not result["measurable"]:
            note += f" (forced: {result['negatives']} {negatives_word(kind)}, not enough to measure it)"
        write_threshold(args.write_config, result["threshold"], note, report["model_pack"])
        result["written_to"] = str(args.write_config)
    if args.json:
        print(json.dumps(result, indent=2, allow_nan=False))
        return 0
    print("\n".join(describe(result, report)))
    if args.write_config is not None:
        print(f"wrote [recognition] threshold = {result['threshold']} to {args.write_config}")
    return 0
