"""Install-level promises: one OpenCV wheel, one paho importer, a true README."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from importlib.metadata import distributions
from pathlib import Path

from edge.cli import COMMANDS, build_parser
from edge.config import EdgeConfig

REPO = Path(__file__).resolve().parents[2]
OPENCV_WHEELS = {"opencv-python", "opencv-python-headless", "opencv-contrib-python",
                 "opencv-contrib-python-headless"}


def test_exactly_one_opencv_wheel_is_installed():
    installed = {d.metadata["Name"].lower() for d in distributions()} & OPENCV_WHEELS
    assert installed == {"opencv-python-headless"}


def test_paho_is_imported_in_exactly_one_module():
    importers = [
        p.relative_to(REPO).as_posix()
        for folder in ("edge", "mqtt", "ui", "models", "scripts")
        for p in (REPO / folder).rglob("*.py")
        if re.search(r"^\s*(import paho|from paho)", p.read_text(encoding="utf-8"), re.M)
    ]
    assert len(importers) == 1, importers


def test_every_command_is_registered_and_documented():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    # Module edge/commands/evaluate_recommender.py is the command `evaluate-recommender`.
    names = {name.replace("_", "-") for name in COMMANDS}
    assert set(sub.choices) == names
    reference = (REPO / "docs" / "reference" / "cli.md").read_text(encoding="utf-8")
    for name in sorted(names):
        assert f"branch-edge {name}" in reference, f"the CLI reference has no section for branch-edge {name}"


def test_the_install_pages_config_example_is_valid():
    page = (REPO / "docs" / "operations" / "install.md").read_text(encoding="utf-8")
    example = re.search(r"```toml\n(branch_id.*?)```", page, re.S)
    assert example, "the install page has a full ```toml edge config example starting with branch_id"
    EdgeConfig.model_validate(tomllib.loads(example.group(1)))


def test_the_build_ships_the_data_folders_without_a_setuptools_warning(tmp_path: Path) -> None:
    """models/packs and mqtt/schemas hold data only: the build must ship them and not warn
    that an importable folder is missing from the packages (warnings are errors here)."""
    out = tmp_path / "build"
    build = ("import sys, setuptools; "
             "sys.argv[:] = ['setup.py', '-q', 'build_py', '-d', sys.argv[1]]; setuptools.setup()")
    run = subprocess.run([sys.executable, "-W", "error", "-c", build, str(out)], cwd=REPO,
                         capture_output=True, text=True, timeout=300, check=False)
    assert run.returncode == 0, run.stderr[-3000:]
    for data in ("models/packs/default.toml", "mqtt/schemas/arrival-1.json", "edge/counter/policies.toml",
                 "mqtt/mosquitto.template.conf"):
        assert (out / data).is_file(), f"{data} is not in the build"
