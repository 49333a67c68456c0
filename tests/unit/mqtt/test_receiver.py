"""The receiving side without a broker: bounded decoding, rejections that never escape,
per-device rate limits and the author checks against the roster."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqtt import codec
from mqtt import receiver as receiver_module
from mqtt.dedup import SeenIds
from mqtt.messages import AuthDecision, AuthRequest, CardFields, Claim, DeviceStatus, Outcome, utc_now
from mqtt.ratelimit import TokenBuckets
from mqtt.receiver import Delivery, Receiver
from mqtt.roster import Member, Rejected, Roster, RosterError, check_author
from mqtt.topics import BranchTopics, author_of, parse_topic

T = BranchTopics("b1")
ROSTER = Roster("b1", {
    "rm-1": Member("rm-1", "rm", "RM-01"),
    "rm-2": Member("rm-2", "rm", "RM-02"),
    "teller-1": Member("teller-1", "teller", "t-7"),
    "sup-1": Member("sup-1", "supervisor", "s-1"),
    "edge-1": Member("edge-1", "edge", "edge-1"),
})


def a_claim(device: str = "rm-1", rm: str = "RM-01") -> Claim:
    return Claim(branch_id="b1", arrival_id=str(uuid.uuid4()), visit_id=str(uuid.uuid4()),
                 customer_id="c-1", rm_id=rm, device_id=device)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(handler=None, **kw) -> Receiver:
    return Receiver(SeenIds(":memory:"), handler=handler, **kw)


# --- bounded decoding ------------------------------------------------------------------------


def _body() -> dict[str, object]:
    return json.loads(codec.encode(a_claim()))


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"[" * 100_000 + b"]" * 100_000, "too_deep"),  # RecursionError in json before
        (b'{"a":' * 20 + b"1" + b"}" * 20, "too_deep"),
        # OverflowError before (converting to UTC runs past the end of the calendar)
        (json.dumps({**_body(), "sent_at": "9999-12-31T23:59:59-23:59"}).encode(), "bad_value"),
        (json.dumps({**_body(), "sent_at": "0001-01-01T00:00:00+01:00"}).encode(), "bad_value"),
        (json.dumps({**_body(), "sent_at": "2024-01-01T00:00:00+00:00" + " " * 50}).encode(), "too_long"),
        (json.dumps(_body())[:-1].encode() + b',"x":' + b"9" * 5000 + b"}", "too_long"),  # ValueError
        (json.dumps(_body())[:-1].encode() + b',"x":1e999}', "bad_value"),
        (json.dumps(_body())[:-1].encode() + b',"x":-' + b"1" * 40 + b"}", "too_long"),
        # the depth check skips strings: an unterminated one full of escaped quotes, or a payload
        # of quotes, is looked at once per byte (a backtracking pattern took minutes on these)
        (b'{"x": "' + b'a\\"[' * 60_000, "invalid_json"),
        (b'"' * 250_000, "invalid_json"),
    ],
)
def test_inputs_that_raised_other_errors_are_decode_errors(payload: bytes, reason: str) -> None:
    with pytest.raises(codec.DecodeError) as err:
        codec.decode(payload)
    assert err.value.reason == reason


def test_brackets_inside_strings_do_not_count_as_nesting() -> None:
    text = "[{" * 30 + '\\"' + "]}" * 30
    status = DeviceStatus(branch_id="b1", device_id="pad-1", role="rm", state="online", version=text[:32])
    assert codec.decode(codec.encode(status)) == status
    body = {**_body(), "x": text}
    with pytest.raises(codec.DecodeError, match="unknown_field"):  # parsed: not refused as too deep
        codec.decode(json.dumps(body).encode())


def test_integer_fields_are_bounded() -> None:
    body = json.loads(codec.encode(DeviceStatus(branch_id="b1", device_id="p", role="rm", state="online")))
    for value in (2**53 + 1, -(2**53) - 1):
        with pytest.raises(codec.DecodeError, match="bad_value"):
            codec.decode(json.dumps({**body, "outbox_depth": value}).encode())
    assert codec.decode(json.dumps({**body, "outbox_depth": 2**53}).encode()).outbox_depth == 2**53


nested = st.recursive(st.integers(-(10**6), 10**6) | st.text(max_size=4),
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner,
                                                                                  max_size=3),
                      max_leaves=60)


@given(nested, st.integers(0, 40))
@settings(max_examples=200)
def test_any_nesting_only_ever_raises_decode_error(value: object, depth: int) -> None:
    payload = ("[" * depth + json.dumps(value) + "]" * depth).encode()
    with pytest.raises(codec.DecodeError):
        codec.decode(payload)


# --- the receiver never lets an exception out -----------------------------------------------


def test_a_handler_that_fails_is_a_counted_rejection_and_the_next_message_is_handled() -> None:
    seen: list[Delivery] = []

    def handler(delivery: Delivery) -> None:
        if isinstance(delivery.message, Claim) and delivery.message.customer_id == "boom":
            raise RecursionError("deep inside the handler")
        seen.append(delivery)

    rx = make(handler)
    bad = Claim(**{**a_claim().__dict__, "customer_id": "boom", "id": str(uuid.uuid4())})
    rx.accept(T.claims_of("rm-1"), codec.encode(bad))
    good = a_claim()
    rx.accept(T.claims_of("rm-1"), codec.encode(good))
    assert [d.message for d in seen] == [good]
    stats = rx.stats()
    assert (stats["rejected.handler_error"], stats["handler_errors"], stats["accepted"]) == (1, 1, 1)


def test_a_handler_rejection_is_counted_with_its_reason() -> None:
    def handler(delivery: Delivery) -> None:
        raise Rejected("not_the_visits_customer", "x")

    rx = make(handler)
    rx.accept(T.claims_of("rm-1"), codec.encode(a_claim()))
    assert rx.stats() == {"rejected.not_the_visits_customer": 1, "rejected": 1}


def test_an_unexpected_decoder_failure_costs_one_message(monkeypatch: pytest.MonkeyPatch) -> None:
    calls = []

    def broken(payload: bytes, max_bytes: int) -> object:
        calls.append(payload)
        if len(calls) == 1:
            raise OverflowError("a bug nobody foresaw")
        return codec.decode(payload, max_bytes)

    monkeypatch.setattr(receiver_module, "decode", broken)
    rx = make()
    rx.accept(T.claims_of("rm-1"), codec.encode(a_claim()))
    rx.accept(T.claims_of("rm-1"), codec.encode(a_claim()))
    assert rx.stats()["rejected.undecodable"] == 1 and rx.stats()["accepted"] == 1


def test_a_failing_seen_id_store_delivers_rather_than_loses(tmp_path: Path) -> None:
    seen = SeenIds(tmp_path / "seen.db")
    seen.close()  # every first_time() now raises sqlite3.ProgrammingError
    rx = Receiver(seen)
    rx.accept(T.claims_of("rm-1"), codec.encode(a_claim()))
    assert rx.stats()["accepted"] == 1 and rx.stats()["seen_store_errors"] == 1


def test_anything_raised_anywhere_is_caught_at_the_boundary(monkeypatch: pytest.MonkeyPatch) -> None:
    rx = make()
    monkeypatch.setattr(rx, "_accept", lambda topic, payload: 1 / 0)
    rx.accept(T.arrivals, b"{}")  # does not raise
    assert rx.stats()["rejected.internal_error"] == 1


def test_the_topics_device_must_be_the_messages_device() -> None:
    rx = make()
    rx.accept(T.claims_of("rm-2"), codec.encode(a_claim(device="rm-1")))
    rx.accept(T.auth_response("teller-2"), codec.encode(_response("teller-1")))
    assert rx.stats()["rejected.wrong_device"] == 2


def _response(device: str) -> object:
    from mqtt.messages import AuthResponse

    return AuthResponse(branch_id="b1", request_id=str(uuid.uuid4()), device_id=device, verdict="approve")


# --- per-device rate limits -------------------------------------------------------------------


def test_token_bucket_allows_a_burst_then_the_rate() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate_per_s=2.0, burst=3, clock=clock)
    assert [buckets.allow("a") for _ in range(4)] == [True, True, True, False]
    assert buckets.allow("b")  # another device has its own bucket
    clock.now = 0.5
    assert buckets.allow("a") and not buckets.allow("a")
    clock.now = 100.0
    assert sum(buckets.allow("a") for _ in range(10)) == 3  # refilled to the burst, not beyond


def test_buckets_of_many_devices_stay_bounded() -> None:
    clock = Clock()
    buckets = TokenBuckets(rate_per_s=1.0, burst=2, clock=clock, max_keys=100)
    for i in range(1000):
        buckets.allow(f"d{i}")
    assert len(buckets._buckets) <= 101


def test_a_flooding_device_is_cut_and_other_devices_are_not() -> None:
    clock = Clock()
    got: list[Delivery] = []
    rx = make(got.append, rate_per_s=10.0, burst=20, clock=clock)
    for _ in range(10_000):
        rx.accept(T.claims_of("rm-1"), codec.encode(a_claim()))
    other = a_claim(device="rm-2", rm="RM-02")
    rx.accept(T.claims_of("rm-2"), codec.encode(other))
    arrival_like = rx.stats()
    assert got[-1].message == other
    assert len(got) == 21 and arrival_like["rate_limited"] == 10_000 - 20
    clock.now = 1.0  # a second later rm-1 may send 10 more
    for _ in range(15):
        rx.accept(T.claims_of("rm-1"), codec.encode(a_claim()))
    assert len(got) == 31


def test_edge_authored_leaves_are_not_rate_limited() -> None:
    from tests.mqtt_fixtures import arrival

    rx = make(rate_per_s=1.0, burst=1, clock=Clock())
    for _ in range(5):
        rx.accept(T.arrivals, codec.encode(arrival("b1")))
    assert rx.stats()["accepted"] == 5


# --- authors ------------------------------------------------------------------------------------


def _request(**changes: object) -> AuthRequest:
    values: dict[str, object] = {
        "branch_id": "b1", "expires_at": utc_now() + timedelta(minutes=1), "device_id": "teller-1",
        "teller_id": "t-7", "transaction_id": "tx", "scenario": "s", "account_holder_id": "c",
        "card": CardFields(card_type="resident", id_number="1", name="x")}
    values.update(changes)
    return AuthRequest(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("message", "author", "reason"),
    [
        (a_claim(rm="RM-02"), "rm-1", "wrong_staff"),  # another RM
        (a_claim(rm="RM-99"), "rm-1", "wrong_staff"),  # an RM who does not exist
        (a_claim(device="rm-9", rm="rm-9"), "rm-9", "unknown_device"),
        (a_claim(device="teller-1", rm="t-7"), "teller-1", "wrong_role"),
        (_request(teller_id="t-9"), "teller-1", "wrong_staff"),
        (_request(device_id="rm-1", teller_id="RM-01"), "rm-1", "wrong_role"),
        (AuthDecision(branch_id="b1", request_id=str(uuid.uuid4()), supervisor_id="s-9", device_id="sup-1",
                      decision="approve", reason="r"), "sup-1", "wrong_staff"),
        (DeviceStatus(branch_id="b1", device_id="rm-1", role="edge", state="online"), "rm-1", "wrong_role"),
    ],
)
def test_names_in_a_message_must_be_the_ones_bound_to_its_device(message, author, reason) -> None:
    with pytest.raises(Rejected) as err:
        check_author(message, author, ROSTER)
    assert err.value.reason == reason


def test_the_actor_is_the_rosters_name_or_the_device_without_a_roster() -> None:
    outcome = Outcome(branch_id="b1", arrival_id=str(uuid.uuid4()), visit_id=str(uuid.uuid4()),
                      customer_id="c-1", rm_id="RM-01", device_id="rm-1", result="interested")
    assert check_author(outcome, "rm-1", ROSTER) == "RM-01"
    assert check_author(_request(), "teller-1", ROSTER) == "t-7"
    assert check_author(outcome, "rm-1", None) == "rm-1"


def test_receiver_applies_the_roster_and_hands_on_the_actor() -> None:
    got: list[Delivery] = []
    rx = make(got.append, roster=ROSTER)
    rx.accept(T.claims_of("rm-1"), codec.encode(a_claim(rm="RM-02")))
    rx.accept(T.claims_of("rm-1"), codec.encode(a_claim()))
    assert [(d.author, d.actor) for d in got] == [("rm-1", "RM-01")]
    assert rx.stats()["rejected.wrong_staff"] == 1


def test_topics_name_their_author() -> None:
    assert parse_topic(T.claims_of("rm-1")) == ("b1", "claims/+", "rm-1")
    assert author_of(T.outcomes_of("rm-1")) == "rm-1"
    assert author_of(T.auth_requests_of("teller-1")) == "teller-1"
    assert author_of(T.auth_decisions_of("sup-1")) == "sup-1"
    assert author_of(T.status("edge-1")) == "edge-1"
    assert author_of(T.auth_response("teller-1")) is None  # the recipient, not the author
    assert author_of(T.arrivals) is None


def test_roster_files_round_trip_and_bad_ones_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "roster.json"
    ROSTER.write(path)
    assert Roster.load(path) == ROSTER
    entry = '{"branch_id": "b1", "devices": [{"id": "%s", "role": "%s", "staff_id": "x"}]}'
    for bad in ('{"devices": []}', entry % ("a", "boss"), entry % ("a/b", "rm"), "[" * 5000, "{"):
        path.write_text(bad)
        with pytest.raises(RosterError):
            Roster.load(path)
