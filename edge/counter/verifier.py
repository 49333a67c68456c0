"""Measuring a teller's request: card rules, liveness, face quality, card photo vs live face."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from edge.core import idcard_rules as rules
from edge.core.auth_policy import (
    Evidence,
    Holder,
    ScenarioPolicy,
)
from edge.core.errors import ImageError
from edge.counter.matching import RECIPE, MatchRecipe, match
from edge.store.database import Store
from edge.vision.engine import FaceEngine
from edge.vision.imageio import decode_image
from edge.vision.types import FaceObservation
from mqtt.messages import (
    AuthRequest,
    CardFields,
)

# --- measuring ------------------------------------------------------------------------------


class BadImageError(ValueError):
    """A base64 JPEG in a request that does not decode."""


# The teller page sends frames at most 640 px wide and card photos are 102x126; a 4K
# frame is the largest a request may hold (checked from the header, before decoding).
MAX_REQUEST_PIXELS = 3840 * 2160


def decode_jpeg(b64: str) -> np.ndarray:
    try:
        data = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError) as err:
        raise BadImageError("not base64") from err
    try:
        return decode_image(data, "request image", max_pixels=MAX_REQUEST_PIXELS, formats=("jpeg",))
    except ImageError as err:
        raise BadImageError(f"{err} ({err.code})") from err


def card_problem_codes(card: CardFields, today: dt.date) -> tuple[str, ...]:
    problems = rules.validate_facts(rules.facts_from_wire(card), today)
    return tuple(p.code for p in problems if p.severity == "error")


@dataclass(frozen=True)
class LiveMeasure:
    faces_found: int
    usable: list[FaceObservation]  # faces through the quality gate, not yet embedded
    liveness: list[float]


class Verifier:
    """Turns one request into :class:`Evidence` with the face engine and the store."""

    def __init__(self, engine: FaceEngine, store: Store,
                 counter_frames: Callable[[], list[np.ndarray]] | None = None,
                 recipe: MatchRecipe = RECIPE) -> None:
        self.engine = engine
        self.store = store
        self.counter_frames = counter_frames
        self.recipe = recipe

    def live_images(self, request: AuthRequest) -> list[np.ndarray]:
        """The live frames: from the teller terminal, or from the edge's counter camera
        (none when the request asks for a counter camera this edge does not have)."""
        if request.live_source == "counter_camera":
            return self.counter_frames() if self.counter_frames is not None else []
        return [decode_jpeg(b64) for b64 in request.live_jpeg_b64]

    def holder(self, request: AuthRequest) -> Holder:
        number = rules.normalize_id_number(request.card.id_number)
        found = self.store.holder_id_matches(request.account_holder_id, number)
        return "unknown" if found is None else ("match" if found else "mismatch")

    def live(self, request: AuthRequest, images: list[np.ndarray]) -> LiveMeasure:
        found, usable, scores = 0, [], []
        for image in images:
            observations = self.engine.analyze(image, max_faces=1, embed=False)
            if not observations:
                continue
            found += 1
            obs = observations[0]
            if obs.quality.failures(self.engine.cfg.quality):
                continue
            usable.append(obs)
            if self.engine.has_liveness:
                scores.append(self.engine.liveness(image, obs.face))
        return LiveMeasure(found, usable, scores)

    def evidence(self, request: AuthRequest, policy: ScenarioPolicy) -> Evidence:
        images = self.live_images(request)
        live = self.live(request, images)
        card = None if request.card_photo_jpeg_b64 is None else decode_jpeg(request.card_photo_jpeg_b64)
        # The card photo against the best usable live frames, every recognizer of the pack
        # (edge.counter.matching; the thresholds were calibrated on this very score).
        result = match(self.engine, card, live.usable, self.recipe)
        return Evidence(
            card_problems=card_problem_codes(request.card, dt.date.today()),
            holder=self.holder(request),
            live_supplied=len(images),
            counter_camera_missing=request.live_source == "counter_camera" and not images,
            live_frames=len(live.usable),
            live_scores=tuple(live.liveness),
            live_quality_ok=bool(live.usable) or live.faces_found == 0,
            live_face_found=live.faces_found > 0,
            card_face_found=result.card_face_found,
            match_score=result.score,
            amount=request.amount,
        )
