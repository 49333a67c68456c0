"""The PAD's view logic without Qt: feed order, expiry, one entry per visit, claims, outcomes."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mqtt.messages import Claim
from ui.state.config import parse_pad_config
from ui.state.feed import ArrivalFeed, ClaimBook, OutcomeDraft, OutcomeError, new_claim, new_outcome
from ui.state.i18n import _TABLE, LANGUAGES, Texts
from ui.state.sample import sample_arrival

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def test_own_customers_first_then_newest_first() -> None:
    feed = ArrivalFeed("rm-1")
    other_old = sample_arrival(customer_id="c-1", assigned_rm="rm-2", seen_at=at(0))
    mine_old = sample_arrival(customer_id="c-2", assigned_rm="rm-1", seen_at=at(10))
    other_new = sample_arrival(customer_id="c-3", assigned_rm=None, seen_at=at(20))
    mine_new = sample_arrival(customer_id="c-4", assigned_rm="rm-1", seen_at=at(30))
    for arrival in (other_old, mine_old, other_new, mine_new):
        assert feed.add(arrival, at(31))
    assert [e.arrival.customer.customer_id for e in feed.entries()] == ["c-4", "c-2", "c-3", "c-1"]


def test_expired_arrivals_drop_out_and_are_never_added() -> None:
    feed = ArrivalFeed("rm-1")
    short = sample_arrival(customer_id="c-1", seen_at=at(0), ttl=timedelta(seconds=60))
    long = sample_arrival(customer_id="c-2", seen_at=at(0), ttl=timedelta(seconds=600))
    assert feed.add(short, at(1)) and feed.add(long, at(1))
    assert feed.expire(at(59)) == []
    assert [a.customer.customer_id for a in feed.expire(at(60))] == ["c-1"]
    assert [e.arrival.customer.customer_id for e in feed.entries()] == ["c-2"]
    assert not feed.add(sample_arrival(seen_at=at(0), ttl=timedelta(seconds=5)), at(5))
    assert len(feed) == 1


def test_one_entry_per_visit_and_no_duplicates() -> None:
    feed = ArrivalFeed("rm-1")
    first = sample_arrival(seen_at=at(0))
    assert feed.add(first, at(1))
    assert not feed.add(first, at(2)), "the same arrival again is not new"
    update = sample_arrival(seen_at=at(5), visit_id=first.visit_id, name="更新")
    feed.mark_seen(first.id)
    assert not feed.add(update, at(6)), "an update of a listed visit makes no badge"
    assert [e.arrival.customer.display_name for e in feed.entries()] == ["更新"]
    assert feed.unseen == 0, "the RM already opened this visit"
    assert not feed.add(first, at(7)), "an older arrival never replaces a newer one"
    assert feed.entries()[0].arrival.id == update.id


def test_badge_counts_unopened_visits() -> None:
    feed = ArrivalFeed("rm-1")
    arrivals = [sample_arrival(seen_at=at(i)) for i in range(3)]
    for arrival in arrivals:
        feed.add(arrival, at(5))
    assert feed.unseen == 3
    feed.mark_seen(arrivals[1].id)
    assert feed.unseen == 2


@given(st.lists(st.tuples(st.integers(0, 3600), st.sampled_from(["rm-1", "rm-2", None])), max_size=30))
def test_feed_order_property(items: list[tuple[int, str | None]]) -> None:
    feed = ArrivalFeed("rm-1")
    for offset, rm in items:
        feed.add(sample_arrival(seen_at=at(offset), assigned_rm=rm, ttl=timedelta(hours=2)), at(3600))
    entries = feed.entries()
    assert len(entries) == len(items)
    keys = [(not feed.is_mine(e.arrival), -e.arrival.seen_at.timestamp()) for e in entries]
    assert keys == sorted(keys)


def claim(visit: str, rm: str, seconds: float, action: str = "claim") -> Claim:
    return Claim(branch_id="b1", sent_at=at(seconds), arrival_id=str(uuid.uuid4()), visit_id=visit,
                 customer_id="c-1", rm_id=rm, device_id=f"pad-{rm}", action=action)  # type: ignore[arg-type]


def test_earliest_claim_wins_whatever_the_order_received() -> None:
    visit = str(uuid.uuid4())
    early, late = claim(visit, "rm-2", 1.0), claim(visit, "rm-1", 1.5)
    book_1, book_2 = ClaimBook("rm-1"), ClaimBook("rm-2")
    book_1.apply(late)
    assert book_1.state(visit).mine
    book_1.apply(early)
    for c in (early, late):
        book_2.apply(c)
    assert book_1.state(visit).holder == book_2.state(visit).holder == "rm-2"
    assert not book_1.state(visit).mine and book_2.state(visit).mine


def test_release_frees_the_visit_for_the_next_in_line() -> None:
    visit = str(uuid.uuid4())
    book = ClaimBook("rm-1")
    book.apply(claim(visit, "rm-2", 1))
    book.apply(claim(visit, "rm-1", 2))
    assert book.state(visit).holder == "rm-2"
    book.apply(claim(visit, "rm-2", 3, "release"))
    assert book.state(visit).holder == "rm-1"
    book.apply(claim(visit, "rm-1", 4, "release"))
    assert book.state(visit).free


@given(st.permutations(range(5)))
def test_all_pads_agree_on_the_holder(order: list[int]) -> None:
    visit = str(uuid.uuid4())
    claims = [claim(visit, f"rm-{i}", 10 + i * 0.1) for i in range(5)]
    book = ClaimBook("rm-9")
    for i in order:
        book.apply(claims[i])
    assert book.state(visit).holder == "rm-0"


def test_new_claim_and_outcome_carry_the_visit() -> None:
    arrival = sample_arrival()
    c = new_claim(arrival, "rm-1", "pad-1", "claim")
    assert (c.visit_id, c.arrival_id, c.customer_id) == (arrival.visit_id, arrival.id, "c-1001")
    draft = OutcomeDraft("product_sold", ("td-3y",), date(2026, 12, 10), "  likes CDs ")
    out = new_outcome(arrival, "rm-1", "pad-1", draft, date(2026, 12, 1))
    assert (out.result, out.product_ids, out.follow_up_on, out.note) == (
        "product_sold", ["td-3y"], date(2026, 12, 10), "likes CDs")


@pytest.mark.parametrize(
    ("draft", "key"),
    [
        (OutcomeDraft("product_sold"), "outcome.need_product"),
        (OutcomeDraft("follow_up"), "outcome.need_date"),
        (OutcomeDraft("interested", follow_up_on=date(2026, 11, 30)), "outcome.past_date"),
    ],
)
def test_incomplete_outcomes_are_refused(draft: OutcomeDraft, key: str) -> None:
    with pytest.raises(OutcomeError) as err:
        new_outcome(sample_arrival(), "rm-1", "pad-1", draft, date(2026, 12, 1))
    assert err.value.key == key


def test_every_text_has_both_languages() -> None:
    missing = [k for k, v in _TABLE.items() if set(LANGUAGES) - set(v)]
    assert missing == []
    assert Texts("en")("feed.badge", n=3) == "3 new"
    assert Texts()("feed.badge", n=3) == "新到访 3"
    assert Texts("en")("no.such.key") == "no.such.key"
    with pytest.raises(ValueError, match="unknown language"):
        Texts("fr")


def test_pad_config_reads_the_provisioned_mqtt_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "mqtt.toml").write_text('[mqtt]\nhost = "edge.local"\nport = 8883\ndevice_id = "rm-1"\n')
    cfg = parse_pad_config({"branch_id": "b1", "mqtt_file": "mqtt.toml", "mqtt": {"port": 9999}},
                           base=tmp_path)
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.device_id, cfg.effective_rm_id) == (
        "edge.local", 9999, "rm-1", "rm-1")
    from edge.core.errors import ConfigError

    with pytest.raises(ConfigError, match="role"):
        parse_pad_config({"branch_id": "b1", "role": "janitor", "mqtt": {}})
