"""Where the daemon's outbox is, and which waiting arrivals an erasure takes out of it.

The store records the outboxes its daemons opened, so ``branch-edge erase`` reaches them with
no flag at all; ``forget_withdrawn`` is the daemon's own sweep before it sends anything.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from edge.config import StoreConfig
from edge.lobby.arrivals import Sighting, build_arrival
from edge.store.base import utc_now
from edge.store.crypto import generate_key_file
from edge.store.database import Store, open_configured
from edge.store.retention import (
    MAX_OUTBOX_PATHS,
    arrival_withdrawn,
    forget_withdrawn,
    known_outboxes,
    remember_outbox,
)
from mqtt.codec import encode
from mqtt.messages import Arrival
from mqtt.outbox import Outbox

FACE = np.random.default_rng(5).integers(0, 255, (96, 96, 3), dtype=np.uint8)


@pytest.fixture
def store(tmp_path: Path):  # -> Iterator[Store]
    generate_key_file(tmp_path / "k.key")
    with open_configured(StoreConfig(path=tmp_path / "edge.db", key_file=tmp_path / "k.key")) as opened:
        for cid in ("C1", "C2", "C3"):
            opened.upsert_customer(cid, "test", display_name="Ms Example", tier="gold")
            opened.record_consent(cid, "paper-form", utc_now() - timedelta(hours=1), "test")
        yield opened


def arrival(store: Store, cid: str, seen_ago: timedelta = timedelta(0)) -> Arrival:
    customer = store.get_customer(cid)
    assert customer is not None
    return build_arrival("b1", customer, Sighting("lobby-1", utc_now() - seen_ago, FACE))


def put(outbox: Outbox, message: Arrival) -> None:
    outbox.put(message.id, "bank/v1/branch/b1/arrivals", encode(message),
               expires_at=message.expires_at.timestamp())


def waiting(outbox: Outbox) -> set[str]:
    return {p.message_id for p in outbox.pending(limit=100)}


def test_the_store_remembers_the_outboxes_its_daemons_opened(store: Store, tmp_path: Path) -> None:
    assert known_outboxes(store) == []
    first, second = tmp_path / "a" / "outbox.db", tmp_path / "b" / "outbox.db"
    for path in (first, second):
        path.parent.mkdir()
        Outbox(path).close()
    remember_outbox(store, first)
    remember_outbox(store, ":memory:")  # nothing to find later
    remember_outbox(store, second)
    remember_outbox(store, first)  # used again: newest last, listed once
    assert known_outboxes(store) == [second, first]
    second.unlink()
    assert known_outboxes(store) == [first]  # only those that still exist
    for n in range(MAX_OUTBOX_PATHS + 3):
        remember_outbox(store, tmp_path / f"gone-{n}.db")
    assert len(known_outboxes(store, existing=False)) == MAX_OUTBOX_PATHS


def test_a_corrupt_record_is_ignored_not_fatal(store: Store) -> None:
    store.set_meta_value("outbox_paths", "{not json")
    assert known_outboxes(store) == []


def test_forget_withdrawn_drops_exactly_the_withdrawn_customers_arrivals(store: Store,
                                                                       tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    kept, erased, before_consent_again = arrival(store, "C1"), arrival(store, "C2"), arrival(store, "C3")
    for message in (kept, erased, before_consent_again):
        put(outbox, message)
    store.erase_customer("C2", "test", scrub=False)
    store.erase_customer("C3", "test", scrub=False)
    store.record_consent("C3", "app", utc_now() + timedelta(seconds=1), "test")  # consented again
    after_consent_again = arrival(store, "C3", seen_ago=timedelta(seconds=-2))
    put(outbox, after_consent_again)
    assert [arrival_withdrawn(store, a) for a in (kept, erased, before_consent_again, after_consent_again)] \
        == [False, True, True, False]
    assert forget_withdrawn(outbox, store) == 2
    assert waiting(outbox) == {kept.id, after_consent_again.id}
    outbox.close()
