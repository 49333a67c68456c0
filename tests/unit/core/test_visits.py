"""VisitBook (pure): one arrival per customer per visit, across cameras."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from edge.core.visits import VisitBook


@dataclass(frozen=True)
class Rules:
    absence_s: float = 300.0
    cooldown_s: float = 600.0


@dataclass(frozen=True)
class Seen:
    customer_id: str
    ts: float
    camera_id: str = "door"


def book(rules: Rules = Rules()) -> VisitBook[Seen]:
    counter = itertools.count(1)
    return VisitBook(rules, make_id=lambda: f"v{next(counter)}")


def test_several_cameras_and_tracks_make_one_arrival():
    visits = book()
    first = visits.observe(Seen("alice", 10.0, "door"))
    assert first is not None
    assert first.visit_id == "v1"
    assert visits.observe(Seen("alice", 11.0, "counter")) is None
    assert visits.observe(Seen("alice", 200.0, "door")) is None


def test_a_new_visit_after_absence_and_cooldown_notifies_again():
    visits = book(Rules(absence_s=300, cooldown_s=600))
    assert visits.observe(Seen("alice", 0.0)) is not None
    assert visits.observe(Seen("alice", 400.0)) is None  # new visit, inside the cooldown
    again = visits.observe(Seen("alice", 1500.0))
    assert again is not None
    assert again.visit_id == "v3"


def test_touch_keeps_a_visit_alive_while_the_customer_stays():
    visits = book(Rules(absence_s=300, cooldown_s=0))
    visits.observe(Seen("alice", 0.0))
    for ts in range(60, 900, 60):
        visits.touch(["alice"], float(ts))
        assert visits.expire(float(ts)) == []
    assert visits.observe(Seen("alice", 900.0)) is None
    assert visits.expire(1300.0) == ["alice"]
    assert not visits.in_visit("alice")


events = st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.floats(0, 5000)), max_size=60)


@given(events, st.floats(1, 600), st.floats(0, 1200))
def test_arrivals_respect_absence_and_cooldown(raw, absence, cooldown):
    visits = book(Rules(absence, cooldown))
    sightings = sorted((Seen(c, ts) for c, ts in raw), key=lambda s: s.ts)
    last_seen: dict[str, float] = {}
    last_arrival: dict[str, float] = {}
    for s in sightings:
        decision = visits.observe(s)
        if decision is not None:
            assert decision.customer_id == s.customer_id
            if s.customer_id in last_seen:  # a repeat arrival needs both a gap and the cooldown
                assert s.ts - last_seen[s.customer_id] > absence
                assert s.ts - last_arrival[s.customer_id] >= cooldown
            last_arrival[s.customer_id] = s.ts
        elif s.customer_id not in last_seen:
            raise AssertionError("a customer's first sighting must be an arrival")
        last_seen[s.customer_id] = s.ts


@given(events)
def test_every_customer_seen_gets_at_least_one_arrival(raw):
    visits = book()
    arrived = {d.customer_id for s in sorted((Seen(c, t) for c, t in raw), key=lambda s: s.ts)
               if (d := visits.observe(s)) is not None}
    assert arrived == {c for c, _ in raw}
