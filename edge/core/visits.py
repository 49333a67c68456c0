"""Visits (pure): one arrival per customer per visit, across every camera.

A customer's visit starts with the first recognition (from any camera) and lasts
while they keep being seen: each recognition, or a ``touch`` for a customer whose
accepted track is still alive, moves ``last_seen``.  Unseen for ``absence_s``,
the visit ends.  A new visit produces an arrival only if the previous arrival is
at least ``cooldown_s`` old, so somebody who steps out for a minute and back does
not notify the RM twice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar


class VisitRules(Protocol):
    @property
    def absence_s(self) -> float: ...
    @property
    def cooldown_s(self) -> float: ...


class Sighting(Protocol):
    @property
    def customer_id(self) -> str: ...
    @property
    def ts(self) -> float: ...


S = TypeVar("S", bound=Sighting)


@dataclass(frozen=True)
class ArrivalDecision(Generic[S]):
    customer_id: str
    visit_id: str
    recognition: S


@dataclass
class Visit:
    visit_id: str
    started: float
    last_seen: float


def new_visit_id() -> str:
    return uuid.uuid4().hex


class VisitBook(Generic[S]):
    def __init__(self, rules: VisitRules, make_id: Callable[[], str] = new_visit_id) -> None:
        self.rules = rules
        self.make_id = make_id
        self.visits: dict[str, Visit] = {}
        self.last_arrival: dict[str, float] = {}

    def observe(self, sighting: S) -> ArrivalDecision[S] | None:
        """An arrival when this sighting starts a new visit outside the cooldown."""
        cid, ts = sighting.customer_id, sighting.ts
        self.expire(ts)
        visit = self.visits.get(cid)
        if visit is not None:
            visit.last_seen = max(visit.last_seen, ts)
            return None
        visit = Visit(self.make_id(), ts, ts)
        self.visits[cid] = visit
        previous = self.last_arrival.get(cid)
        if previous is not None and ts - previous < self.rules.cooldown_s:
            return None
        self.last_arrival[cid] = ts
        return ArrivalDecision(cid, visit.visit_id, sighting)

    def touch(self, customer_ids: Iterable[str], ts: float) -> None:
        """Customers still seen (their accepted track lives on): their visit goes on."""
        for cid in customer_ids:
            visit = self.visits.get(cid)
            if visit is not None:
                visit.last_seen = max(visit.last_seen, ts)

    def expire(self, now: float) -> list[str]:
        """End visits unseen for ``absence_s``; returns the customers whose visit ended."""
        ended = [c for c, v in self.visits.items() if now - v.last_seen > self.rules.absence_s]
        for cid in ended:
            del self.visits[cid]
        old = [c for c, t in self.last_arrival.items()
               if c not in self.visits and now - t >= self.rules.cooldown_s]
        for cid in old:  # nothing about a customer outlives its purpose
            del self.last_arrival[cid]
        return ended

    def in_visit(self, customer_id: str) -> bool:
        return customer_id in self.visits
