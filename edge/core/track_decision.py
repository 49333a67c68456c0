"""Per-track open-set identity decision (pure).

Each embedded frame of a track contributes the gallery's ranked customers and a
quality weight (``FaceQuality.score``).  Over the most recent ``window`` frames
the track's score for a customer is the quality-weighted mean of that customer's
per-frame scores; a frame that did not rank the customer counts with its lowest
ranked score (an upper bound of what the customer scored there).  The track is:

- ``accepted`` when the aggregate passes the gallery's open-set rule (threshold and
  margin over the runner-up, :func:`edge.core.gallery.decide`) **and** at least
  ``min_frames`` frames of the window ranked that customer first at or above the
  threshold (one lucky frame is not enough);
- ``unknown`` once ``max_embeds_per_track`` frames were embedded without an
  acceptance, or earlier, after ``min_frames`` frames, when even the best
  customer's aggregate is more than ``give_up_margin`` below the threshold: the
  pipeline stops embedding it (a stranger, or ambiguous);
- ``pending`` otherwise.  Accepted and unknown are final.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from edge.core.gallery import CustomerScore, Decision, decide

State = Literal["pending", "accepted", "unknown"]
# Frames with no quality at all still count a little (never divide by zero).
MIN_WEIGHT = 1e-3


class DecisionRule(Protocol):
    @property
    def min_frames(self) -> int: ...
    @property
    def max_embeds_per_track(self) -> int: ...
    @property
    def window(self) -> int: ...
    @property
    def give_up_margin(self) -> float: ...


@dataclass(frozen=True)
class FrameEvidence:
    ranked: tuple[CustomerScore, ...]  # best first, one entry per customer
    weight: float

    @property
    def floor(self) -> float:
        return self.ranked[-1].score if self.ranked else 0.0

    def score_of(self, customer_id: str) -> float:
        for entry in self.ranked:
            if entry.customer_id == customer_id:
                return entry.score
        return self.floor


def aggregate(frames: Sequence[FrameEvidence]) -> list[CustomerScore]:
    """Quality-weighted mean score per customer ranked in any frame, best first."""
    customers = sorted({e.customer_id for f in frames for e in f.ranked})
    weights = [max(f.weight, MIN_WEIGHT) for f in frames]
    total = sum(weights)
    scores = [
        CustomerScore(c, sum(w * f.score_of(c) for w, f in zip(weights, frames, strict=True)) / total)
        for c in customers
    ]
    return sorted(scores, key=lambda s: (-s.score, s.customer_id))


def agreeing_frames(frames: Iterable[FrameEvidence], customer_id: str, threshold: float) -> int:
    return sum(
        1 for f in frames
        if f.ranked and f.ranked[0].customer_id == customer_id and f.ranked[0].score >= threshold
    )


@dataclass
class TrackEvidence:
    """The evolving evidence of one track; only numbers and customer ids."""

    window: int
    frames: deque[FrameEvidence] = field(init=False)
    embeds: int = 0
    state: State = "pending"
    decision: Decision | None = None

    def __post_init__(self) -> None:
        self.frames = deque(maxlen=self.window)

    @property
    def customer_id(self) -> str | None:
        return self.decision.customer_id if self.state == "accepted" and self.decision else None

    def add(self, frame: FrameEvidence, threshold: float, margin: float, rule: DecisionRule) -> State:
        if self.state != "pending":
            return self.state
        self.frames.append(frame)
        self.embeds += 1
        decision = decide(aggregate(self.frames), threshold, margin)
        self.decision = decision
        best = decision.best
        if decision.accepted and best is not None and \
                agreeing_frames(self.frames, best.customer_id, threshold) >= rule.min_frames:
            self.state = "accepted"
        elif self.embeds >= rule.max_embeds_per_track or self._hopeless(threshold, rule):
            self.state = "unknown"
        return self.state

    def _hopeless(self, threshold: float, rule: DecisionRule) -> bool:
        """After ``min_frames`` frames, nobody in the gallery comes within
        ``give_up_margin`` of the threshold: a stranger, decided early."""
        if self.embeds < rule.min_frames or self.decision is None:
            return False
        best = self.decision.best
        return best is None or best.score < threshold - rule.give_up_margin
