"""Operations: `branch-edge doctor` against real parts (models, a video camera, a
Mosquitto broker, the keyed store), the sample config and the systemd unit."""

from __future__ import annotations

import configparser
import json
import re
import tomllib
from pathlib import Path

import pytest
from pydantic import BaseModel

from edge.cli import main
from edge.config import CameraConfig, EdgeConfig, parse_config
from tests.daemon_fixtures import edge_config, write_toml
from tests.integration.test_capture import write_video

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "scripts" / "edge.sample.toml"
UNIT = REPO / "scripts" / "branch-edge.service"


def doctor(config: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:
    code = main(["doctor", "--config", str(config), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


@pytest.fixture
def healthy(tmp_path: Path, provisioned_branch, mosquitto_broker, models_dir: Path):
    broker = mosquitto_broker(provisioned_branch)
    video = write_video(tmp_path / "cam.mp4", 5, size=(320, 240))
    cfg = edge_config(tmp_path, provisioned_branch, [{"name": "lobby-1", "source": str(video)}],
                      models={"dir": str(models_dir)})
    return write_toml(cfg, tmp_path / "edge.toml"), cfg, broker


def test_doctor_passes_on_a_healthy_edge(healthy, capsys) -> None:
    config, _, _ = healthy
    code, report = doctor(config, capsys)
    by_name = {c["name"]: c for c in report["checks"]}
    assert code == 0, report
    assert report["ok"] is True
    assert set(by_name) == {"models", "camera lobby-1", "broker", "store", "disk", "clock"}
    assert all(c["status"] in ("ok", "warn") for c in report["checks"])
    assert "320x240" in by_name["camera lobby-1"]["detail"]
    assert "TLS" in by_name["broker"]["detail"]
    assert "files verified" in by_name["models"]["detail"]


def test_doctor_names_each_broken_part_and_what_to_fix(healthy, tmp_path: Path, capsys) -> None:
    config, _, broker = healthy
    broker.stop()
    (tmp_path / "cam.mp4").unlink()
    other_key = tmp_path / "wrong.key"
    other_key.write_text("00" * 32)
    code, report = doctor(config, capsys, "--key-file", str(other_key))
    by_name = {c["name"]: c for c in report["checks"]}
    assert code == 1
    assert report["ok"] is False
    for name in ("camera lobby-1", "broker", "store"):
        assert by_name[name]["status"] == "fail", by_name[name]
        assert by_name[name]["fix"]
    assert by_name["models"]["status"] == "ok"
    assert "cannot reach" in by_name["broker"]["detail"]


def test_doctor_text_output_says_what_to_fix(tmp_path: Path, capsys) -> None:
    config = tmp_path / "edge.toml"
    config.write_text('[models]\ndir = "/nonexistent"\n[store]\npath = "/nonexistent/x.db"\n'
                      '[[cameras]]\nname = "c1"\nsource = "/nonexistent.mp4"\n')
    assert main(["doctor", "--config", str(config)]) == 1
    out = capsys.readouterr().out
    assert re.search(r"\[FAIL\] camera c1: cannot open", out)
    assert "fix: " in out
    assert out.strip().endswith("some checks failed")


def documented_keys(text: str) -> set[str]:
    """Keys set or shown commented out ("# key = ...") in the sample, with their section."""
    keys, section = set(), ""
    for line in text.splitlines():
        if m := re.match(r"^\[\[?([a-z_]+)\]\]?", line):
            section = m.group(1)
        elif m := re.match(r"^#?\s*([a-z_]+) = ", line):
            keys.add(f"{section}.{m.group(1)}" if section else m.group(1))
    return keys


def config_keys() -> set[str]:
    keys = set()
    for name, field in EdgeConfig.model_fields.items():
        model = type(field.default) if isinstance(field.default, BaseModel) else None
        if name == "cameras":
            model = CameraConfig
        if model is None:
            keys.add(name)
        else:
            keys |= {f"{name}.{k}" for k in model.model_fields}
    return keys


def test_sample_config_loads_and_documents_every_key() -> None:
    cfg = parse_config(tomllib.loads(SAMPLE.read_text(encoding="utf-8")), str(SAMPLE))
    assert [c.name for c in cfg.cameras] == ["lobby-1", "door-2"]
    assert cfg.logging.format == "json"
    missing = config_keys() - documented_keys(SAMPLE.read_text(encoding="utf-8"))
    assert not missing, f"document these keys in scripts/edge.sample.toml: {sorted(missing)}"
    for line in SAMPLE.read_text(encoding="utf-8").splitlines():
        if re.match(r"^[a-z_]+ = ", line):
            continue
        assert not line or line.startswith(("#", "[")) or " = " in line


def test_systemd_unit_runs_the_daemon_with_the_config() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read_string(UNIT.read_text(encoding="utf-8"))
    service = unit["Service"]
    assert re.search(r"branch-edge run --config /etc/branch-edge/edge.toml$", service["ExecStart"])
    assert service["KillSignal"] == "SIGTERM"
    assert service["Restart"] == "on-failure"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    assert "mosquitto.service" in unit["Unit"]["After"]
