"""The message contract: encode/decode are inverse, bad payloads are rejected, schemas are current."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import string
import types
import typing
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mqtt import client as client_module
from mqtt import codec, jsonschema, topics
from mqtt.client import MAX_EXPIRY_INTERVAL_S, BranchClient, Identity
from mqtt.config import MqttConfig
from mqtt.messages import (
    BY_SCHEMA,
    ID_PATTERN,
    MESSAGE_TYPES,
    Arrival,
    Claim,
    CustomerCard,
    DeviceStatus,
    Message,
    Outcome,
    Portrait,
    Retraction,
)

ID_CHARS = string.ascii_letters + string.digits + "_-"
ids = st.text(ID_CHARS, min_size=1, max_size=64)
uuids = st.uuids().map(str)
moments = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


def strategy_for(tp: Any, meta: Any) -> st.SearchStrategy[Any]:  # noqa: PLR0911
    """A Hypothesis strategy for a field, honouring the same limits the decoder enforces."""
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return st.none() | strategy_for(inner, meta)
    if origin is list:
        item = strategy_for(typing.get_args(tp)[0], meta)
        return st.lists(item, max_size=min(3, meta.get("max_items", 3)))
    if origin is Literal:
        return st.sampled_from(typing.get_args(tp))
    if dataclasses.is_dataclass(tp):
        return dataclass_strategy(tp)
    if tp is datetime:
        return moments
    if tp is date:
        return st.dates()
    if tp is bool:
        return st.booleans()
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if tp is int:
        return st.integers(min_value=-codec.MAX_INT, max_value=codec.MAX_INT)
    if meta.get("format") == "uuid":
        return uuids
    if "pattern" in meta:
        if meta["pattern"] == ID_PATTERN:
            return ids
        return st.text("0123456789abcdef", min_size=64, max_size=64)
    return st.text(max_size=min(40, meta.get("max_length", 40)))


def dataclass_strategy(cls: type) -> st.SearchStrategy[Any]:
    fields = {
        f.name: strategy_for(codec.hints(cls)[f.name], f.metadata) for f in dataclasses.fields(cls)
    }
    return st.builds(cls, **fields)


any_message = st.sampled_from(MESSAGE_TYPES).flatmap(dataclass_strategy)
EXPIRING = [c for c in MESSAGE_TYPES if "expires_at" in codec.hints(c)]


@given(any_message)
@settings(max_examples=300, deadline=None)
def test_decode_inverts_encode(message: Message) -> None:
    payload = codec.encode(message)
    assert codec.decode(payload) == message
    assert json.loads(payload)["schema"] == message.schema_tag()


def a_claim() -> Claim:
    return Claim(
        branch_id="b1",
        arrival_id=str(uuid.uuid4()),
        visit_id=str(uuid.uuid4()),
        customer_id="c-42",
        rm_id="rm-7",
        device_id="pad-rm-1",
    )


def mutated(**changes: Any) -> bytes:
    body = codec.to_dict(a_claim())
    for key, value in changes.items():
        if value is ...:
            del body[key]
        else:
            body[key] = value
    return json.dumps(body).encode()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"{not json", "invalid_json"),
        (b"\xff\xfe", "invalid_json"),
        (b'{"schema": "claim/1", "x": NaN}', "invalid_json"),
        (b"[1, 2]", "wrong_type"),
        (mutated(schema="claim/2"), "unknown_version"),
        (mutated(schema="teleport/1"), "unknown_schema"),
        (mutated(schema=...), "unknown_schema"),
        (mutated(rm_id=...), "missing_field"),
        (mutated(rm_id=7), "wrong_type"),
        (mutated(sent_at="yesterday"), "bad_value"),
        (mutated(sent_at="2024-01-01T10:00:00"), "bad_value"),
        (mutated(id="not-a-uuid"), "bad_value"),
        (mutated(action="steal"), "bad_value"),
        (mutated(rm_id="a/b"), "bad_value"),
        (mutated(rm_id="x" * 65), "too_long"),
        (mutated(extra_field=1), "unknown_field"),
    ],
)
def test_bad_payloads_are_rejected_with_a_reason(payload: bytes, reason: str) -> None:
    with pytest.raises(codec.DecodeError) as err:
        codec.decode(payload)
    assert err.value.reason == reason


def an_outcome(note: str) -> Outcome:
    return Outcome(branch_id="b1", arrival_id=str(uuid.uuid4()), visit_id=str(uuid.uuid4()),
                   customer_id="c-42", rm_id="rm-7", device_id="pad-rm-1", result="contacted", note=note)


def test_a_text_field_is_limited_to_its_declared_max_length() -> None:
    # Outcome.note is text(500): the limit travels in the field's metadata to the decoder.
    (note,) = [f for f in dataclasses.fields(Outcome) if f.name == "note"]
    assert note.metadata["max_length"] == 500
    exact = an_outcome("x" * 500)
    assert codec.decode(codec.encode(exact)) == exact
    body = codec.to_dict(an_outcome(""))
    body["note"] = "x" * 501
    with pytest.raises(codec.DecodeError) as err:
        codec.decode(json.dumps(body).encode())
    assert err.value.reason == "too_long"
    with pytest.raises(codec.EncodeError):
        codec.encode(an_outcome("x" * 501))


def test_oversize_payload_is_rejected_before_parsing() -> None:
    payload = codec.encode(a_claim())
    assert codec.decode(payload, max_bytes=len(payload)) == codec.decode(payload)
    with pytest.raises(codec.DecodeError) as err:
        codec.decode(payload, max_bytes=len(payload) - 1)
    assert err.value.reason == "oversize"


def test_encode_refuses_what_receivers_would_reject() -> None:
    with pytest.raises(codec.EncodeError):
        codec.encode(dataclasses.replace(a_claim(), rm_id="has space"))
    with pytest.raises(codec.EncodeError):
        codec.encode(dataclasses.replace(a_claim(), sent_at=datetime(2024, 1, 1)))


@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
@settings(max_examples=300, deadline=None)
def test_random_bytes_only_ever_raise_decode_error(payload: bytes) -> None:
    with contextlib.suppress(codec.DecodeError):
        codec.decode(payload)


@given(any_message, st.data())
@settings(max_examples=200, deadline=None)
def test_corrupted_fields_only_ever_raise_decode_error(message: Message, data: st.DataObject) -> None:
    body = codec.to_dict(message)
    key = data.draw(st.sampled_from(sorted(body)))
    body[key] = data.draw(st.none() | st.integers() | st.text(max_size=5) | st.lists(st.integers()))
    try:
        decoded = codec.decode(json.dumps(body).encode())
    except codec.DecodeError:
        return
    assert codec.decode(codec.encode(decoded)) == decoded


def test_optional_fields_may_be_left_out_but_nothing_else() -> None:
    status = DeviceStatus(branch_id="b1", device_id="pad-1", role="rm", state="online")
    body = codec.to_dict(status)
    del body["id"]
    with pytest.raises(codec.DecodeError, match="missing_field"):
        codec.decode(json.dumps(body).encode())


@given(st.sampled_from(EXPIRING).flatmap(dataclass_strategy))
def test_expiring_messages_expire_at_their_expiry(msg: Any) -> None:
    assert msg.is_expired(msg.expires_at)
    assert not msg.is_expired(msg.expires_at - timedelta(seconds=1))


def test_arrivals_requests_and_escalations_expire() -> None:
    assert {c.SCHEMA for c in EXPIRING} == {"arrival", "retraction", "auth_request", "auth_escalation"}
    assert set(BY_SCHEMA) == {c.SCHEMA for c in MESSAGE_TYPES}


T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def an_arrival(customer_id: str, seen_at: datetime) -> Arrival:
    card = CustomerCard(customer_id=customer_id, display_name="王女士", tier="gold",
                        masked_id_number="110105********0012", masked_account="6222********1234")
    return Arrival(branch_id="b1", expires_at=seen_at + timedelta(minutes=15), visit_id=str(uuid.uuid4()),
                   camera_id="cam-1", seen_at=seen_at, customer=card,
                   portrait=Portrait(segment="retail", aum_band="1-5m", risk_level="R3"))


def test_a_retraction_covers_the_customers_arrivals_up_to_the_erasure_and_those_it_names() -> None:
    retraction = Retraction(branch_id="b1", expires_at=T0 + timedelta(minutes=15), customer_id="c-1",
                            erased_at=T0)
    assert retraction.covers(an_arrival("c-1", T0 - timedelta(seconds=30)))
    assert retraction.covers(an_arrival("c-1", T0))  # seen at the erasure itself
    assert not retraction.covers(an_arrival("c-1", T0 + timedelta(seconds=1)))  # enrolled again
    assert not retraction.covers(an_arrival("c-2", T0 - timedelta(seconds=30)))  # another customer
    named = an_arrival("c-2", T0 + timedelta(seconds=60))
    by_id = dataclasses.replace(retraction, arrival_ids=[named.id])
    assert by_id.covers(named)
    assert not by_id.covers(an_arrival("c-2", T0 + timedelta(seconds=60)))  # another visit of c-2


@pytest.mark.parametrize(("protocol", "expected"), [("5", 600), ("3.1.1", None)])
def test_publish_properties_carry_the_message_expiry_only_with_mqtt_5(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, protocol: str, expected: int | None
) -> None:
    config = MqttConfig.model_validate({"protocol": protocol, "device_id": "pad-rm-1",
                                        "outbox_path": tmp_path / "outbox.db"})
    client = BranchClient(config, Identity("b1", "pad-rm-1", "rm"))
    try:
        monkeypatch.setattr(client_module, "time", types.SimpleNamespace(time=lambda: 1_000.0))
        def interval(expires_at: float | None) -> int | None:
            props = client._expiry_props(expires_at)
            return None if props is None else int(props.MessageExpiryInterval)

        assert interval(1_600.0) == expected
        assert interval(None) is None  # a message that does not expire
        if protocol == "5":
            assert interval(900.0) == 1  # already past its expiry: the shortest, never 0 (none)
            assert interval(1e12) == MAX_EXPIRY_INTERVAL_S  # a four-byte field
    finally:
        client.outbox.close()


def test_shipped_json_schemas_equal_the_generated_ones() -> None:
    shipped = sorted(p.name for p in jsonschema.SCHEMA_DIR.glob("*.json"))
    assert shipped == sorted(jsonschema.file_name(c) for c in MESSAGE_TYPES)
    for cls in MESSAGE_TYPES:
        text = (jsonschema.SCHEMA_DIR / jsonschema.file_name(cls)).read_text(encoding="utf-8")
        hint = f"{cls.SCHEMA}: regenerate with python -m mqtt.jsonschema"
        assert text == jsonschema.render(cls), hint


@given(any_message)
@settings(max_examples=100, deadline=None)
def test_schema_required_and_properties_match_encoded_messages(message: Message) -> None:
    schema = jsonschema.message_schema(type(message))
    body = codec.to_dict(message)
    assert set(body) == set(schema["properties"])
    assert set(schema["required"]) <= set(body)
    assert schema["properties"]["schema"]["const"] == body["schema"]


@given(ids, ids)
def test_topics_round_trip(branch: str, device: str) -> None:
    t = topics.BranchTopics(branch)
    assert topics.schema_for_topic(t.arrivals) == (branch, "arrival")
    assert topics.schema_for_topic(t.status(device)) == (branch, "device_status")
    assert topics.schema_for_topic(t.auth_response(device)) == (branch, "auth_response")


@pytest.mark.parametrize(
    "topic",
    [
        "bank/v1/branch/b1",
        "bank/v1/branch/b1/nope",
        "other/b1/arrivals",
        "bank/v1/branch/b 1/arrivals",
        "bank/v1/branch/b1/status/a/b",
        "bank/v1/branch/b1/status/",
    ],
)
def test_unknown_topics_are_rejected(topic: str) -> None:
    with pytest.raises(topics.TopicError):
        topics.split_topic(topic)


def test_ids_with_topic_characters_are_refused() -> None:
    for bad in ["a/b", "a+b", "#", "", "x" * 65, "a\n"]:
        with pytest.raises(topics.TopicError):
            topics.BranchTopics(bad)
