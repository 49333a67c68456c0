"""Accuracy evaluation of a model pack on a labelled photo folder or pair list.

Protocols (README "Evaluation"):

* 1:1 verification: every genuine (same-identity) pair and a seeded sample of
  impostor pairs; TAR at FAR targets with thresholds, EER.
* Open-set 1:N identification as the lobby uses it: half the identities
  (seeded) are enrolled from their first image by file name; their other
  images are mated probes, every image of the other identities is a stranger.
* An image without a usable face (no face found, unreadable file) is a
  failure to acquire: scored ``-inf``, so it is a miss when it should have
  matched and a correct rejection otherwise (see edge.core.accuracy).
* With ``degrade``: the counter's 1:1, an ID-card-like copy of each photo against
  simulated camera frames of the others (edge.tools.counter_eval).

Each image is decoded, detected and embedded once per run.
"""

from __future__ import annotations

import csv
import itertools
import logging
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from edge.config import RecognitionConfig
from edge.core import accuracy as metrics
from edge.core.errors import BranchEdgeError, ImageError
from edge.counter.matching import RECIPE
from edge.tools import counter_eval
from edge.vision.card_photo import CardLook, degrade_card
from edge.vision.engine import FaceEngine
from edge.vision.imageio import load_image
from edge.vision.types import Face

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

FAR_TARGETS = (1e-2, 1e-3, 1e-4)
FPIR_TARGETS = (1e-1, 1e-2, 1e-3)
DEFAULT_SEED = 20240613  # the seed of the reference numbers in shared/models/MANIFEST.md
# Thresholds at FAR 1e-3 / 1e-4 are tail estimates: a 20,000-pair sample (the
# MANIFEST's protocol) moves the faces_asia FAR 1e-3 threshold between 0.428
# and 0.445 from seed to seed, so every pair is used up to a million.
DEFAULT_IMPOSTORS = 1_000_000
PAIR_CHUNK = 65_536
EMBED_CHUNK = 256  # aligned crops held before one batched recognizer call
YES = {"yes", "y", "true", "1", "same"}
NO = {"no", "n", "false", "0", "different"}


class EvaluationError(BranchEdgeError):
    """The evaluation input (folder, pair list, options) cannot be used."""


def rate_key(rate: float) -> str:
    """1e-3 -> "1e-3", 0.05 -> "5e-2": the JSON keys of the rate maps."""
    mantissa, exponent = f"{rate:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


# --- input --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Dataset:
    name: str
    root: Path
    paths: tuple[Path, ...]  # grouped by identity, each group sorted by file name
    labels: tuple[str, ...]  # identity of each path

    @property
    def identities(self) -> list[str]:
        return sorted(set(self.labels))


def visible_files(folder: Path) -> list[Path]:
    # Dot-files (.DS_Store, editor swap files) are not photos of anyone.
    return sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def scan_faces(root: Path) -> Dataset:
    """``root/<identity>/<images>``; every visible file in an identity folder is a sample."""
    if not root.is_dir():
        raise EvaluationError(f"{root}: not a folder of <identity>/<images>")
    paths: list[Path] = []
    labels: list[str] = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = visible_files(folder)
        paths += files
        labels += [folder.name] * len(files)
    if len(set(labels)) < 2:
        raise EvaluationError(f"{root}: need at least 2 identity folders with images")
    return Dataset(root.name, root, tuple(paths), tuple(labels))


@dataclass(frozen=True)
class PairList:
    name: str
    source: Path
    paths: tuple[Path, ...]  # distinct images referenced by the list
    first: np.ndarray  # index into paths, per pair
    second: np.ndarray
    same: np.ndarray  # bool, per pair


def parse_decision(value: str, where: str) -> bool:
    text = value.strip().lower()
    if text in YES or text in NO:
        return text in YES
    raise EvaluationError(f"{where}: Decision must be Yes or No, got {value!r}")


def read_pairs(csv_path: Path) -> PairList:
    """A labelled pair list: columns file_x, file_y, Decision (Yes/No); paths relative to it."""
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise EvaluationError(f"{csv_path}: cannot read pair list: {err}") from err
    if not rows or not {"file_x", "file_y", "Decision"} <= set(rows[0]):
        raise EvaluationError(f"{csv_path}: need a header file_x,file_y,Decision and at least one pair")
    index: dict[Path, int] = {}
    pairs = []
    for line, row in enumerate(rows, start=2):
        where = f"{csv_path}:{line}"
        if not row["file_x"] or not row["file_y"] or row["Decision"] is None:
            raise EvaluationError(f"{where}: incomplete row")
        x, y = (index.setdefault(csv_path.parent / row[k].strip(), len(index)) for k in ("file_x", "file_y"))
        pairs.append((x, y, parse_decision(row["Decision"], where)))
    first, second, same = (np.asarray(col) for col in zip(*pairs, strict=True))
    return PairList(csv_path.stem, csv_path, tuple(index), first, second, same.astype(bool))


# --- acquisition --------------------------------------------------------------------------


@dataclass
class Acquisition:
    """Embeddings of a list of images; rows of failed images are zero and not ``ok``."""

    embeddings: np.ndarray
    ok: np.ndarray
    failures: list[dict[str, str]] = field(default_factory=list)
    quality_flags: Counter[str] = field(default_factory=Counter)
    detect_s: float = 0.0
    embed_s: float = 0.0

    @property
    def unreadable(self) -> int:
        return sum(f["reason"].startswith("unreadable") for f in self.failures)


def progress(items: Sequence[Path], label: str) -> Iterable[Path]:
    if not sys.stderr.isatty():
        return items
    bar: Iterable[Path] = tqdm(items, desc=label, unit="img", leave=False)
    return bar


Degrader = Callable[[np.ndarray, Face], np.ndarray]
DEGRADERS: dict[str, Degrader] = {
    "card": lambda image, face: degrade_card(image, face, CardLook()),
    "card-grey": lambda image, face: degrade_card(image, face, CardLook(grey=True)),
}


class Acquirer:
    """Detects the primary face of each image, aligns it and embeds in batches.

    With a ``degrade`` function the image is first turned into what it would be
    on an ID card (around its primary face) and then detected again.
    """

    def __init__(self, engine: FaceEngine, root: Path, degrade: Degrader | None = None) -> None:
        self.engine = engine
        self.root = root
        self.degrade = degrade

    def name(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def crop(self, path: Path, result: Acquisition) -> np.ndarray | None:
        try:
            image = load_image(path)
        except ImageError as err:
            result.failures.append({"file": self.name(path), "reason": f"unreadable: {err}"})
            return None
        observations = self.engine.analyze(image, max_faces=1, embed=False)
        if observations and self.degrade is not None:
            image = self.degrade(image, observations[0].face)
            observations = self.engine.analyze(image, max_faces=1, embed=False)
        if not observations:
            result.failures.append({"file": self.name(path), "reason": "no face found"})
            return None
        result.quality_flags.update(observations[0].quality.failures(self.engine.cfg.quality))
        return observations[0].aligned

    def run(self, paths: Sequence[Path]) -> Acquisition:
        size = self.engine.embedding_size
        result = Acquisition(np.zeros((len(paths), size), np.float32), np.zeros(len(paths), bool))
        pending: list[tuple[int, np.ndarray]] = []
        for i, path in enumerate(progress(paths, "faces")):
            start = time.perf_counter()
            crop = self.crop(path, result)
            result.detect_s += time.perf_counter() - start
            if crop is not None:
                pending.append((i, crop))
            if len(pending) >= EMBED_CHUNK or (i == len(paths) - 1 and pending):
                self.flush(pending, result)
                pending = []
        return result

    def flush(self, pending: list[tuple[int, np.ndarray]], result: Acquisition) -> None:
        start = time.perf_counter()
        rows = [i for i, _ in pending]
        result.embeddings[rows] = self.engine.embed([crop for _, crop in pending])
        result.ok[rows] = True
        result.embed_s += time.perf_counter() - start


# --- protocols ----------------------------------------------------------------------------


def pair_scores(acq: Acquisition, first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Cosine score per pair; ``-inf`` where either image failed to acquire."""
    emb = acq.embeddings.astype(np.float64)
    scores = np.empty(first.size, dtype=np.float64)
    for start in range(0, first.size, PAIR_CHUNK):
        part = slice(start, start + PAIR_CHUNK)
        scores[part] = np.einsum("ij,ij->i", emb[first[part]], emb[second[part]])
    return np.where(acq.ok[first] & acq.ok[second], scores, -math.inf)


def genuine_pairs(labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label, []).append(i)
    pairs = [p for idx in groups.values() for p in itertools.combinations(idx, 2)]
    arr = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def impostor_pairs(labels: Sequence[str], wanted: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``wanted`` distinct different-identity pairs drawn with ``seed``, or all when fewer exist."""
    codes = np.unique(np.asarray(labels), return_inverse=True)[1]
    n = codes.size
    counts = np.bincount(codes)
    total = n * (n - 1) // 2 - int((counts * (counts - 1) // 2).sum())
    if total <= wanted:
        i, j = np.triu_indices(n, k=1)
        keep = codes[i] != codes[j]
        return i[keep], j[keep]
    return sample_pairs(codes, wanted, np.random.default_rng(seed))


def sample_pairs(codes: np.ndarray, wanted: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Uniform distinct cross-identity pairs, drawn in vectorised rounds (first draws win)."""
    n = codes.size
    keys = np.empty(0, dtype=np.int64)
    while keys.size < wanted:
        a, b = rng.integers(0, n, size=(2, 2 * (wanted - keys.size) + 64))
        cross = codes[a] != codes[b]
        drawn = np.minimum(a, b)[cross] * n + np.maximum(a, b)[cross]
        keys = np.concatenate((keys, drawn))
        _, first = np.unique(keys, return_index=True)
        keys = keys[np.sort(first)]
    keys = np.sort(keys[:wanted])
    return keys // n, keys % n


@dataclass(frozen=True)
class OpenSetSplit:
    gallery: np.ndarray  # image index of each enrolled identity's template
    probes: np.ndarray  # image index of each probe
    mate: np.ndarray  # gallery column of each probe's identity, -1 for strangers
    fallbacks: int  # enrolled identities whose first image had no usable face
    enrolment_failures: int  # enrolled identities with no usable image at all


def enrolment_image(indices: list[int], ok: np.ndarray) -> int:
    """The first image (by file name) that yields a face; the first image when none does."""
    return next((i for i in indices if ok[i]), indices[0])


def split_open_set(
    labels: Sequence[str], ok: np.ndarray, seed: int, enrol_all: bool = False
) -> OpenSetSplit:
    """Half the identities (seeded) enrolled; ``enrol_all`` gives the closed-set split."""
    identities = sorted(set(labels))
    order = np.random.default_rng(seed).permutation(len(identities))
    share = len(identities) if enrol_all else max(1, len(identities) // 2)
    enrolled = {identities[k] for k in order[:share]}
    images: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        images.setdefault(label, []).append(i)
    gallery: list[int] = []
    probes: list[int] = []
    mates: list[int] = []
    fallbacks = failures = 0
    for identity in identities:
        idx = images[identity]
        if identity not in enrolled:
            probes += idx
            mates += [-1] * len(idx)
            continue
        template = enrolment_image(idx, ok)
        fallbacks += template != idx[0] and bool(ok[template])
        failures += not ok[template]
        rest = [i for i in idx if i != template]
        probes += rest
        mates += [len(gallery)] * len(rest)
        gallery.append(template)
    return OpenSetSplit(np.asarray(gallery), np.asarray(probes, dtype=np.int64),
                        np.asarray(mates, dtype=np.int64), fallbacks, failures)


def open_set(acq: Acquisition, split: OpenSetSplit, chunk: int = 2048) -> metrics.OpenSetScores:
    """Probe x gallery cosine scores, summarised chunk by chunk to bound memory."""
    emb = acq.embeddings.astype(np.float64)
    gallery = emb[split.gallery].T
    parts = []
    for start in range(0, split.probes.size, chunk):
        probes = split.probes[start : start + chunk]
        sim: np.ndarray = emb[probes] @ gallery
        sim[~acq.ok[probes], :] = -math.inf
        sim[:, ~acq.ok[split.gallery]] = -math.inf
        parts.append(metrics.open_set_scores(sim, split.mate[start : start + chunk]))
    return metrics.OpenSetScores(*(
        np.concatenate([getattr(p, f) for p in parts]) if parts else np.empty(0)
        for f in ("mate", "mated_best_nonmate", "nonmated_best", "nonmated_second")))


# --- report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    seed: int = DEFAULT_SEED
    impostors: int = DEFAULT_IMPOSTORS
    far_targets: tuple[float, ...] = FAR_TARGETS
    fpir_targets: tuple[float, ...] = FPIR_TARGETS
    # The operating point reported as-is: the configured threshold and margin.
    threshold: float = RecognitionConfig().threshold
    margin: float = RecognitionConfig().margin
    # "card"/"card-grey": 1:1 of an ID-card-like copy of one photo against another photo as-is.
    degrade: str | None = None


def score_summary(scores: np.ndarray, percentiles: Sequence[int]) -> dict[str, float | None]:
    finite = scores[np.isfinite(scores)]
    if finite.size == 0:
        return {}
    out: dict[str, float | None] = {"mean": round(float(finite.mean()), 4)}
    out.update({f"p{p}": round(float(np.percentile(finite, p)), 4) for p in percentiles})
    out["max"] = round(float(finite.max()), 4)
    return out


def rate_maps(points: Sequence[metrics.OperatingPoint], value: str, achieved: str) -> dict[str, Any]:
    def hit_rate(p: metrics.OperatingPoint) -> float:
        return 1.0 - p.miss_rate if value.startswith("tar") else p.miss_rate

    return {
        value: {rate_key(p.target): round(hit_rate(p), 6) for p in points},
        "threshold_" + value.split("_", 1)[1]: {
            rate_key(p.target): finite_or_none(p.threshold) for p in points},
        achieved: {rate_key(p.target): round(p.false_rate, 8) for p in points},
    }


def support_map(points: Sequence[metrics.OperatingPoint], negatives: tuple[str, int],
                positives: tuple[str, int], false_matches: str) -> dict[str, dict[str, Any]]:
    """What each rate rests on: the comparisons behind it, how many a measurement needs
    (edge.core.accuracy.comparisons_needed) and the false matches at its threshold."""
    (negative, n), (positive, p) = negatives, positives
    return {rate_key(point.target): {
        "measurable": metrics.is_measurable(point.target, n),
        negative: n,
        f"{negative}_needed": metrics.comparisons_needed(point.target),
        false_matches: round(point.false_rate * n),
        positive: p,
    } for point in points}


def verification_section(genuine: np.ndarray, impostor: np.ndarray, opts: Options) -> dict[str, Any]:
    if genuine.size == 0 or impostor.size == 0:
        raise EvaluationError("verification needs at least one genuine and one impostor pair")
    result = metrics.verification_metrics(genuine, impostor, opts.far_targets)
    section = rate_maps(result.points, "tar_at_far", "achieved_far")
    section["support_at_far"] = support_map(result.points, ("impostor_pairs", result.n_impostor),
                                            ("genuine_pairs", result.n_genuine), "false_accepts")
    section.update({
        "eer": round(result.eer.eer, 6),
        "eer_threshold": finite_or_none(result.eer.threshold),
        "genuine_pairs": result.n_genuine,
        "impostor_pairs": result.n_impostor,
        "min_resolvable_far": 1.0 / result.n_impostor,
        "genuine_pairs_with_failure": int(np.count_nonzero(np.isinf(genuine))),
        "impostor_pairs_with_failure": int(np.count_nonzero(np.isinf(impostor))),
        "genuine_score": score_summary(genuine, (5,)),
        "impostor_score": score_summary(impostor, (99,)),
        "operating_point": {
            "threshold": opts.threshold,
            "far": round(metrics.accept_rate(impostor, opts.threshold), 8),
            "tar": round(metrics.accept_rate(genuine, opts.threshold), 6),
            "false_accepts": int(np.count_nonzero(impostor >= opts.threshold)),
            "impostor_pairs": result.n_impostor,
            "genuine_accepts": int(np.count_nonzero(genuine >= opts.threshold)),
            "genuine_pairs": result.n_genuine,
        },
    })
    return section


def identification_section(
    scores: metrics.OpenSetScores, split: OpenSetSplit, opts: Options
) -> dict[str, Any]:
    result = metrics.identification_metrics(scores, opts.fpir_targets)
    section = rate_maps(result.points, "fnir_at_fpir", "achieved_fpir")
    section["support_at_fpir"] = support_map(result.points, ("nonmated_probes", result.n_nonmated),
                                             ("mated_probes", result.n_mated), "false_positives")
    fpir_at_op = metrics.fpir(scores, opts.threshold, opts.margin)
    fnir_at_op = metrics.fnir(scores, opts.threshold, opts.margin)
    section.update({
        "rank1": round(result.rank1, 6),
        "gallery_size": int(split.gallery.size),
        "mated_probes": result.n_mated,
        "nonmated_probes": result.n_nonmated,
        "min_resolvable_fpir": 1.0 / result.n_nonmated if result.n_nonmated else None,
        "enrolment_fallbacks": split.fallbacks,
        "enrolment_failures": split.enrolment_failures,
        "operating_point": {
            "threshold": opts.threshold,
            "margin": opts.margin,
            "fpir": round(fpir_at_op, 6),
            "fnir": round(fnir_at_op, 6),
            "false_positives": round(fpir_at_op * result.n_nonmated),
            "nonmated_probes": result.n_nonmated,
            "missed_mated_probes": round(fnir_at_op * result.n_mated),
            "mated_probes": result.n_mated,
        },
    })
    return section


def counts_section(n_images: int, identities: int | None, acq: Acquisition) -> dict[str, Any]:
    return {
        "images": n_images,
        "identities": identities,
        "failures_to_acquire": len(acq.failures),
        "no_face": len(acq.failures) - acq.unreadable,
        "unreadable": acq.unreadable,
        "quality_flagged": dict(sorted(acq.quality_flags.items())),
    }


def timings_section(acq: Acquisition, n_images: int, started: float) -> dict[str, float]:
    faces = max(int(acq.ok.sum()), 1)
    return {
        "total_s": round(time.perf_counter() - started, 2),
        "detect_align_ms_per_image": round(1000 * acq.detect_s / max(n_images, 1), 2),
        "embed_ms_per_face": round(1000 * acq.embed_s / faces, 2),
    }


@dataclass
class Evaluation:
    """The JSON report plus the curves the plots are drawn from."""

    report: dict[str, Any]
    genuine: np.ndarray
    impostor: np.ndarray
    open_set: metrics.OpenSetScores | None

    @property
    def roc(self) -> metrics.Curve:
        return metrics.roc_curve(self.genuine, self.impostor)

    @property
    def det_identification(self) -> metrics.Curve | None:
        return None if self.open_set is None else metrics.det_identification(self.open_set)


def header(engine: FaceEngine, kind: str, name: str, path: Path, opts: Options) -> dict[str, Any]:
    return {
        "schema": "branch-edge-evaluation/1",
        "dataset": {"kind": kind, "name": name, "path": str(path)},
        "model_pack": engine.pack_id,
        "embedding_size": engine.embedding_size,
        "seed": opts.seed,
    }


def evaluate_card_faces(engine: FaceEngine, root: Path, opts: Options) -> Evaluation:
    """1:1 card photo vs live capture as the counter runs it (edge.tools.counter_eval): the
    counter's own score in ``verification``, each step's effect in ``counter``."""
    if opts.degrade not in DEGRADERS:
        raise EvaluationError(f"unknown degradation {opts.degrade!r}; use one of {sorted(DEGRADERS)}")
    started = time.perf_counter()
    data = scan_faces(root)
    acq = counter_eval.CounterAcquirer(engine, root, DEGRADERS[opts.degrade],
                                       grey_live=RECIPE.grey_match and opts.degrade == "card-grey",
                                       ).run(data.paths)
    pairs = counter_eval.counter_pairs(data.labels, opts.impostors, opts.seed)
    main = counter_eval.counter_variant()
    scores = counter_eval.variant_scores(acq, pairs, main)
    genuine, impostor = scores[pairs.genuine], scores[~pairs.genuine]
    live_ok = counter_eval.burst_template(acq.burst[0], acq.burst_quality, main.frames, main.best_of,
                                          main.flip_live)[1]
    card_ok = acq.card_ok[main.card_step]
    report = header(engine, "faces", data.name, root, opts)
    report["dataset"]["degrade"] = opts.degrade
    report["counts"] = {
        "images": len(data.paths), "identities": len(data.identities),
        "failures_to_acquire": int(np.count_nonzero(~(card_ok & live_ok))),
        "card_failures": int(np.count_nonzero(~card_ok)), "live_failures": int(np.count_nonzero(~live_ok)),
    }
    report["verification"] = verification_section(genuine, impostor, opts)
    report["counter"] = counter_eval.counter_section(acq, pairs, counter_eval.COUNTER_RATES)
    report["identification"] = None  # the counter compares one card with one person
    report["failures"] = acq.failures
    report["timings"] = {"total_s": round(time.perf_counter() - started, 2),
                         "acquisition_ms_per_image": round(1000 * acq.seconds / max(len(data.paths), 1), 1)}
    return Evaluation(report, genuine, impostor, None)


def evaluate_faces(engine: FaceEngine, root: Path, opts: Options) -> Evaluation:
    if opts.degrade is not None:
        return evaluate_card_faces(engine, root, opts)
    started = time.perf_counter()
    data = scan_faces(root)
    acq = Acquirer(engine, root).run(data.paths)
    genuine = pair_scores(acq, *genuine_pairs(data.labels))
    impostor = pair_scores(acq, *impostor_pairs(data.labels, opts.impostors, opts.seed))
    split = split_open_set(data.labels, acq.ok, opts.seed)
    scores = open_set(acq, split)
    closed = open_set(acq, split_open_set(data.labels, acq.ok, opts.seed, enrol_all=True))
    report = header(engine, "faces", data.name, root, opts)
    report["counts"] = counts_section(len(data.paths), len(data.identities), acq)
    report["verification"] = verification_section(genuine, impostor, opts)
    report["identification"] = identification_section(scores, split, opts)
    # Every identity enrolled from its first photo, all other photos probes: the
    # protocol of the reference rank-1 numbers in shared/models/MANIFEST.md.
    report["identification"]["closed_set_rank1"] = round(metrics.rank1(closed), 6)
    report["failures"] = acq.failures
    report["timings"] = timings_section(acq, len(data.paths), started)
    return Evaluation(report, genuine, impostor, scores)


def evaluate_pairs(engine: FaceEngine, csv_path: Path, opts: Options) -> Evaluation:
    started = time.perf_counter()
    pairs = read_pairs(csv_path)
    acq = Acquirer(engine, csv_path.parent).run(pairs.paths)
    scores = pair_scores(acq, pairs.first, pairs.second)
    genuine, impostor = scores[pairs.same], scores[~pairs.same]
    report = header(engine, "pairs", pairs.name, csv_path, opts)
    report["counts"] = counts_section(len(pairs.paths), None, acq)
    report["verification"] = verification_section(genuine, impostor, opts)
    report["identification"] = None  # a pair list has no gallery
    report["failures"] = acq.failures
    report["timings"] = timings_section(acq, len(pairs.paths), started)
    return Evaluation(report, genuine, impostor, None)


# --- plots --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Panel:
    filename: str
    kind: str
    x: np.ndarray
    y: np.ndarray
    labels: tuple[str, str]
    log_y: bool
    marks: list[tuple[float, float]]  # the measurable target-rate operating points
    configured: tuple[float, float]  # the configured threshold's (false rate, hit or miss rate)
    configured_label: str
    floor: tuple[float, float]  # smallest non-zero rate each axis can show (1 / comparisons)


def measurable_marks(section: dict[str, Any], rate: str, hit: str,
                     as_miss: bool) -> list[tuple[float, float]]:
    support, achieved, hits = section[f"support_at_{rate}"], section[f"achieved_{rate}"], section[hit]
    return [(achieved[k], 1.0 - hits[k] if as_miss else hits[k])
            for k in achieved if support[k]["measurable"]]


def plot_panels(evaluation: Evaluation) -> list[Panel]:
    ver, roc = evaluation.report["verification"], evaluation.roc
    op = ver["operating_point"]
    label = (f"configured threshold {op['threshold']}: FAR {op['false_accepts']}/{op['impostor_pairs']}, "
             f"TAR {op['genuine_accepts']}/{op['genuine_pairs']}")
    floor = (1.0 / max(ver["impostor_pairs"], 1), 1.0 / max(ver["genuine_pairs"], 1))
    panels = [
        Panel("roc.png", "ROC (1:1)", roc.false_rate, 1.0 - roc.miss_rate, ("FAR", "TAR"), False,
              measurable_marks(ver, "far", "tar_at_far", False), (op["far"], op["tar"]), label, floor),
        Panel("det.png", "DET (1:1)", roc.false_rate, roc.miss_rate, ("FAR", "FRR"), True,
              measurable_marks(ver, "far", "tar_at_far", True), (op["far"], 1.0 - op["tar"]), label, floor),
    ]
    det = evaluation.det_identification
    if det is not None:
        ide = evaluation.report["identification"]
        op = ide["operating_point"]
        label = (f"configured threshold {op['threshold']}, margin {op['margin']}: "
                 f"FPIR {op['false_positives']}/{op['nonmated_probes']}, "
                 f"FNIR {op['missed_mated_probes']}/{op['mated_probes']}")
        panels.append(Panel("det_identification.png", "DET (open-set 1:N)", det.false_rate,
                            det.miss_rate, ("FPIR", "FNIR"), True,
                            measurable_marks(ide, "fpir", "fnir_at_fpir", False), (op["fpir"], op["fnir"]),
                            label, (1.0 / max(ide["nonmated_probes"], 1), 1.0 / max(ide["mated_probes"], 1))))
    return panels


def on_log_axis(value: float, floor: float) -> float:
    """A zero rate drawn at the smallest rate the comparisons can show (a log axis has no 0)."""
    return max(value, floor)


def draw_panel(panel: Panel, title: str) -> Figure:
    # Imported here: matplotlib costs every other command's start-up time.  The
    # Figure API draws with the Agg canvas, no pyplot, no GUI backend, no Qt.
    from matplotlib.figure import Figure  # noqa: PLC0415

    fig = Figure(figsize=(6, 4.5), dpi=100)
    ax = fig.add_subplot()
    ax.step(panel.x, panel.y, where="post")
    if panel.marks:
        ax.plot(*zip(*panel.marks, strict=True), "o", label="target rates (measurable ones)")
    x, y = panel.configured
    label = panel.configured_label
    if x <= 0.0 or (panel.log_y and y <= 0.0):
        label += " (a rate of 0 drawn at 1 / comparisons)"
    x = on_log_axis(x, panel.floor[0])
    y = on_log_axis(y, panel.floor[1]) if panel.log_y else y
    ax.plot([x], [y], "*", color="crimson", markersize=14, label=label)
    ax.set_xscale("log")
    if panel.log_y:
        ax.set_yscale("log")
    ax.set(xlabel=panel.labels[0], ylabel=panel.labels[1], title=f"{panel.kind}: {title}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="best", fontsize="x-small")
    fig.tight_layout()
    return fig


def write_plots(evaluation: Evaluation, folder: Path) -> list[Path]:
    """ROC and DET curves as PNG files in ``folder``, the configured operating point
    marked on each; returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    report = evaluation.report
    title = f"{report['dataset']['name']} — pack {report['model_pack']}"
    written = []
    for panel in plot_panels(evaluation):
        draw_panel(panel, title).savefig(folder / panel.filename)
        written.append(folder / panel.filename)
    return written
