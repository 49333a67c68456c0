"""The documentation's reference pages, generated from the code that defines them.

- ``docs/reference/configuration.md``: the pydantic models' fields (``edge.config.EdgeConfig``,
  ``ui.state.config.PadConfig``, ``hq.config.HqConfig``, ``mqtt.config.MqttConfig``): key, type,
  default, bounds, description.
- ``docs/reference/cli.md``: every sub-command of ``branch-edge``, ``branch-pad`` and ``branch-hq``,
  walked from their argparse parsers: usage, options and their help.
- ``docs/reference/mqtt.md``: the topic scheme (``mqtt/topics.py``), who may write and read each
  topic (``mqtt/provision/acl.py``) and every message's fields (``mqtt/schemas/*.json``).
- ``docs/reference/policies.md``: the shipped ``edge/counter/policies.toml`` as the service reads
  it, and the reason codes of ``edge/core/auth_policy.py``.

``.venv/bin/python scripts/docgen.py`` rewrites the pages (``make docs`` also builds the site);
``--check`` writes nothing and exits 1 when a page differs from what the code gives now.

It lives in scripts/, outside the packages, because it reads all three programs: the layering
(.importlinter) keeps edge, ui and hq from importing each other and edge.tools from importing
edge.cli.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import re
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo

ROOT = Path(__file__).resolve().parents[1]
REGENERATE = "make docs  (or: .venv/bin/python scripts/docgen.py)"
USAGE_WIDTH = 100
# Parser defaults may be read from these at build time; the pages must not depend on a machine.
ENV_PREFIXES = ("BRANCH_EDGE_", "BRANCH_PAD_")


def header(source: str, title: str, *intro: str) -> list[str]:
    """The page's first lines: where it comes from, its title, its introduction."""
    note = f"<!-- Generated from {source} by scripts/docgen.py. Do not edit: run `make docs`. -->"
    return [note, "", f"# {title}", "", *intro, ""]


# ---------------------------------------------------------------- Markdown helpers


def cell(text: str) -> str:
    """Text for a table cell: no line breaks, pipes and HTML-ish brackets escaped outside code."""
    parts = re.split(r"(`[^`]*`)", " ".join(text.split()))
    return "".join(part if part.startswith("`") else escape(part).replace("|", "\\|") for part in parts)


def escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")


def code(text: object) -> str:
    return f"`{text}`"


def table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows] + [""]


# ---------------------------------------------------------------- configuration


def config_files() -> list[tuple[str, str, type[BaseModel]]]:
    """(anchor, title, model) of every program's configuration file."""
    from edge.config import EdgeConfig  # noqa: PLC0415
    from hq.config import HqConfig  # noqa: PLC0415
    from ui.state.config import PadConfig  # noqa: PLC0415

    return [("edge", "`edge.toml` (branch-edge)", EdgeConfig), ("pad", "`pad.toml` (branch-pad)", PadConfig),
            ("hq", "`hq.toml` (branch-hq, head office)", HqConfig)]


def config_page() -> str:
    from mqtt.config import MqttConfig  # noqa: PLC0415

    lines = header(
        "edge/config.py, ui/state/config.py, hq/config.py and mqtt/config.py", "Configuration reference",
        "Every file is TOML. Every key is checked when the file is loaded: an unknown key or a value",
        "outside its bounds stops the program with the dotted key and the allowed range. Keys that",
        "are not set take the default shown here.")
    for prefix, title, model in config_files():
        lines += model_file(prefix, title, model, first_line(model.__module__))
    mqtt_intro = doc_of(MqttConfig, first_line(MqttConfig.__module__))
    lines += ["## `[mqtt]`: edge and PAD {#mqtt}", "", mqtt_intro, ""]
    return "\n".join([*lines, *field_table(MqttConfig)])


def first_line(module: str) -> str:
    doc = sys.modules[module].__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def doc_of(model: type[BaseModel], fallback: str = "") -> str:
    doc = model.__doc__ if "__doc__" in model.__dict__ and model.__doc__ else fallback
    return " ".join(doc.strip().split("\n\n")[0].split())


def model_file(prefix: str, title: str, model: type[BaseModel], intro: str) -> list[str]:
    lines = [f"## {title} {{#{prefix}}}", "", intro, "", "Top-level keys:", ""]
    lines += field_table(model, [name for name, field in model.model_fields.items() if not section_of(field)])
    for name, field in model.model_fields.items():
        if (section := section_of(field)) is not None:
            lines += section_block(prefix, name, field, section)
    return lines


def section_of(field: FieldInfo) -> type[BaseModel] | None:
    """The model of a ``[section]`` or ``[[array]]`` field, else ``None``."""
    annotation = field.annotation
    if get_origin(annotation) in (tuple, list) and get_args(annotation):
        annotation = get_args(annotation)[0]
    return annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None


def section_block(prefix: str, name: str, field: FieldInfo, model: type[BaseModel]) -> list[str]:
    from mqtt.config import MqttConfig  # noqa: PLC0415

    array = get_origin(field.annotation) in (tuple, list)
    title = f"[[{name}]]" if array else f"[{name}]"
    lines = [f"### `{title}` {{#{prefix}-{name}}}", ""]
    if model is MqttConfig:
        see = f"The broker connection: see [`[mqtt]`](#mqtt). {field.description or ''}"
        return [*lines, see.strip(), *changed_defaults(field, model), ""]
    if array:
        lines += ["An array of tables: one `[[" + name + "]]` block per entry.", ""]
    if doc := doc_of(model):
        lines += [doc, ""]
    return lines + field_table(model)


def changed_defaults(field: FieldInfo, model: type[BaseModel]) -> list[str]:
    """A section whose default differs from the model's own defaults says which keys differ."""
    default = field.get_default(call_default_factory=True)
    if not isinstance(default, model):
        return []
    plain = model.model_construct()
    keys = [f"`{key}` = {toml_value(getattr(default, key))}" for key in model.model_fields
            if getattr(default, key) != getattr(plain, key)]
    return [f"Here the defaults differ: {', '.join(keys)}."] if keys else []


def field_table(model: type[BaseModel], names: Sequence[str] | None = None) -> list[str]:
    rows = [field_row(name, model.model_fields[name]) for name in names or list(model.model_fields)]
    return table(("key", "type", "default", "allowed", "description"), rows)


def field_row(name: str, field: FieldInfo) -> list[str]:
    return [code(name), cell(type_name(field.annotation)), default_text(field), cell(bounds(field)),
            cell(field.description or "")]


def type_name(annotation: Any) -> str:
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Literal:
        return " or ".join(code(json.dumps(arg, ensure_ascii=False)) for arg in args)
    if origin in (Union, types.UnionType):
        return " or ".join(type_name(arg) for arg in args if arg is not type(None))
    if origin in (list, tuple):
        return f"list of {type_name(args[0])}"
    names = {str: "string", int: "integer", float: "number", bool: "boolean", Path: "path"}
    return names.get(annotation, getattr(annotation, "__name__", str(annotation)))


def default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    return toml_value(field.get_default(call_default_factory=True))


def toml_value(value: Any) -> str:
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return code(str(value).lower())
    if isinstance(value, str | Path):
        return code(json.dumps(str(value), ensure_ascii=False))
    if isinstance(value, list | tuple):
        return code("[" + ", ".join(toml_value(v).strip("`") for v in value) + "]")
    return code(value)


def bounds(field: FieldInfo) -> str:
    found: dict[str, Any] = {}
    for item in field.metadata:
        for key in ("ge", "gt", "le", "lt", "multiple_of", "min_length", "max_length", "pattern"):
            if getattr(item, key, None) is not None:
                found[key] = getattr(item, key)
    return "; ".join(filter(None, (interval(found), lengths(found, field), multiple(found), pattern(found))))


def interval(found: dict[str, Any]) -> str:
    low = f"[{found['ge']}" if "ge" in found else f"({found['gt']}" if "gt" in found else ""
    high = f"{found['le']}]" if "le" in found else f"{found['lt']})" if "lt" in found else ""
    if low and high:
        return f"{low}, {high}"
    return f"≥ {found['ge']}" if "ge" in found else f"> {found['gt']}" if "gt" in found else (
        f"≤ {found['le']}" if "le" in found else f"< {found['lt']}" if "lt" in found else "")


def lengths(found: dict[str, Any], field: FieldInfo) -> str:
    unit = "items" if get_origin(field.annotation) in (list, tuple) else "characters"
    low, high = found.get("min_length"), found.get("max_length")
    if low is not None and high is not None:
        return f"{low}–{high} {unit}"
    if high is not None:
        return f"at most {high} {unit}"
    return f"at least {low} {unit}" if low is not None else ""


def multiple(found: dict[str, Any]) -> str:
    return f"multiple of {found['multiple_of']}" if "multiple_of" in found else ""


def pattern(found: dict[str, Any]) -> str:
    return f"matches {code(found['pattern'])}" if "pattern" in found else ""


def undescribed_fields() -> list[str]:
    """Dotted keys of every configuration field without a description (the reference needs one)."""
    files = [(title.split("`")[1] + ":", model) for _, title, model in config_files()]
    return list(dict.fromkeys(key for name, model in files for key in _undescribed(name, model)))


def _undescribed(prefix: str, model: type[BaseModel]) -> Iterator[str]:
    for name, field in model.model_fields.items():
        if (section := section_of(field)) is not None:
            yield from _undescribed(f"{prefix}{name}.", section)
        elif not field.description:
            yield prefix + name


# ---------------------------------------------------------------- command line


def cli_page() -> str:
    lines = header(
        "the argparse parsers of edge/cli.py, ui/cli.py and hq/cli.py", "Command-line reference",
        "Three programs: `branch-edge` runs on the branch PC (the camera daemon and every tool around",
        "it), `branch-pad` is the tablet and counter app with its device tools, `branch-hq` runs at head",
        "office. Commands print one clear line and exit with code 2 on input the user can fix; commands",
        "that print results take `--json`.")
    parsers = built_parsers()
    for parser in parsers:
        lines += command_index(parser)
    for parser in parsers:
        for sub, help_text in walk(parser, None):
            lines += parser_section(sub, help_text)
    return "\n".join(lines)


def built_parsers() -> list[argparse.ArgumentParser]:
    from edge.cli import build_parser as edge_parser  # noqa: PLC0415
    from hq.cli import build_parser as hq_parser  # noqa: PLC0415
    from ui.cli import build_parser as pad_parser  # noqa: PLC0415

    with plain_environment():
        parsers = [edge_parser(), pad_parser(), hq_parser()]
    for parser in parsers:
        for sub, _ in walk(parser, None):
            sub.formatter_class = functools.partial(sub.formatter_class, width=USAGE_WIDTH)  # type: ignore[call-arg]
    return parsers


@contextmanager
def plain_environment() -> Iterator[None]:
    """Build the parsers without this machine's settings (some defaults come from the environment)."""
    saved = {key: value for key, value in os.environ.items() if key.startswith(ENV_PREFIXES)}
    for key in saved:
        del os.environ[key]
    columns = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(USAGE_WIDTH)
    try:
        yield
    finally:
        os.environ.update(saved)
        if columns is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = columns


Walked = Iterator[tuple[argparse.ArgumentParser, str | None]]


def walk(parser: argparse.ArgumentParser, help_text: str | None) -> Walked:
    """The parser and every sub-command's parser below it, depth first, in `--help` order."""
    yield parser, help_text
    for action in subcommand_actions(parser):
        for choice in action._choices_actions:
            yield from walk(action.choices[choice.dest], choice.help)


def subcommand_actions(parser: argparse.ArgumentParser) -> list[argparse._SubParsersAction]:  # type: ignore[type-arg]
    return [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]


def anchor(parser: argparse.ArgumentParser) -> str:
    return re.sub(r"[^a-z0-9]+", "-", parser.prog.lower()).strip("-")


def command_index(parser: argparse.ArgumentParser) -> list[str]:
    rows = [[f"[`{sub.prog}`](#{anchor(sub)})", cell(help_text or sub.description or "")]
            for sub, help_text in walk(parser, None) if not subcommand_actions(sub)]
    return [f"## `{parser.prog}` commands", "", *table(("command", "what it does"), rows)]


def parser_section(parser: argparse.ArgumentParser, help_text: str | None) -> list[str]:
    lines = [f"## `{parser.prog}` {{#{anchor(parser)}}}", ""]
    for text in dict.fromkeys(filter(None, (help_text, parser.description))):
        lines += [escape(text.strip()), ""]
    lines += ["```text", parser.format_usage().strip(), "```", ""]
    for action in subcommand_actions(parser):
        subs = [action.choices[choice.dest] for choice in action._choices_actions]
        lines += ["Sub-commands: " + ", ".join(f"[`{sub.prog}`](#{anchor(sub)})" for sub in subs), ""]
    rows = [option_row(parser, action) for action in parser._actions if documented(action)]
    return lines + (table(("option", "description", "default"), rows) if rows else [])


def documented(action: argparse.Action) -> bool:
    skipped = (argparse._HelpAction, argparse._SubParsersAction)
    return not isinstance(action, skipped) and action.help != argparse.SUPPRESS


def option_row(parser: argparse.ArgumentParser, action: argparse.Action) -> list[str]:
    formatter = parser._get_formatter()
    invocation = formatter._format_action_invocation(action)
    text = cell(formatter._expand_help(action)) if action.help else "*(no help text)*"
    if action.choices is not None and not isinstance(action.choices, dict):
        text = text.rstrip() + ("" if text.rstrip().endswith(".") else ".")
        text += " One of: " + ", ".join(code(choice) for choice in action.choices) + "."
    if action.required and action.option_strings:
        text = "**Required.** " + text
    return [code(invocation), text, option_default(action)]


def option_default(action: argparse.Action) -> str:
    value = action.default
    if value is None or value is argparse.SUPPRESS or action.nargs == 0 or isinstance(value, bool):
        return ""
    if isinstance(value, list | tuple):
        return code(" ".join(map(str, value))) if value else ""
    return code(value)


def undocumented_options() -> list[str]:
    """``prog option`` of every option without a help text."""
    return [f"{sub.prog} {action.option_strings[0] if action.option_strings else action.dest}"
            for parser in built_parsers() for sub, _ in walk(parser, None)
            for action in sub._actions if documented(action) and not action.help]


# ---------------------------------------------------------------- MQTT contract


def mqtt_page() -> str:
    from mqtt.topics import LEAF_SCHEMAS  # noqa: PLC0415
    from mqtt.topics import ROOT as TOPIC_ROOT  # noqa: PLC0415

    schemas = load_schemas()
    lines = header(
        "mqtt/topics.py, mqtt/provision/acl.py and mqtt/schemas/*.json", "MQTT contract",
        f"Every topic lives under `{TOPIC_ROOT}/{{branch_id}}/`; branch and device ids match",
        "`[A-Za-z0-9_-]{1,64}`. A receiver refuses a message on the wrong topic or whose `branch_id`",
        "differs from the topic's. How the client, outbox and receivers behave is in",
        "[Design → MQTT](../design/mqtt.md).")
    lines += ["## Topics", "", "Who may write and read each topic is the broker ACL that "
              "`branch-edge provision` writes.", ""]
    rows = [topic_row(TOPIC_ROOT, leaf, name, schemas) for leaf, name in LEAF_SCHEMAS.items()]
    lines += table(("topic", "message", "written by", "read by", "retained", "head office bridge"), rows)
    lines += ["## Messages", "",
              "Every message is compact UTF-8 JSON with `schema` (name/version), `id` (a UUID;",
              "receivers drop a repeated id), `branch_id` and `sent_at`. Messages with `expires_at`",
              "are dropped by receivers once expired.", ""]
    for path, schema in schemas.items():
        lines += message_section(path, schema, LEAF_SCHEMAS)
    return "\n".join(lines)


def load_schemas() -> dict[str, dict[str, Any]]:
    folder = ROOT / "mqtt" / "schemas"
    return {f"mqtt/schemas/{path.name}": json.loads(path.read_text(encoding="utf-8"))
            for path in sorted(folder.glob("*.json"))}


def schema_id(schema: dict[str, Any]) -> str:
    return str(schema["properties"]["schema"]["const"])


def topic_row(root: str, leaf: str, name: str, schemas: dict[str, dict[str, Any]]) -> list[str]:
    from mqtt.provision.acl import BRIDGE_READS, BRIDGE_WRITES  # noqa: PLC0415

    topic = f"{root}/{{branch_id}}/" + leaf.replace("+", "{device_id}")
    ids = [schema_id(s) for s in schemas.values() if schema_id(s).split("/")[0] == name]
    message = ", ".join(f"[`{i}`](#{i.replace('/', '-')})" for i in ids) or code(name)
    bridge = "out" if leaf in BRIDGE_WRITES else "in" if leaf in BRIDGE_READS else ""
    writers, readers = acl_roles(leaf)
    return [code(topic), message, cell(writers), cell(readers), "yes" if retained(name) else "", bridge]


def retained(schema_name: str) -> bool:
    """Whether messages of this schema are published retained (state, not events)."""
    from mqtt.messages import BY_SCHEMA  # noqa: PLC0415

    cls = BY_SCHEMA.get(schema_name)
    return bool(getattr(cls, "RETAINED", False)) or schema_name == "device_status"


def acl_roles(leaf: str) -> tuple[str, str]:
    from mqtt.provision.acl import BRIDGE_READS, ROLE_RULES  # noqa: PLC0415

    if leaf == "status/+":
        return "every device (its own id)", "every device"
    writers = [own_id(role, leaf, writes, "under its own id") for role, (writes, _) in ROLE_RULES.items()
               if leaf in map(wildcard, writes)]
    readers = [own_id(role, leaf, reads, "its own id only") for role, (_, reads) in ROLE_RULES.items()
               if leaf in map(wildcard, reads)]
    if leaf in BRIDGE_READS:
        writers.append("head office (through the bridge)")
    return ", ".join(writers) or "nobody in the branch", ", ".join(readers) or "nobody in the branch"


def wildcard(leaf: str) -> str:
    return leaf.replace("{self}", "+")


def own_id(role: str, leaf: str, leaves: Sequence[str], note: str) -> str:
    """The role, with ``note`` when the ACL gives it only the topic that carries its own id."""
    return f"{role} ({note})" if leaf.endswith("/+") and f"{leaf[:-1]}{{self}}" in leaves else role


def message_section(path: str, schema: dict[str, Any], leaf_schemas: dict[str, str]) -> list[str]:
    ident = schema_id(schema)
    topics = [leaf for leaf, name in leaf_schemas.items() if name == ident.split("/")[0]]
    lines = [f"### `{ident}` {{#{ident.replace('/', '-')}}}", "", escape(schema.get("description", "")), ""]
    where = ", ".join(code(t.replace("+", "{device_id}")) for t in topics) or "no topic of its own"
    lines += [f"Topic: {where}. JSON Schema: `{path}`.", ""]
    rows = [[code(name), cell(kind), "yes" if required else "", cell(rules)]
            for name, kind, required, rules in flatten(schema)]
    return lines + table(("field", "type", "required", "constraints"), rows)


def flatten(node: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, str, bool, str]]:
    required = set(node.get("required", ()))
    for name, prop in node.get("properties", {}).items():
        path = prefix + name
        yield path, json_type(prop), name in required, constraints(prop)
        inner = non_null(prop)
        if inner.get("type") == "object":
            yield from flatten(inner, path + ".")
        elif inner.get("type") == "array" and non_null(inner.get("items", {})).get("type") == "object":
            yield from flatten(non_null(inner["items"]), path + "[].")


def non_null(prop: dict[str, Any]) -> dict[str, Any]:
    options = [p for p in prop.get("anyOf", ()) if p.get("type") != "null"]
    return options[0] if len(options) == 1 else prop


def json_type(prop: dict[str, Any]) -> str:
    if "const" in prop:
        return f"always {code(json.dumps(prop['const']))}"
    if "anyOf" in prop:
        return " or ".join(json_type(p) for p in prop["anyOf"])
    if "enum" in prop:
        return "one of " + ", ".join(code(json.dumps(v, ensure_ascii=False)) for v in prop["enum"])
    kind = str(prop.get("type", "any"))
    if kind == "array":
        return f"array of {json_type(prop.get('items', {}))}"
    return f"{kind} ({prop['format']})" if "format" in prop else kind


def constraints(prop: dict[str, Any]) -> str:
    inner = non_null(prop)
    words = {"minLength": "min length", "maxLength": "max length", "maxItems": "max items",
             "minItems": "min items", "minimum": "≥", "maximum": "≤", "exclusiveMinimum": ">",
             "exclusiveMaximum": "<", "contentMediaType": "content", "contentEncoding": "encoding"}
    found = [f"{word} {inner[key]}" for key, word in words.items() if key in inner]
    if "pattern" in inner:
        found.append(f"matches {code(inner['pattern'])}")
    return "; ".join(found)


# ---------------------------------------------------------------- counter policies


def policies_page() -> str:
    from edge.core.auth_policy import CHECKS, REASON_TEXT, ScenarioPolicy  # noqa: PLC0415
    from edge.counter.policies import DEFAULT_POLICIES, load_policies  # noqa: PLC0415

    policies = load_policies(DEFAULT_POLICIES)
    fields = [f.name for f in dataclasses.fields(ScenarioPolicy) if f.name != "name"]
    lines = header(
        "edge/counter/policies.toml and edge/core/auth_policy.py", "Counter authorization policies",
        "The shipped policy file `edge/counter/policies.toml`, as the authorization service reads it",
        "(every scenario's missing keys filled from `[defaults]`). Another file is chosen with",
        "`[auth] policies` in `edge.toml` or `--policies`; `branch-edge auth policies` prints the policies",
        "in force. How a decision is made is in [Design → Authorization](../design/authorization.md).")
    lines += ["## Service-wide settings", ""]
    rows = [[code(f.name), code(getattr(policies, f.name))] for f in dataclasses.fields(policies)
            if f.name != "scenarios"]
    lines += table(("key", "value"), rows)
    lines += ["## Scenarios", "", "One column per scenario, one row per key.", ""]
    scenarios = list(policies.scenarios.items())
    rows = [[code(f)] + [policy_value(getattr(policy, f)) for _, policy in scenarios] for f in fields]
    lines += table(["key", *(code(name) for name, _ in scenarios)], rows)
    lines += ["Checks a scenario can list: " + ", ".join(code(c) for c in CHECKS) + ".", ""]
    lines += ["## Reason codes", "",
              "Codes in responses, escalations and the audit log, with the words the pages show.", ""]
    rows = [[code(key), cell(zh), cell(en)] for key, (zh, en) in REASON_TEXT.items()]
    lines += table(("code", "zh-CN", "English"), rows)
    source = DEFAULT_POLICIES.read_text(encoding="utf-8").rstrip()
    return "\n".join([*lines, "## The shipped file", "", "```toml", source, "```", ""])


def policy_value(value: Any) -> str:
    if isinstance(value, frozenset | set):
        return ", ".join(sorted(value))
    if isinstance(value, bool):
        return "yes" if value else "no"
    return "–" if value is None else cell(str(value))


# ---------------------------------------------------------------- the pages


PAGES: dict[str, Callable[[], str]] = {
    "docs/reference/configuration.md": config_page,
    "docs/reference/cli.md": cli_page,
    "docs/reference/mqtt.md": mqtt_page,
    "docs/reference/policies.md": policies_page,
}


def generate() -> dict[str, str]:
    """Relative path -> the page's text, as the code gives it now."""
    return {path: page().rstrip("\n") + "\n" for path, page in PAGES.items()}


def stale_pages(root: Path = ROOT) -> list[str]:
    pages = generate()
    return [path for path, text in pages.items() if read(root / path) != text]


def read(path: Path) -> str | None:
    return path.read_text(encoding="utf-8") if path.is_file() else None


def write_pages(root: Path = ROOT) -> list[str]:
    written = []
    for path, text in generate().items():
        if read(root / path) != text:
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text, encoding="utf-8")
            written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/docgen.py", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 when a page is out of date")
    parser.add_argument("--root", type=Path, default=ROOT, help="repository root (default: this checkout)")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_pages(args.root)
        for path in stale:
            print(f"{path} is out of date: run {REGENERATE}")
        return 1 if stale else 0
    written = write_pages(args.root)
    print("\n".join(f"wrote {path}" for path in written) or "reference pages up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
