"""JSON encoding and strict decoding of the messages in :mod:`mqtt.messages`.

The decoder walks the dataclass type hints (str, int, float, bool, date,
datetime, Literal, list, ``X | None``, nested dataclasses) and rejects
anything else: unknown or missing fields, wrong types, values over the field
limits, unknown schema names or versions, invalid JSON and oversize payloads
all raise :class:`DecodeError` with a short reason that is safe to log (it
never echoes field values).

Hostile input is bounded before the JSON parser sees it, so that no payload
can make the parser or the field checks raise anything but :class:`DecodeError`:
the size (``max_bytes``), the nesting depth (:data:`MAX_DEPTH`, counted on the
raw bytes with strings skipped: the parser would otherwise recurse until
``RecursionError``), the length of every number literal (:data:`MAX_NUMBER_CHARS`:
an integer of thousands of digits makes ``int()`` raise ``ValueError``), integer
magnitudes (:data:`MAX_INT`), non-finite floats, and date-times outside
:data:`DATETIME_YEARS` (``9999-12-31T23:59:59-23:59`` overflows when converted to UTC).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import types
import typing
import uuid
from datetime import UTC, date, datetime
from functools import cache
from typing import Any, Literal

from mqtt.messages import BY_SCHEMA, Message

DEFAULT_MAX_PAYLOAD = 256 * 1024
MAX_DEPTH = 16  # the deepest message (arrival > portrait > holdings > item) nests 4 levels
MAX_NUMBER_CHARS = 32  # a float's repr is at most 24 characters
MAX_INT = 2**53  # integers beyond this do not survive a JSON round trip in most languages
DATETIME_YEARS = (1970, 2999)  # event times; outside this a device's clock or the sender is wrong

# A JSON string (escapes included) or, unterminated, the rest of the input; possessive, so that
# every byte is looked at once (a backtracking pattern is quadratic on an unterminated string
# full of escaped quotes).  And the brackets that open or close a level.
_STRING = re.compile(rb'"(?:[^"\\]++|\\.?)*+(?:"|\Z)', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")


class DecodeError(ValueError):
    """A payload that is not a valid message; ``reason`` is a short category."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason


class EncodeError(ValueError):
    """A message that receivers would reject; raised before it is stored or sent."""


@cache
def hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _to_json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise EncodeError("date-time without a time zone")
        return value.astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list):
        return [_to_json(v) for v in value]
    return value


def to_dict(message: Message) -> dict[str, Any]:
    body: dict[str, Any] = {"schema": message.schema_tag()}
    body.update(_to_json(message))
    return body


def encode(message: Message) -> bytes:
    """Compact UTF-8 JSON, checked against the same rules receivers apply.

    Raises:
        EncodeError: the message would be rejected by receivers (too long a
            field, a naive date-time, NaN, ...).
    """
    try:
        body = to_dict(message)
        payload = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
        from_dict(json.loads(payload))
    except (DecodeError, ValueError) as err:
        raise EncodeError(f"{message.schema_tag()}: {err}") from err
    return payload


def _reject_constant(name: str) -> None:
    raise DecodeError("invalid_json", f"constant {name} is not JSON")


def _parse_int(text: str) -> int:
    if len(text) > MAX_NUMBER_CHARS:
        raise DecodeError("too_long", f"number literal of {len(text)} characters")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise DecodeError("too_long", f"number literal of {len(text)} characters")
    value = float(text)
    if not math.isfinite(value):
        raise DecodeError("bad_value", "number out of the float range")
    return value


def check_depth(payload: bytes, limit: int = MAX_DEPTH) -> None:
    """Refuse arrays/objects nested deeper than ``limit``, before any parsing."""
    depth = 0
    for match in _BRACKET.finditer(_STRING.sub(b"", payload)):
        if match.group() in b"[{":
            depth += 1
            if depth > limit:
                raise DecodeError("too_deep", f"nested deeper than {limit} levels")
        else:
            depth -= 1


def decode(payload: bytes, max_bytes: int = DEFAULT_MAX_PAYLOAD) -> Message:
    """Bytes -> message, or :class:`DecodeError` (and nothing else, whatever the bytes)."""
    if len(payload) > max_bytes:
        raise DecodeError("oversize", f"{len(payload)} bytes > {max_bytes}")
    payload = bytes(payload)
    check_depth(payload)
    try:
        data = json.loads(payload, parse_constant=_reject_constant, parse_int=_parse_int,
                          parse_float=_parse_float)
    except DecodeError:
        raise  # a number literal refused by the hooks above
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise DecodeError("invalid_json", type(err).__name__) from err
    except (ValueError, RecursionError) as err:  # bounded above; kept as a last line of defence
        raise DecodeError("invalid_json", type(err).__name__) from err
    if not isinstance(data, dict):
        raise DecodeError("wrong_type", "payload is not a JSON object")
    return from_dict(data)


def from_dict(data: dict[str, Any]) -> Message:
    tag = data.get("schema")
    if not isinstance(tag, str) or tag.count("/") != 1:
        raise DecodeError("unknown_schema", "missing or malformed 'schema'")
    name, version = tag.split("/")
    cls = BY_SCHEMA.get(name)
    if cls is None:
        raise DecodeError("unknown_schema", f"schema name {name[:40]!r}")
    if version != str(cls.VERSION):
        raise DecodeError("unknown_version", f"{cls.SCHEMA} version {version[:10]!r}")
    fields = {k: v for k, v in data.items() if k != "schema"}
    message = _dataclass(cls, fields, cls.SCHEMA)
    assert isinstance(message, Message)
    return message


def _dataclass(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise DecodeError("wrong_type", f"{path}: expected object")
    known = {f.name: f for f in dataclasses.fields(cls)}
    extra = set(data) - set(known)
    if extra:
        raise DecodeError("unknown_field", f"{path}: {sorted(extra)[0][:40]!r}")
    values: dict[str, Any] = {}
    for name, f in known.items():
        if name not in data:
            if not is_optional(hints(cls)[name]):
                raise DecodeError("missing_field", f"{path}.{name}")
            values[name] = None
            continue
        values[name] = _value(hints(cls)[name], data[name], f"{path}.{name}", f.metadata)
    return cls(**values)


def is_optional(tp: Any) -> bool:
    """Only ``X | None`` fields may be left out on the wire (they decode as None)."""
    return typing.get_origin(tp) in (types.UnionType, typing.Union)


def _value(tp: Any, value: Any, path: str, meta: Any) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        if value is None:
            return None
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return _value(inner, value, path, meta)
    if origin is list:
        return _list(typing.get_args(tp)[0], value, path, meta)
    if origin is Literal:
        if value not in typing.get_args(tp) or not isinstance(value, str):
            raise DecodeError("bad_value", f"{path}: not one of the allowed values")
        return value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, value, path)
    return _scalar(tp, value, path, meta)


def _list(item_tp: Any, value: Any, path: str, meta: Any) -> list[Any]:
    if not isinstance(value, list):
        raise DecodeError("wrong_type", f"{path}: expected array")
    limit = meta.get("max_items")
    if limit is not None and len(value) > limit:
        raise DecodeError("too_long", f"{path}: more than {limit} items")
    return [_value(item_tp, v, f"{path}[{i}]", meta) for i, v in enumerate(value)]


def _scalar(tp: Any, value: Any, path: str, meta: Any) -> Any:
    if tp is bool:
        if not isinstance(value, bool):
            raise DecodeError("wrong_type", f"{path}: expected boolean")
        return value
    if tp is int or tp is float:
        return _number(tp, value, path)
    if not isinstance(value, str):
        raise DecodeError("wrong_type", f"{path}: expected string")
    if tp is str:
        return _string(value, path, meta)
    if tp is datetime:
        return _datetime(value, path)
    if tp is date:
        return _date(value, path)
    raise TypeError(f"{path}: unsupported field type {tp!r}")


def _number(tp: type, value: Any, path: str) -> int | float:
    kinds = int if tp is int else int | float
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise DecodeError("wrong_type", f"{path}: expected {'integer' if tp is int else 'number'}")
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise DecodeError("bad_value", f"{path}: beyond +-2**53")
    if not math.isfinite(value):
        raise DecodeError("bad_value", f"{path}: not a finite number")
    return value if tp is int else float(value)


def _string(value: str, path: str, meta: Any) -> str:
    limit = meta.get("max_length")
    if limit is not None and len(value) > limit:
        raise DecodeError("too_long", f"{path}: longer than {limit}")
    pattern = meta.get("pattern")
    if pattern is not None and not re.fullmatch(pattern, value):
        raise DecodeError("bad_value", f"{path}: does not match {pattern}")
    if meta.get("format") == "uuid":
        try:
            uuid.UUID(value)
        except ValueError as err:
            raise DecodeError("bad_value", f"{path}: not a UUID") from err
    return value


def _datetime(value: str, path: str) -> datetime:
    if len(value) > 40:
        raise DecodeError("too_long", f"{path}: not an ISO 8601 date-time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as err:
        raise DecodeError("bad_value", f"{path}: not an ISO 8601 date-time") from err
    if parsed.tzinfo is None:
        raise DecodeError("bad_value", f"{path}: date-time without a UTC offset")
    first, last = DATETIME_YEARS
    if not first <= parsed.year <= last:
        raise DecodeError("bad_value", f"{path}: year outside {first}-{last}")
    try:
        return parsed.astimezone(UTC)
    except (OverflowError, ValueError) as err:  # an offset pushing it past the calendar's end
        raise DecodeError("bad_value", f"{path}: date-time out of range") from err


def _date(value: str, path: str) -> date:
    if len(value) != 10:
        raise DecodeError("bad_value", f"{path}: not an ISO 8601 date")
    try:
        return date.fromisoformat(value)
    except ValueError as err:
        raise DecodeError("bad_value", f"{path}: not an ISO 8601 date") from err
