"""The card protocol as the counter runs it (``branch-edge evaluate --faces … --degrade card``).

Every photo of a labelled folder plays two parts:

* a **card**: the photo degraded like an ID-card chip photo around its face
  (:mod:`edge.vision.card_photo`), then prepared, detected and embedded as the counter
  does (:mod:`edge.counter.matching`);
* a **live capture**: a simulated burst of counter-camera frames of the photo (small head
  motion, exposure change, sensor noise, some motion blur, JPEG), each through the face
  detector and the quality gate as the verifier does; and, for comparison with earlier
  figures, the photo itself as one live frame.

Genuine comparisons are every card against every *other* photo of its identity; impostor
comparisons are cards against photos of other identities, in both directions (all of them
up to ``Options.impostors``, else a seeded sample).  A card or live capture without a usable
face scores ``-inf``.

Besides the counter's own score (``verification``), the report's ``counter`` section gives
the effect of each step: the card's preparation, mirrored crops, fusing the recognizers, and
the number of live frames; and each recognizer alone.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.core import accuracy as metrics
from edge.core.auth_policy import rate_key
from edge.core.errors import ImageError
from edge.counter.matching import RECIPE, MatchRecipe, card_observation, to_grey
from edge.vision.engine import FaceEngine
from edge.vision.imageio import load_image

BURST = 5  # frames simulated per live capture
# The false-accept rates the policy classes name (edge/counter/policies.toml): the counter's
# thresholds are calibrated at each (a model pack's counter_thresholds).
COUNTER_RATES = (5e-2, 1e-2, 1e-3, 1e-4)
BURST_SEED = 20261202

# Card preparations compared (the counter's recipe leaves the photo as it is).
CARD_STEPS: dict[str, MatchRecipe] = {
    "as_is": replace(RECIPE, card_upscale=1.0, card_colour="as-is"),
    "upscaled": replace(RECIPE, card_upscale=2.0, card_colour="as-is"),
    "upscaled_balanced": replace(RECIPE, card_upscale=2.0, card_colour="balance"),
}


# --- the simulated burst -------------------------------------------------------------------


def simulate_frame(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One counter-camera frame of the person in ``image``: the head moved a little
    (±3°, ±3 % scale, ±2 % shift), exposure changed (gain ±10 %, offset ±8), sensor noise
    (sigma 2 to 5), a motion blur of 3 to 9 px in two frames of five, JPEG 85 to 92."""
    h, w = image.shape[:2]
    matrix = np.asarray(cv2.getRotationMatrix2D((w / 2, h / 2), rng.uniform(-3, 3), rng.uniform(0.97, 1.03)),
                        dtype=np.float64)
    matrix[:, 2] += rng.uniform(-0.02, 0.02, 2) * np.array([w, h], np.float64)
    frame = cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    if rng.random() < 0.4:
        length = int(rng.integers(3, 10))
        kernel = np.zeros((length, length), np.float32)
        kernel[length // 2, :] = 1.0 / length
        rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), rng.uniform(0, 180), 1.0)
        kernel = np.asarray(cv2.warpAffine(kernel, rotation, (length, length)), dtype=np.float32)
        frame = cv2.filter2D(frame, -1, kernel / max(float(kernel.sum()), 1e-6))
    pixels = frame.astype(np.float32) * rng.uniform(0.9, 1.1) + rng.uniform(-8, 8)
    pixels += rng.normal(0.0, rng.uniform(2, 5), pixels.shape).astype(np.float32)
    frame = np.clip(pixels, 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(85, 93))])
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR) if ok else None
    return decoded if decoded is not None else frame


def simulate_burst(image: np.ndarray, count: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [simulate_frame(image, rng) for _ in range(count)]


# --- acquisition ---------------------------------------------------------------------------


@dataclass
class CounterAcquisition:
    """Per image and recognizer, embeddings of each crop as it is and mirrored ([..., 2, d])."""

    names: list[str]  # the recognizers, the lobby's first
    cards: dict[str, list[np.ndarray]]  # card step -> per recognizer (n, 2, d)
    card_ok: dict[str, np.ndarray]
    photo: list[np.ndarray]  # the photo as one live frame: per recognizer (n, 2, d)
    photo_ok: np.ndarray
    burst: list[np.ndarray]  # per recognizer (n, BURST, 2, d)
    burst_quality: np.ndarray  # (n, BURST): quality score, nan where no usable face
    burst_liveness: np.ndarray  # (n, BURST): live probability, nan where no usable face or no model
    failures: list[dict[str, str]] = field(default_factory=list)
    card_pad_retries: int = 0  # card photos whose face was found only on the padded image
    live_frames_unusable: int = 0
    seconds: float = 0.0


def embed_pairs(engine: FaceEngine, crops: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per recognizer: (len(crops), 2, d), each crop as it is and mirrored."""
    if not crops:
        return [np.zeros((0, 2, m.spec.embedding_size), np.float32) for m in engine.recognizers]
    batch = list(crops) + [np.ascontiguousarray(c[:, ::-1]) for c in crops]
    out = []
    for model in engine.recognizers:
        emb = model.embed(batch)
        out.append(np.stack((emb[: len(crops)], emb[len(crops):]), axis=1))
    return out


class CounterAcquirer:
    def __init__(self, engine: FaceEngine, root: Path, degrade: Any, grey_live: bool) -> None:
        self.engine = engine
        self.root = root
        self.degrade = degrade
        self.grey_live = grey_live

    def name(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def usable(self, image: np.ndarray) -> tuple[np.ndarray, float, float] | None:
        """The aligned crop, quality score and live probability of the primary face, if it
        passes the quality gate (as the verifier measures each live frame)."""
        observations = self.engine.analyze(image, max_faces=1, embed=False)
        if not observations or observations[0].quality.failures(self.engine.cfg.quality):
            return None
        found = observations[0]
        live = self.engine.liveness(image, found.face) if self.engine.has_liveness else math.nan
        return (to_grey(found.aligned) if self.grey_live else found.aligned), found.quality.score(), live

    def run(self, paths: Sequence[Path]) -> CounterAcquisition:
        started = time.perf_counter()
        n, dims = len(paths), [m.spec.embedding_size for m in self.engine.recognizers]
        acq = CounterAcquisition(
            names=[m.spec.file for m in self.engine.recognizers],
            cards={s: [np.zeros((n, 2, d), np.float32) for d in dims] for s in CARD_STEPS},
            card_ok={s: np.zeros(n, bool) for s in CARD_STEPS},
            photo=[np.zeros((n, 2, d), np.float32) for d in dims], photo_ok=np.zeros(n, bool),
            burst=[np.zeros((n, BURST, 2, d), np.float32) for d in dims],
            burst_quality=np.full((n, BURST), np.nan), burst_liveness=np.full((n, BURST), np.nan))
        for i, path in enumerate(paths):
            self.one(i, path, acq)
        acq.seconds = time.perf_counter() - started
        return acq

    def one(self, i: int, path: Path, acq: CounterAcquisition) -> None:
        try:
            image = load_image(path)
        except ImageError as err:
            acq.failures.append({"file": self.name(path), "reason": f"unreadable: {err}"})
            return
        observations = self.engine.analyze(image, max_faces=1, embed=False)
        if not observations:
            acq.failures.append({"file": self.name(path), "reason": "no face found"})
            return
        card = self.degrade(image, observations[0].face)
        acq.card_pad_retries += not self.engine.detector.detect(card)
        for step, recipe in CARD_STEPS.items():
            found = card_observation(self.engine, card, recipe)
            if found is None:
                acq.failures.append({"file": self.name(path), "reason": f"no face on the card ({step})"})
                continue
            for r, emb in enumerate(embed_pairs(self.engine, [found.aligned])):
                acq.cards[step][r][i] = emb[0]
            acq.card_ok[step][i] = True
        photo = self.usable(image)
        if photo is not None:
            for r, emb in enumerate(embed_pairs(self.engine, [photo[0]])):
                acq.photo[r][i] = emb[0]
            acq.photo_ok[i] = True
        frames = [self.usable(f) for f in simulate_burst(image, BURST, BURST_SEED + i)]
        kept = [k for k, f in enumerate(frames) if f is not None]
        acq.live_frames_unusable += BURST - len(kept)
        for r, emb in enumerate(embed_pairs(self.engine, [frames[k][0] for k in kept])):  # type: ignore[index]
            acq.burst[r][i, kept] = emb
        for k in kept:
            acq.burst_quality[i, k] = frames[k][1]  # type: ignore[index]
            acq.burst_liveness[i, k] = frames[k][2]  # type: ignore[index]


# --- templates and scores ------------------------------------------------------------------


def normalise(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12))


def crop_template(emb: np.ndarray, flip: bool) -> np.ndarray:
    """(n, 2, d) -> (n, d): the crop's embedding, averaged with its mirror's when ``flip``."""
    return normalise(emb.mean(axis=1) if flip else emb[:, 0])


def burst_template(emb: np.ndarray, quality: np.ndarray, frames: int, best_of: int,
                   flip: bool) -> tuple[np.ndarray, np.ndarray]:
    """(n, BURST, 2, d) -> (n, d) and ok: the first ``best_of`` frames taken, of them the
    ``frames`` usable ones with the best quality averaged."""
    q = np.where(np.isnan(quality[:, :best_of]), -np.inf, quality[:, :best_of])
    order = np.argsort(-q, axis=1)[:, :frames]
    chosen = np.take_along_axis(np.isfinite(q), order, axis=1)
    per_frame = normalise(emb[:, :best_of].mean(axis=2) if flip else emb[:, :best_of, 0])
    picked = np.take_along_axis(per_frame, order[:, :, None], axis=1) * chosen[:, :, None]
    return normalise(picked.sum(axis=1)), np.asarray(chosen.any(axis=1), dtype=bool)


@dataclass(frozen=True)
class Pairs:
    card: np.ndarray
    live: np.ndarray
    genuine: np.ndarray  # bool per pair


def counter_pairs(labels: Sequence[str], impostors: int, seed: int) -> Pairs:
    """Every ordered pair of different photos: genuine when the identity is the same; the
    impostor ones all, or ``impostors`` of them drawn with ``seed``."""
    codes = np.unique(np.asarray(labels), return_inverse=True)[1]
    grid = np.meshgrid(np.arange(codes.size), np.arange(codes.size), indexing="ij")
    card, live = grid[0].ravel(), grid[1].ravel()
    keep = card != live
    card, live = card[keep], live[keep]
    same = codes[card] == codes[live]
    cross = np.flatnonzero(~same)
    if cross.size > impostors:
        cross = np.sort(np.random.default_rng(seed).choice(cross, impostors, replace=False))
    chosen = np.concatenate((np.flatnonzero(same), cross))
    return Pairs(card[chosen], live[chosen], same[chosen])


Side = tuple[list[np.ndarray], np.ndarray]  # templates per recognizer, ok per image


def fused_scores(card_side: Side, live_side: Side, pairs: Pairs, use: Sequence[int]) -> np.ndarray:
    """Mean over the recognizers ``use`` of the card-live cosine; (templates, ok) each side."""
    (card, card_ok), (live, live_ok) = card_side, live_side
    total = np.zeros(pairs.card.size)
    for r in use:
        total += np.einsum("ij,ij->i", card[r][pairs.card].astype(np.float64),
                           live[r][pairs.live].astype(np.float64))
    scores = total / len(use)
    return np.where(card_ok[pairs.card] & live_ok[pairs.live], scores, -math.inf)


@dataclass(frozen=True)
class Variant:
    card_step: str = "as_is"
    flip_card: bool = RECIPE.flip_card
    flip_live: bool = RECIPE.flip_live
    fuse: bool = True
    live: str = "burst"  # "burst" (simulated camera frames) or "photo" (the photo itself)
    frames: int = RECIPE.frames
    best_of: int = RECIPE.frames
    only: int | None = None  # one recognizer alone (index)


def variant_scores(acq: CounterAcquisition, pairs: Pairs, v: Variant) -> np.ndarray:
    use = [v.only] if v.only is not None else (list(range(len(acq.names))) if v.fuse else [0])
    card = [crop_template(e, v.flip_card) for e in acq.cards[v.card_step]]
    if v.live == "photo":
        live, live_ok = [crop_template(e, v.flip_live) for e in acq.photo], acq.photo_ok
    else:
        built = [burst_template(e, acq.burst_quality, v.frames, v.best_of, v.flip_live) for e in acq.burst]
        live, live_ok = [b[0] for b in built], built[0][1]
    return fused_scores((card, acq.card_ok[v.card_step]), (live, live_ok), pairs, use)


def counter_variant(recipe: MatchRecipe = RECIPE) -> Variant:
    step = next(s for s, r in CARD_STEPS.items()
                if (r.card_upscale, r.card_colour) == (recipe.card_upscale, recipe.card_colour))
    return Variant(card_step=step, flip_card=recipe.flip_card, flip_live=recipe.flip_live, fuse=recipe.fuse,
                   frames=recipe.frames,
                   best_of=recipe.frames)


# Each step adds one thing to the one before; then the number of live frames (three is the
# counter's recipe); then the card preparations the recipe does not use; then (in the report)
# each recognizer alone.
STEPS: tuple[tuple[str, Variant], ...] = (
    ("lobby recognizer, card as it is, the photo as the live frame",
     Variant(flip_card=False, fuse=False, live="photo")),
    ("+ the card crop and its mirror image averaged", Variant(fuse=False, live="photo")),
    ("+ every recognizer of the pack, scores averaged", Variant(live="photo")),
    ("live: 1 simulated camera frame", Variant(frames=1, best_of=1)),
    ("live: 2 camera frames fused", Variant(frames=2, best_of=2)),
    ("live: 3 camera frames fused (the counter)", Variant(frames=3, best_of=3)),
    ("live: best 3 of 5 camera frames", Variant(frames=3, best_of=5)),
    ("live: 5 camera frames fused", Variant(frames=5, best_of=5)),
    ("live crops mirrored too (not in the recipe)", Variant(flip_live=True)),
    ("card upscaled x2 before detection (not in the recipe)", Variant(card_step="upscaled")),
    ("card upscaled x2, colour balanced and stretched (not in the recipe)",
     Variant(card_step="upscaled_balanced")),
)


def step_rates(genuine: np.ndarray, impostor: np.ndarray,
               far_targets: Sequence[float]) -> dict[str, Any]:
    points = [metrics.tar_at_far(genuine, impostor, far) for far in far_targets]
    return {
        "tar_at_far": {rate_key(p.target): round(1.0 - p.miss_rate, 6) for p in points},
        "threshold_at_far": {rate_key(p.target): p.threshold if math.isfinite(p.threshold) else None
                             for p in points},
        "measurable": {rate_key(p.target): metrics.is_measurable(p.target, impostor.size) for p in points},
    }


def threshold_for(impostor: np.ndarray, rate: float) -> float:
    """The calibrated cosine for a false-accept rate, rounded up to four decimals (so the
    rounded threshold never accepts more impostors), as packs record it."""
    exact = metrics.threshold_at_rate(impostor, rate)
    return math.ceil(exact * 10_000 - 1e-9) / 10_000 if math.isfinite(exact) else exact


def live_medians(acq: CounterAcquisition, v: Variant) -> np.ndarray:
    """Per live capture: the median live probability over the frames the variant fuses
    (the verifier's liveness score); nan where none."""
    q = np.where(np.isnan(acq.burst_quality[:, :v.best_of]), -np.inf, acq.burst_quality[:, :v.best_of])
    order = np.argsort(-q, axis=1)[:, :v.frames]
    live = np.take_along_axis(acq.burst_liveness[:, :v.best_of], order, axis=1)
    out = np.full(live.shape[0], np.nan)
    for i, row in enumerate(live):
        finite = row[np.isfinite(row)]
        if finite.size:
            out[i] = float(np.median(finite))
    return out


def policy_classes() -> list[dict[str, Any]]:
    """The shipped policy file's classes with the rates their scenarios use."""
    from edge.counter.policies import load_policies  # noqa: PLC0415  # the service's room

    groups: dict[tuple[str, float, float, bool, float], list[str]] = {}
    for p in load_policies(pack=None).scenarios.values():
        if p.match_far is None or p.escalate_far is None:
            continue
        key = (p.risk_class, p.match_far, p.escalate_far, p.auto_approve, p.liveness_threshold)
        groups.setdefault(key, []).append(p.name)
    return [{"class": c, "match_far": m, "escalate_far": e, "auto_approve": a, "liveness_threshold": lt,
             "scenarios": names} for (c, m, e, a, lt), names in groups.items()]


def automation(scores: np.ndarray, pairs: Pairs, live: np.ndarray) -> list[dict[str, Any]]:
    """Per class of the policy file: of the genuine customers, how many the 1:1 check approves
    (with and without the liveness check on the same frames), sends to a supervisor or
    rejects; of the impostors, how many it accepts.  A class without automatic approval
    approves nobody by design; its shares say what the supervisor is shown."""
    genuine, impostor = scores[pairs.genuine], scores[~pairs.genuine]
    live_genuine = live[pairs.live[pairs.genuine]]
    rows = []
    for group in policy_classes():
        match_at = threshold_for(impostor, group["match_far"])
        escalate_at = threshold_for(impostor, group["escalate_far"])
        matched = genuine >= match_at
        alive = np.nan_to_num(live_genuine, nan=-1.0) >= group["liveness_threshold"]
        rows.append({
            **group, "match_threshold": match_at, "escalate_threshold": escalate_at,
            "genuine_pairs": int(genuine.size), "impostor_pairs": int(impostor.size),
            "face_match_pass": round(float(matched.mean()), 6),
            "face_match_and_liveness_pass": round(float((matched & alive).mean()), 6),
            "automation_rate": round(float((matched & alive).mean()), 6) if group["auto_approve"] else 0.0,
            "supervisor_band": round(float(((genuine >= escalate_at) & ~matched).mean()), 6),
            "rejected": round(float((genuine < escalate_at).mean()), 6),
            "false_accepts": int(np.count_nonzero(impostor >= match_at)),
            "far": round(float(np.count_nonzero(impostor >= match_at) / impostor.size), 8),
            "far_measurable": metrics.is_measurable(group["match_far"], impostor.size),
        })
    return rows


def counter_section(acq: CounterAcquisition, pairs: Pairs, far_targets: Sequence[float],
                    recipe: MatchRecipe = RECIPE) -> dict[str, Any]:
    def rates(v: Variant) -> dict[str, Any]:
        s = variant_scores(acq, pairs, v)
        return step_rates(s[pairs.genuine], s[~pairs.genuine], far_targets)

    main = counter_variant(recipe)
    main_scores = variant_scores(acq, pairs, main)
    impostor = main_scores[~pairs.genuine]
    live = live_medians(acq, main)
    return {
        "recipe": asdict(recipe),
        "recognizers": acq.names,
        "burst_frames_simulated": BURST,
        "steps": [{"step": label, **rates(v)} for label, v in STEPS],
        "each_recognizer": [{"recognizer": name, **rates(replace(main, only=r))}
                            for r, name in enumerate(acq.names)],
        # what a pack records as its counter_thresholds (rounded up to four decimals)
        "counter_thresholds": {rate_key(r): threshold_for(impostor, r) for r in far_targets},
        "automation": automation(main_scores, pairs, live),
        "liveness_below_threshold_share": round(float(np.mean(~(np.nan_to_num(live, nan=-1.0) >= 0.5))), 6),
        "card_pad_retries": acq.card_pad_retries,
        "live_frames_unusable": acq.live_frames_unusable,
        "live_frames_simulated": BURST * len(acq.photo_ok),
        "acquisition_s": round(acq.seconds, 1),
    }
