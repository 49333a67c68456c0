"""A retraction (the customer's consent was withdrawn) on the PAD, without a broker: the feed
drops the customer's arrivals and refuses them later; the journal on disk deletes them so
that the live face is not left in the file."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from mqtt.messages import Retraction, utc_now
from mqtt.receiver import Delivery
from ui.console import ConsoleFeed
from ui.state.config import parse_pad_config
from ui.state.feed import ArrivalFeed, new_claim
from ui.state.i18n import Texts
from ui.state.journal import Journal
from ui.state.sample import sample_arrival

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
TOPIC = "bank/v1/branch/b1/"


def retraction(customer_id: str, erased_at: datetime, arrival_ids: tuple[str, ...] = ()) -> Retraction:
    return Retraction(branch_id="b1", expires_at=erased_at + timedelta(minutes=15), customer_id=customer_id,
                      erased_at=erased_at, arrival_ids=list(arrival_ids), sent_at=erased_at)


def test_the_feed_drops_the_customers_arrivals_and_refuses_them_later() -> None:
    feed = ArrivalFeed("rm-1")
    erased = [sample_arrival(customer_id="c-1", seen_at=T0 + timedelta(seconds=s)) for s in (0, 30)]
    other = sample_arrival(customer_id="c-2", seen_at=T0)
    for arrival in (*erased, other):
        assert feed.add(arrival, T0 + timedelta(seconds=31))
    gone = feed.retract(retraction("c-1", T0 + timedelta(seconds=60)))
    assert sorted(a.id for a in gone) == sorted(a.id for a in erased)
    assert [e.arrival.customer.customer_id for e in feed.entries()] == ["c-2"]
    # A late copy (reordered, redelivered under a new visit) is refused...
    late = sample_arrival(customer_id="c-1", seen_at=T0 + timedelta(seconds=50))
    assert not feed.add(late, T0 + timedelta(seconds=61)) and len(feed) == 1
    # ...but the customer seen after the erasure (consented and enrolled again) is shown.
    again = sample_arrival(customer_id="c-1", seen_at=T0 + timedelta(seconds=90))
    assert feed.add(again, T0 + timedelta(seconds=91))


def test_a_retraction_names_arrivals_by_id_too() -> None:
    feed = ArrivalFeed("rm-1")
    arrival = sample_arrival(customer_id="c-1", seen_at=T0 + timedelta(seconds=120))
    feed.add(arrival, T0 + timedelta(seconds=121))
    assert [a.id for a in feed.retract(retraction("c-9", T0, (arrival.id,)))] == [arrival.id]


def test_retractions_are_forgotten_when_they_expire() -> None:
    feed = ArrivalFeed("rm-1")
    feed.retract(retraction("c-1", T0))
    assert feed.retracted(sample_arrival(customer_id="c-1", seen_at=T0))
    feed.expire(T0 + timedelta(minutes=15))
    assert not feed.retracted(sample_arrival(customer_id="c-1", seen_at=T0))


def raw(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def unique_part(face: str | None, other: str | None) -> bytes:
    """60 characters of ``face``'s base64 that the other arrival's face does not contain (JPEG
    headers are alike; the picture data is not)."""
    assert face and other
    part = next(face[i:i + 60] for i in range(len(face) // 2, len(face) - 60) if face[i:i + 60] not in other)
    return part.encode()


def test_the_journal_deletes_the_arrivals_claims_and_face_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "pad.journal.db"
    journal = Journal(path)
    now = utc_now()
    erased = sample_arrival(customer_id="c-1", seen_at=now - timedelta(seconds=30), seed=1)
    other = sample_arrival(customer_id="c-2", seen_at=now - timedelta(seconds=20), seed=2)
    claim = new_claim(erased, "rm-1", "rm-1", "claim")
    for topic, message in (("arrivals", erased), ("arrivals", other), ("claims/rm-1", claim)):
        journal.record(Delivery(TOPIC + topic, message))
    face = unique_part(erased.thumbnail_jpeg_b64, other.thumbnail_jpeg_b64)
    assert face in raw(path)
    cut = retraction("c-1", now)
    assert journal.retract(cut) == 2
    journal.record(Delivery(TOPIC + "retractions", cut))
    assert [d.message.id for d in journal.replay()] == [other.id, cut.id]
    assert face not in raw(path), "the live face is still in the file"
    # Journaled, the retraction also stops a late copy from being recorded and shown again.
    assert journal.retracted(sample_arrival(customer_id="c-1", seen_at=now - timedelta(seconds=5)))
    assert not journal.retracted(other)
    journal.close()
    reopened = Journal(path)
    assert reopened.retracted(sample_arrival(customer_id="c-1", seen_at=now - timedelta(seconds=5)))
    reopened.close()


def test_a_retraction_ignores_what_it_does_not_cover(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.db")
    arrival = sample_arrival(customer_id="c-1", seen_at=utc_now())
    journal.record(Delivery(TOPIC + "arrivals", arrival))
    assert journal.retract(retraction("c-1", utc_now() - timedelta(minutes=1), (str(uuid.uuid4()),))) == 0
    assert [d.message.id for d in journal.replay()] == [arrival.id]
    journal.close()


def test_the_console_pad_drops_a_retracted_customer_too() -> None:
    out = io.StringIO()
    view = ConsoleFeed(parse_pad_config({"branch_id": "b1", "mqtt": {"device_id": "rm-1"}}), Texts("en"), out)
    erased, other = (sample_arrival(customer_id=c, seen_at=utc_now()) for c in ("c-1", "c-2"))
    view.handle(erased)
    view.handle(other)
    view.handle(retraction("c-1", utc_now()))
    assert [e.arrival.customer.customer_id for e in view.feed.entries()] == ["c-2"]
    assert out.getvalue().splitlines()[-1].endswith("  - c-1")
    view.handle(sample_arrival(customer_id="c-1", seen_at=utc_now() - timedelta(seconds=1)))  # a late copy
    assert len(view.feed) == 1
