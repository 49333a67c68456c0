"""What the RM's feed shows, without Qt: ordering, expiry, badge count and claim state.

- One entry per visit: a newer arrival for the same visit replaces the older one.
- Order: the RM's own customers first, then everyone else; newest first within each.
- Expired arrivals drop out (:meth:`ArrivalFeed.expire`); an expired arrival is never added.
- A retraction (the customer's consent was withdrawn) removes the arrivals it covers at
  once, and one it covers that comes later (reordered, redelivered) is never added.
- Claims: every RM PAD sees every claim (the ``claims`` topic), and all of them
  apply the same rule, so they agree on the holder without a coordinator: the
  earliest active claim of a visit wins (``sent_at``, then the claim id as a
  tie-break).  A release removes that RM's claim; the next claim in line, if
  any, then holds the visit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal

from mqtt.messages import Arrival, Claim, Outcome, Retraction

OutcomeResult = Literal["contacted", "interested", "declined", "product_sold", "follow_up"]
OUTCOME_RESULTS: tuple[OutcomeResult, ...] = (
    "contacted", "interested", "declined", "product_sold", "follow_up"
)


@dataclass
class FeedEntry:
    arrival: Arrival
    seen: bool = False

    @property
    def id(self) -> str:
        return self.arrival.id


class ArrivalFeed:
    """The arrivals an RM's PAD lists, keyed by visit."""

    def __init__(self, rm_id: str | None) -> None:
        self.rm_id = rm_id
        self._by_visit: dict[str, FeedEntry] = {}
        self._retractions: dict[str, Retraction] = {}  # by id, until they expire

    def add(self, arrival: Arrival, now: datetime) -> bool:
        """Add ``arrival``; ``True`` when it is a visit the feed did not list (badge, sound)."""
        if arrival.is_expired(now) or self.retracted(arrival):
            return False
        old = self._by_visit.get(arrival.visit_id)
        if old is not None:
            if old.id == arrival.id or old.arrival.sent_at > arrival.sent_at:
                return False
            self._by_visit[arrival.visit_id] = FeedEntry(arrival, seen=old.seen)
            return False
        self._by_visit[arrival.visit_id] = FeedEntry(arrival)
        return True

    def expire(self, now: datetime) -> list[Arrival]:
        gone = [e.arrival for e in self._by_visit.values() if e.arrival.is_expired(now)]
        for arrival in gone:
            del self._by_visit[arrival.visit_id]
        for key in [k for k, r in self._retractions.items() if r.is_expired(now)]:
            del self._retractions[key]
        return gone

    def retract(self, retraction: Retraction) -> list[Arrival]:
        """Remove the arrivals ``retraction`` covers (name, live face: gone from the screen now)
        and keep it, so that one of them arriving later is refused; returns what was removed."""
        self._retractions[retraction.id] = retraction
        gone = [e.arrival for e in self._by_visit.values() if retraction.covers(e.arrival)]
        for arrival in gone:
            del self._by_visit[arrival.visit_id]
        return gone

    def retracted(self, arrival: Arrival) -> bool:
        return any(r.covers(arrival) for r in self._retractions.values())

    def is_mine(self, arrival: Arrival) -> bool:
        return self.rm_id is not None and arrival.assigned_rm == self.rm_id

    def entries(self) -> list[FeedEntry]:
        newest_first = sorted(self._by_visit.values(), key=lambda e: e.arrival.seen_at, reverse=True)
        return sorted(newest_first, key=lambda e: not self.is_mine(e.arrival))

    def find(self, arrival_id: str) -> FeedEntry | None:
        return next((e for e in self._by_visit.values() if e.id == arrival_id), None)

    def by_visit(self, visit_id: str) -> FeedEntry | None:
        return self._by_visit.get(visit_id)

    def mark_seen(self, arrival_id: str) -> None:
        entry = self.find(arrival_id)
        if entry is not None:
            entry.seen = True

    @property
    def unseen(self) -> int:
        return sum(not e.seen for e in self._by_visit.values())

    def __len__(self) -> int:
        return len(self._by_visit)


@dataclass(frozen=True)
class ClaimState:
    holder: str | None  # rm id, None when nobody holds the visit
    mine: bool

    @property
    def free(self) -> bool:
        return self.holder is None


@dataclass
class ClaimBook:
    """Active claims per visit; every PAD computes the same holder from the same claims."""

    rm_id: str | None
    _active: dict[str, dict[str, Claim]] = field(default_factory=dict)  # visit -> rm -> claim

    def apply(self, claim: Claim) -> ClaimState:
        claims = self._active.setdefault(claim.visit_id, {})
        if claim.action == "release":
            held = claims.get(claim.rm_id)
            if held is not None and held.sent_at <= claim.sent_at:
                del claims[claim.rm_id]
        elif claim.rm_id not in claims or claims[claim.rm_id].sent_at > claim.sent_at:
            claims[claim.rm_id] = claim
        return self.state(claim.visit_id)

    def holder(self, visit_id: str) -> Claim | None:
        claims = self._active.get(visit_id, {})
        return min(claims.values(), key=lambda c: (c.sent_at, c.id), default=None)

    def state(self, visit_id: str) -> ClaimState:
        first = self.holder(visit_id)
        if first is None:
            return ClaimState(None, mine=False)
        return ClaimState(first.rm_id, mine=first.rm_id == self.rm_id)

    def forget(self, visit_id: str) -> None:
        self._active.pop(visit_id, None)


def new_claim(arrival: Arrival, rm_id: str, device_id: str, action: Literal["claim", "release"]) -> Claim:
    return Claim(
        branch_id=arrival.branch_id,
        arrival_id=arrival.id,
        visit_id=arrival.visit_id,
        customer_id=arrival.customer.customer_id,
        rm_id=rm_id,
        device_id=device_id,
        action=action,
    )


class OutcomeError(ValueError):
    """The outcome form is incomplete; ``key`` names the message to show (ui.state.i18n)."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


@dataclass(frozen=True)
class OutcomeDraft:
    result: OutcomeResult
    product_ids: tuple[str, ...] = ()
    follow_up_on: date | None = None
    note: str = ""


def new_outcome(arrival: Arrival, rm_id: str, device_id: str, draft: OutcomeDraft, today: date) -> Outcome:
    """The Outcome message for ``draft``; raises OutcomeError when the form is incomplete."""
    if draft.result == "product_sold" and not draft.product_ids:
        raise OutcomeError("outcome.need_product")
    if draft.result == "follow_up" and draft.follow_up_on is None:
        raise OutcomeError("outcome.need_date")
    if draft.follow_up_on is not None and draft.follow_up_on < today:
        raise OutcomeError("outcome.past_date")
    return Outcome(
        branch_id=arrival.branch_id,
        arrival_id=arrival.id,
        visit_id=arrival.visit_id,
        customer_id=arrival.customer.customer_id,
        rm_id=rm_id,
        device_id=device_id,
        result=draft.result,
        product_ids=list(draft.product_ids),
        follow_up_on=draft.follow_up_on,
        note=draft.note.strip()[:500],
    )
