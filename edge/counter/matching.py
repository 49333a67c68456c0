"""The counter's 1:1 check: one ID-card chip photo against several live frames, scored by
every recognizer of the model pack.

* **Card photo** (102x126, about 1 KB on the chip, often years old): detected with the
  engine's padding retry (about one chip photo in six needs it), aligned, and embedded as it
  is and mirrored (the two averaged).  Upscaling it before detection, and undoing its colour
  cast and faded contrast, are available (``MatchRecipe``) but measured no better on
  card-like photos (docs/evaluation/counter-2026-12-02.md), so the recipe leaves the photo
  as it is.
* **Live frames**: a face and the quality gate on each (done by the verifier), then the
  ``frames`` best by :meth:`FaceQuality.score`, each embedded; the embeddings are averaged
  per recognizer.  Mirroring the live crops too is available but buys half a point for a
  third more embedding time, so the recipe does not.
* **Score**: the cosine of card and live per recognizer (the lobby's recognizer and the
  pack's verifiers), averaged.  A monochrome card photo is compared with the live crops in
  colour: comparing it with grey live crops scores a point higher at its own threshold, but
  grey-to-grey impostor scores run higher, so the pack's thresholds (calibrated on colour
  cards) would let through 1.5 to 2.4 times the intended false accepts; in colour they hold
  (0.88e-3 at the 1e-3 threshold on grey card photos).

The pack's ``counter_thresholds`` were calibrated on exactly this score
(``branch-edge evaluate --faces … --degrade card``), so the recipe and the thresholds
change together.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from edge.vision.engine import FaceEngine
from edge.vision.types import FaceObservation

Colour = Literal["as-is", "balance"]


@dataclass(frozen=True)
class MatchRecipe:
    frames: int = 3  # best live frames fused
    flip_card: bool = True  # embed the card crop mirrored too and average the two
    flip_live: bool = False  # the same for every live crop
    card_upscale: float = 1.0  # resize factor of the chip photo before detection (1: none)
    card_colour: Colour = "as-is"  # "balance": grey-world balance and a percentile stretch
    grey_match: bool = False  # compare a monochrome card with grey live crops (see above)
    fuse: bool = True  # every recognizer of the pack; False: the lobby's recognizer alone


RECIPE = MatchRecipe()

# A card photo is "monochrome" when its channels differ this little on average (0..255).
GREY_CHANNEL_SPREAD = 3.0


# --- the card photo ------------------------------------------------------------------------


def balance_colour(image: np.ndarray) -> np.ndarray:
    """Grey-world white balance, then each channel stretched from its 1st to its 99th
    percentile: undoes the yellowing and fading of an old chip photo."""
    pixels = image.astype(np.float32)
    means = pixels.reshape(-1, 3).mean(axis=0)
    pixels *= means.mean() / np.maximum(means, 1.0)
    low, high = np.percentile(pixels.reshape(-1, 3), (1, 99), axis=0)
    stretched = (pixels - low) * (255.0 / np.maximum(high - low, 1.0))
    return np.asarray(np.clip(stretched, 0, 255), dtype=np.uint8)


def is_monochrome(image: np.ndarray) -> bool:
    pixels = image.astype(np.float32)
    spread = np.abs(pixels[..., 0] - pixels[..., 1]) + np.abs(pixels[..., 1] - pixels[..., 2])
    return float(spread.mean()) / 2 < GREY_CHANNEL_SPREAD


def to_grey(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)


def prepare_card(image: np.ndarray, recipe: MatchRecipe = RECIPE) -> np.ndarray:
    if recipe.card_colour == "balance" and not is_monochrome(image):
        image = balance_colour(image)
    if recipe.card_upscale > 1.0:
        image = cv2.resize(image, None, fx=recipe.card_upscale, fy=recipe.card_upscale,
                           interpolation=cv2.INTER_CUBIC)
    return image


def card_observation(engine: FaceEngine, image: np.ndarray,
                     recipe: MatchRecipe = RECIPE) -> FaceObservation | None:
    """The card photo's face, aligned (no embedding yet); ``None`` when none is found."""
    observations = engine.analyze(prepare_card(image, recipe), max_faces=1, embed=False)
    return observations[0] if observations else None


# --- live frames ---------------------------------------------------------------------------


def best_frames(observations: Sequence[FaceObservation], count: int) -> list[FaceObservation]:
    """The ``count`` best faces by quality score (sharp, large, frontal), best first."""
    return sorted(observations, key=lambda o: o.quality.score(), reverse=True)[:max(count, 1)]


# --- templates and the score ---------------------------------------------------------------


Template = tuple[np.ndarray, ...]  # one L2-normalised embedding per recognizer


def unit(rows: np.ndarray) -> np.ndarray:
    return np.asarray(rows / np.maximum(np.linalg.norm(rows, axis=-1, keepdims=True), 1e-12))


def template(engine: FaceEngine, crops: Sequence[np.ndarray], recipe: MatchRecipe = RECIPE,
             grey: bool = False, flip: bool = False) -> Template:
    """Per recognizer: each crop's embedding (averaged with its mirror's when ``flip``)
    normalised, then the crops' mean normalised (edge.tools.counter_eval scores alike)."""
    batch = [to_grey(c) for c in crops] if grey else list(crops)
    count = len(batch)
    if flip:
        batch += [np.ascontiguousarray(c[:, ::-1]) for c in batch]
    out = []
    for model in (engine.recognizers if recipe.fuse else (engine.recognizer,)):
        emb = model.embed(batch).astype(np.float64)
        per_crop = unit((emb[:count] + emb[count:]) / 2 if flip else emb)
        out.append(unit(per_crop.sum(axis=0)).astype(np.float32))
    return tuple(out)


def score(card: Template, live: Template) -> float:
    """The fused 1:1 score: the mean over recognizers of the card-live cosine."""
    return float(np.mean([float(c @ v) for c, v in zip(card, live, strict=True)]))


@dataclass(frozen=True)
class Match:
    score: float | None  # None: no face on the card photo or no usable live frame
    card_face_found: bool
    frames_used: int
    card_monochrome: bool


def match(engine: FaceEngine, card_image: np.ndarray | None, live: Sequence[FaceObservation],
          recipe: MatchRecipe = RECIPE) -> Match:
    """Card photo vs the usable live faces (already through the quality gate)."""
    if card_image is None:
        return Match(None, False, 0, False)
    card = card_observation(engine, card_image, recipe)
    if card is None:
        return Match(None, False, 0, False)
    monochrome = is_monochrome(card_image)
    chosen = best_frames(live, recipe.frames)
    if not live:
        return Match(None, True, 0, monochrome)
    card_t = template(engine, [card.aligned], recipe, flip=recipe.flip_card)
    live_t = template(engine, [o.aligned for o in chosen], recipe, grey=recipe.grey_match and monochrome,
                      flip=recipe.flip_live)
    return Match(score(card_t, live_t), True, len(chosen), monochrome)
