"""The documentation: generated reference pages are current, the README stays short, and every
repository path or module the pages name exists."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
TOP_LEVEL = ("edge", "ui", "hq", "mqtt", "models", "scripts", "tests", "docs")


@pytest.fixture(scope="module")
def docgen() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docgen", ROOT / "scripts" / "docgen.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["docgen"] = module
    spec.loader.exec_module(module)
    return module


def test_generated_reference_pages_match_the_code(docgen: ModuleType) -> None:
    stale = docgen.stale_pages(ROOT)
    assert not stale, f"{', '.join(stale)} out of date: run {docgen.REGENERATE} and commit the result"


def test_a_stale_page_is_reported_and_rewritten(docgen: ModuleType, tmp_path: Path) -> None:
    pages = docgen.generate()
    for path, text in pages.items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text, encoding="utf-8")
    page = tmp_path / "docs/reference/configuration.md"
    page.write_text(page.read_text(encoding="utf-8").replace("`0.442`", "`0.5`"), encoding="utf-8")
    assert docgen.stale_pages(tmp_path) == ["docs/reference/configuration.md"]
    assert docgen.main(["--check", "--root", str(tmp_path)]) == 1
    assert docgen.main(["--root", str(tmp_path)]) == 0
    assert docgen.stale_pages(tmp_path) == []


def test_the_configuration_reference_has_every_key_with_its_default_and_bounds(docgen: ModuleType) -> None:
    page = docgen.generate()["docs/reference/configuration.md"]
    assert "| `threshold` | number | `0.442` | [-1.0, 1.0] |" in page  # [recognition]
    assert "### `[[cameras]]` {#edge-cameras}" in page
    assert "| `analyse_fps` | number | `10.0` | (0.0, 60.0] |" in page
    assert "| `branch_id` | string | required |" in page  # pad.toml
    assert "## `[mqtt]`: edge and PAD {#mqtt}" in page


def test_every_configuration_key_has_a_description(docgen: ModuleType) -> None:
    assert docgen.undescribed_fields() == [], "add a Field(description=...) so the reference explains the key"


def test_the_cli_reference_walks_every_sub_command_of_both_programs(docgen: ModuleType) -> None:
    page = docgen.generate()["docs/reference/cli.md"]
    for command in ("branch-edge enrol", "branch-edge bench gallery", "branch-edge synth lobby",
                    "branch-edge keys rotate", "branch-pad", "branch-pad idcard read"):
        anchor = command.replace(" ", "-")
        assert f"## `{command}` {{#{anchor}}}" in page
    assert "usage: branch-edge enrol " in page
    assert "| `--review {off,standard,strict}` |" in page


def test_every_command_line_option_has_a_help_text(docgen: ModuleType) -> None:
    assert docgen.undocumented_options() == [], "add help=... so the command-line reference explains it"


def test_the_mqtt_reference_lists_every_topic_and_shipped_schema(docgen: ModuleType) -> None:
    from mqtt.topics import LEAF_SCHEMAS

    page = docgen.generate()["docs/reference/mqtt.md"]
    for leaf in LEAF_SCHEMAS:
        assert f"`bank/v1/branch/{{branch_id}}/{leaf.replace('+', '{device_id}')}`" in page
    for schema in sorted((ROOT / "mqtt" / "schemas").glob("*.json")):
        assert f"JSON Schema: `mqtt/schemas/{schema.name}`" in page
    assert "| `customer.masked_id_number` | string | yes | max length 32 |" in page


def test_the_policy_reference_shows_each_scenario_as_the_service_reads_it(docgen: ModuleType) -> None:
    from edge.counter.policies import load_policies

    page = docgen.generate()["docs/reference/policies.md"]
    header = next(line for line in page.splitlines() if line.startswith("| key | `"))
    for name in load_policies().scenarios:
        assert f"`{name}`" in header


def test_the_readme_is_a_front_page() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 200, f"README.md has {len(lines)} lines; move detail into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_page_speaks_of_issue_numbers_or_plans(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert not re.findall(r"(?i)issue [0-9]|next milestone|roadmap", text)


def mentioned_paths(text: str) -> set[str]:
    """Repository paths in code spans: `edge/lobby/daemon.py`, `tests/e2e/test_soak.py::test_x`."""
    found = set()
    for span in re.findall(r"`([^`\n]+)`", text):
        for token in span.split():
            word = token.split("::")[0].rstrip(".,;:)")
            if word.split("/")[0] in TOP_LEVEL and "/" in word and not re.search(r"[<>{}$*]", word):
                found.add(word)
    return found


def names_a_module(name: str) -> bool:
    """`edge.…` and `ui.…` always name our code; `mqtt.x` and `models.x` only when `x` is a module
    of theirs (`mqtt.outbox_path` is a configuration key, `mqtt.peer_cert_as_username` a broker's)."""
    top, second = name.split(".")[:2]
    if top in ("edge", "ui", "hq"):
        return True
    return (ROOT / top / f"{second}.py").is_file() or (ROOT / top / second).is_dir()


def mentioned_modules(text: str) -> set[str]:
    """Dotted names in code spans that start with one of our packages: `edge.crm.outcomes.OutcomeSink`."""
    dotted = r"(?<![\w./-])((?:edge|ui|hq|mqtt|models)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)"
    names = {name for span in re.findall(r"`([^`\n]+)`", text) for name in re.findall(dotted, span)}
    files = ("toml", "py", "json", "db", "log", "key", "md", "service")
    return {name for name in names if not name.endswith(files) and names_a_module(name)}


def resolves(dotted: str) -> bool:
    """The longest prefix that is a module file or package exists, and the next name is defined in it."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        base = ROOT.joinpath(*parts[:cut])
        source = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
        if source.is_file():
            if cut == len(parts):
                return True
            name = parts[cut]
            text = source.read_text(encoding="utf-8")
            defined = rf"^\s*(def|class|async def)\s+{name}\b|^\s*{name}\s*[:=]|import.*\b{name}\b"
            return bool(re.search(defined, text, re.M)) or base.joinpath(name).exists()
    return False


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_path_and_module_a_page_names_exists(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    missing = sorted(p for p in mentioned_paths(text) if not (ROOT / p).exists())
    missing += sorted(m for m in mentioned_modules(text) if not resolves(m))
    assert not missing, f"{page.relative_to(ROOT)} names what does not exist: {missing}"
