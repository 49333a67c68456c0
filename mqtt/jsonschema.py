"""JSON Schema (draft 2020-12) for each message type, generated from the dataclasses.

The shipped files under ``mqtt/schemas/`` are what head-office systems
consume; a test checks they equal what this module generates.  Regenerate
with ``python -m mqtt.jsonschema`` (or ``branch-edge mqtt schemas --out DIR``).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import types
import typing
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

from mqtt.codec import MAX_INT, hints, is_optional
from mqtt.messages import MESSAGE_TYPES, Message

SCHEMA_DIR = Path(__file__).parent / "schemas"
BASE_URI = "https://schemas.branch-edge.invalid/bank/v1/"


def message_schema(cls: type[Message]) -> dict[str, Any]:
    body = _object(cls)
    body["properties"] = {"schema": {"const": cls.schema_tag()}, **body["properties"]}
    body["required"] = ["schema", *body["required"]]
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{BASE_URI}{cls.SCHEMA}-{cls.VERSION}.json",
        "title": f"{cls.__name__} ({cls.schema_tag()})",
        "description": " ".join((cls.__doc__ or cls.__name__).split()),
        **body,
    }


def _object(cls: type) -> dict[str, Any]:
    props = {}
    required = []
    for f in dataclasses.fields(cls):
        props[f.name] = _type(hints(cls)[f.name], f.metadata)
        if not is_optional(hints(cls)[f.name]):
            required.append(f.name)
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


def _type(tp: Any, meta: Any) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        (inner,) = [a for a in typing.get_args(tp) if a is not type(None)]
        return {"anyOf": [_type(inner, meta), {"type": "null"}]}
    if origin is list:
        out: dict[str, Any] = {"type": "array", "items": _type(typing.get_args(tp)[0], meta)}
        if "max_items" in meta:
            out["maxItems"] = meta["max_items"]
        return out
    if origin is Literal:
        return {"type": "string", "enum": list(typing.get_args(tp))}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _object(tp)
    return _scalar(tp, meta)


def _scalar(tp: Any, meta: Any) -> dict[str, Any]:
    simple = {bool: "boolean", int: "integer", float: "number"}
    if tp is int:
        return {"type": "integer", "minimum": -MAX_INT, "maximum": MAX_INT}
    if tp in simple:
        return {"type": simple[tp]}
    if tp is datetime:
        return {"type": "string", "format": "date-time"}
    if tp is date:
        return {"type": "string", "format": "date"}
    out: dict[str, Any] = {"type": "string"}
    if "max_length" in meta:
        out["maxLength"] = meta["max_length"]
    if "pattern" in meta:
        out["pattern"] = meta["pattern"]
    if meta.get("format") == "uuid":
        out["format"] = "uuid"
    elif meta.get("format") == "base64":
        out["contentEncoding"] = "base64"
        out["contentMediaType"] = "image/jpeg"
    return out


def render(cls: type[Message]) -> str:
    return json.dumps(message_schema(cls), indent=2, sort_keys=False) + "\n"


def file_name(cls: type[Message]) -> str:
    return f"{cls.SCHEMA}-{cls.VERSION}.json"


def write_schemas(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for cls in MESSAGE_TYPES:
        path = out_dir / file_name(cls)
        path.write_text(render(cls), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMA_DIR
    for written_path in write_schemas(target):
        print(written_path)
