"""``branch-edge evaluate``: verification and open-set identification accuracy of a
model pack on a labelled photo folder (or a labelled pair list), as JSON and plots."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edge.config import EdgeConfig, load_config
from edge.core.accuracy import MIN_FALSE_MATCHES
from edge.tools.evaluate import (
    DEFAULT_IMPOSTORS,
    DEFAULT_SEED,
    DEGRADERS,
    Evaluation,
    EvaluationError,
    Options,
    evaluate_faces,
    evaluate_pairs,
    write_plots,
)
from edge.vision.engine import FaceEngine


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="edge TOML config (default: built-in)")
    parser.add_argument("--models", type=Path, help="folder with the ONNX files")
    parser.add_argument("--pack", help="model pack id or manifest path (default: from config)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED,
                        help=f"seed of the impostor sample and the enrolled half (default {DEFAULT_SEED})")
    parser.add_argument("--impostors", type=positive_int, default=DEFAULT_IMPOSTORS,
                        help=f"impostor pairs to sample, all when fewer exist (default {DEFAULT_IMPOSTORS})")
    parser.add_argument("--json", action="store_true", help="print the JSON report on stdout")


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("evaluate", help="accuracy of a model pack on labelled faces")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--faces", type=Path, help="folder of <identity>/<images>")
    source.add_argument("--pairs", type=Path, help="CSV with file_x,file_y,Decision (Yes/No)")
    parser.add_argument("--out", type=Path, help="write the JSON report here")
    parser.add_argument("--plots", type=Path, help="write ROC and DET curves (PNG) into this folder")
    parser.add_argument("--threshold", type=float,
                        help="operating point to report (default: recognition.threshold)")
    parser.add_argument("--degrade", choices=sorted(DEGRADERS),
                        help="with --faces: 1:1 of an ID-card-like copy (102x126, faded, JPEG) "
                             "of each photo against the other photos as they are")
    add_engine_arguments(parser)
    parser.set_defaults(func=run)


def load_engine(args: argparse.Namespace) -> tuple[EdgeConfig, FaceEngine]:
    cfg = load_config(args.config)
    if args.pack:
        cfg = cfg.model_copy(update={"models": cfg.models.model_copy(update={"pack": args.pack})})
    return cfg, FaceEngine.from_config(cfg, args.models)


def options(args: argparse.Namespace, cfg: EdgeConfig, **targets: Any) -> Options:
    threshold = getattr(args, "threshold", None)
    return Options(
        seed=args.seed,
        impostors=args.impostors,
        threshold=cfg.recognition.threshold if threshold is None else threshold,
        margin=cfg.recognition.margin,
        degrade=getattr(args, "degrade", None),
        **targets,
    )


def run_evaluation(args: argparse.Namespace, **targets: Any) -> tuple[EdgeConfig, Evaluation]:
    cfg, engine = load_engine(args)
    opts = options(args, cfg, **targets)
    if args.faces is not None:
        return cfg, evaluate_faces(engine, args.faces, opts)
    if getattr(args, "degrade", None) is not None:
        raise EvaluationError("--degrade works with --faces only")
    if not args.pairs.is_file():
        raise EvaluationError(f"{args.pairs}: no such pair list")
    return cfg, evaluate_pairs(engine, args.pairs, opts)


def write_report(report: dict[str, Any], path: Path) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    except OSError as err:
        raise EvaluationError(f"cannot write report {path}: {err.strerror}") from err


def percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


NEGATIVES = {"far": ("impostor_pairs", "impostor pairs"), "fpir": ("nonmated_probes", "non-mated probes")}
POSITIVES = {"far": ("genuine_pairs", "genuine"), "fpir": ("mated_probes", "mated")}
FALSE_MATCHES = {"far": "false_accepts", "fpir": "false_positives"}


def not_measurable(support: dict[str, Any], rate: str) -> str:
    key, words = NEGATIVES[rate]
    return f"not measurable: {support[key]} {words} ({support[f'{key}_needed']} needed)"


def rests_on(support: dict[str, Any], rate: str) -> str:
    key, words = NEGATIVES[rate]
    positive, positive_words = POSITIVES[rate]
    return (f"{support[FALSE_MATCHES[rate]]} of {support[key]} {words}, "
            f"{support[positive]} {positive_words}")


def rate_table(section: dict[str, Any], value: str, label: str) -> list[str]:
    """One row per target rate: the result and what it rests on, or why it cannot be measured."""
    rate = value.split("_at_")[1]
    lines = [f"  {rate.upper():<6} {label:>8} {'threshold':>10} {'achieved':>10}  rests on"]
    for key, hit in section[value].items():
        support = section[f"support_at_{rate}"][key]
        if not support["measurable"]:
            lines.append(f"  {key:<6} {not_measurable(support, rate)}")
            continue
        threshold = section[f"threshold_at_{rate}"][key]
        shown = "-" if threshold is None else f"{threshold:.4f}"
        lines.append(f"  {key:<6} {percent(hit):>8} {shown:>10} "
                     f"{section[f'achieved_{rate}'][key]:>10.5f}  {rests_on(support, rate)}")
    return lines


def counter_lines(counter: dict[str, Any]) -> list[str]:
    """The counter's 1:1 step by step (card protocol): TAR at each FAR, "-" where unmeasurable."""
    rates = list(counter["steps"][0]["tar_at_far"])
    lines = [f"counter 1:1 step by step (TAR at FAR {', '.join(rates)}; recognizers: "
             f"{', '.join(counter['recognizers'])}):"]
    alone = [{**r, "step": f"{r['recognizer']} alone (the counter's recipe)"}
             for r in counter["each_recognizer"]]
    for row in counter["steps"] + alone:
        cells = [percent(row["tar_at_far"][k]) if row["measurable"][k] else "-" for k in rates]
        lines.append(f"  {' '.join(f'{c:>8}' for c in cells)}  {row['step']}")
    lines.append("counter automation by policy class (genuine customers approved without a supervisor):")
    for row in counter["automation"]:
        far = f"FAR {row['far']:.5f} ({row['false_accepts']} of {row['impostor_pairs']} impostor pairs)"
        lines.append(f"  {row['class']:<10} ({len(row['scenarios'])} scenarios) "
                     f"match at FAR {row['match_far']:g} (>= {row['match_threshold']:.4f}), "
                     f"supervisor from FAR {row['escalate_far']:g}: "
                     f"automated {percent(row['automation_rate'])}, "
                     f"face match {percent(row['face_match_pass'])}, "
                     f"supervisor {percent(row['supervisor_band'])}, rejected {percent(row['rejected'])}; "
                     f"{far}{'' if row['far_measurable'] else ' [not measurable]'}")
    return lines


def summary_lines(report: dict[str, Any]) -> list[str]:
    counts, ver, ide = report["counts"], report["verification"], report["identification"]
    who = f", {counts['identities']} identities" if counts["identities"] is not None else ""
    lines = [f"{report['dataset']['name']}: {counts['images']} images{who}, "
             f"{counts['failures_to_acquire']} failures to acquire; pack {report['model_pack']}, "
             f"seed {report['seed']}",
             f"1:1 verification: {ver['genuine_pairs']} genuine / {ver['impostor_pairs']} impostor "
             f"pairs, EER {percent(ver['eer'])}"]
    lines += rate_table(ver, "tar_at_far", "TAR")
    op = ver["operating_point"]
    lines.append(f"  at threshold {op['threshold']}: TAR {percent(op['tar'])} "
                 f"({op['genuine_accepts']} of {op['genuine_pairs']} genuine pairs), "
                 f"FAR {op['far']:.5f} ({op['false_accepts']} of {op['impostor_pairs']} impostor pairs)")
    if report.get("counter"):
        lines += counter_lines(report["counter"])
    if ide is not None:
        lines.append(f"open-set 1:N: gallery {ide['gallery_size']}, {ide['mated_probes']} mated / "
                     f"{ide['nonmated_probes']} non-mated probes, rank-1 {percent(ide['rank1'])}")
        lines += rate_table(ide, "fnir_at_fpir", "FNIR")
        op = ide["operating_point"]
        lines.append(f"  at threshold {op['threshold']} and margin {op['margin']}: "
                     f"FNIR {percent(op['fnir'])} ({op['missed_mated_probes']} of {op['mated_probes']} "
                     f"mated probes), FPIR {op['fpir']:.4f} ({op['false_positives']} of "
                     f"{op['nonmated_probes']} non-mated probes)")
    lines.append(f"  a rate is measured only from at least {MIN_FALSE_MATCHES} / rate comparisons "
                 f"(at least {MIN_FALSE_MATCHES} false matches expected at it)")
    return lines


def run(args: argparse.Namespace) -> int:
    _, evaluation = run_evaluation(args)
    report = evaluation.report
    if args.plots is not None:
        report["plots"] = [str(p) for p in write_plots(evaluation, args.plots)]
    if args.out is not None:
        write_report(report, args.out)
    if args.json:
        print(json.dumps(report, indent=2, allow_nan=False))
        return 0
    print("\n".join(summary_lines(report)))
    for failure in report["failures"]:
        print(f"  failure to acquire: {failure['file']}: {failure['reason']}")
    for plot in report.get("plots", []):
        print(f"plot written to {plot}")
    if args.out is not None:
        print(f"report written to {args.out}")
    return 0
