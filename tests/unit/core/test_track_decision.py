"""Per-track decision (pure): several agreeing good frames, margin, and giving up."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from edge.core.gallery import CustomerScore
from edge.core.track_decision import FrameEvidence, TrackEvidence, aggregate, agreeing_frames

THRESHOLD, MARGIN = 0.44, 0.05


@dataclass(frozen=True)
class Rule:
    min_frames: int = 3
    max_embeds_per_track: int = 8
    window: int = 6
    give_up_margin: float = 2.0  # off unless a test sets it


def frame(weight: float = 1.0, **scores: float) -> FrameEvidence:
    ranked = sorted((CustomerScore(c, s) for c, s in scores.items()), key=lambda e: -e.score)
    return FrameEvidence(tuple(ranked), weight)


def feed(track: TrackEvidence, frames: list[FrameEvidence], rule: Rule) -> list[str]:
    return [track.add(f, THRESHOLD, MARGIN, rule) for f in frames]


def test_accepts_after_min_frames_agreeing_frames():
    rule = Rule(min_frames=3)
    states = feed(TrackEvidence(rule.window), [frame(alice=0.6, bob=0.2)] * 3, rule)
    assert states == ["pending", "pending", "accepted"]



def test_a_score_exactly_at_the_threshold_is_accepted() -> None:
    at = frame(alice=THRESHOLD, bob=0.2)
    assert agreeing_frames([at, at], "alice", THRESHOLD) == 2
    assert agreeing_frames([frame(alice=THRESHOLD - 1e-9, bob=0.2)], "alice", THRESHOLD) == 0
    rule = Rule(min_frames=2)
    track = TrackEvidence(rule.window)
    assert feed(track, [at] * 2, rule) == ["pending", "accepted"]
    assert track.customer_id == "alice"

@given(lucky=st.floats(0.45, 1.0), rest=st.lists(st.floats(-0.2, 0.3), min_size=1, max_size=12))
def test_one_lucky_frame_never_identifies(lucky, rest):
    rule = Rule(min_frames=2, max_embeds_per_track=20, window=20)
    track = TrackEvidence(rule.window)
    states = feed(track, [frame(alice=lucky, bob=0.1)] + [frame(alice=s, bob=0.1) for s in rest], rule)
    assert "accepted" not in states
    assert track.customer_id is None


@given(st.lists(st.floats(0.5, 0.9), min_size=1, max_size=20))
def test_ambiguous_track_stays_unknown(scores):
    # Two customers within the margin of each other on every frame.
    rule = Rule()
    track = TrackEvidence(rule.window)
    states = feed(track, [frame(alice=s, bob=s - 0.01) for s in scores], rule)
    assert "accepted" not in states
    assert track.customer_id is None
    assert states[-1] == ("unknown" if len(scores) >= rule.max_embeds_per_track else "pending")


def test_a_stranger_is_given_up_after_max_embeds_and_stays_unknown():
    rule = Rule(max_embeds_per_track=4)
    track = TrackEvidence(rule.window)
    states = feed(track, [frame(alice=0.2, bob=0.1)] * 4 + [frame(alice=0.9, bob=0.1)] * 5, rule)
    assert states[3:] == ["unknown"] * 6
    assert track.embeds == 4


@given(st.lists(st.tuples(st.floats(-1, 1), st.floats(-1, 1), st.floats(0, 1)), min_size=1, max_size=10))
def test_aggregate_is_a_weighted_mean_within_the_frame_scores(rows):
    frames = [frame(w, alice=a, bob=b) for a, b, w in rows]
    scores = {e.customer_id: e.score for e in aggregate(frames)}
    for name, column in (("alice", 0), ("bob", 1)):
        values = [r[column] for r in rows]
        assert min(values) - 1e-9 <= scores[name] <= max(values) + 1e-9
    ranked = aggregate(frames)
    assert [e.score for e in ranked] == sorted((e.score for e in ranked), reverse=True)


def test_high_quality_frames_outweigh_poor_ones():
    rule = Rule(min_frames=2)
    poor = [frame(0.05, alice=-0.5, bob=0.6)]  # a blurry side view that looks like bob
    good = [frame(1.0, alice=0.7, bob=0.2)] * 2
    track = TrackEvidence(rule.window)
    # Unweighted, alice would average (-0.5 + 0.7 + 0.7) / 3 = 0.3: below the threshold.
    assert feed(track, poor + good, rule) == ["pending", "pending", "accepted"]
    assert track.customer_id == "alice"


def test_a_customer_missing_from_a_frames_top_k_counts_with_its_floor():
    f = frame(alice=0.8, bob=0.3)
    assert f.score_of("carol") == 0.3
    assert FrameEvidence((), 1.0).score_of("carol") == 0.0


def test_a_clear_stranger_is_given_up_after_min_frames():
    rule = Rule(min_frames=3, give_up_margin=0.2)
    track = TrackEvidence(rule.window)
    assert feed(track, [frame(alice=0.1, bob=0.05)] * 3, rule) == ["pending", "pending", "unknown"]


@given(st.lists(st.floats(THRESHOLD - 0.2, 1.0), min_size=1, max_size=8))
def test_a_near_miss_is_not_given_up_early(scores):
    rule = Rule(min_frames=3, max_embeds_per_track=20, give_up_margin=0.2)
    track = TrackEvidence(rule.window)
    states = feed(track, [frame(alice=s, bob=-0.5) for s in scores], rule)
    assert "unknown" not in states


def test_an_empty_gallery_gives_up_after_min_frames():
    rule = Rule(min_frames=2, give_up_margin=0.2)
    track = TrackEvidence(rule.window)
    assert feed(track, [FrameEvidence((), 1.0)] * 2, rule) == ["pending", "unknown"]
