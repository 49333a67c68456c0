"""``branch-pad`` as a program: --console prints arrivals, --screenshots saves card PNGs
(the demo's path), bad configuration is one line and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PyQt6.QtGui import QImage

from mqtt.client import SUBSCRIBED_LINE
from mqtt.provision.run import ProvisionResult
from tests.mqtt_fixtures import make_client, mosquitto_broker, provisioned_branch  # noqa: F401
from ui.state.sample import sample_arrival

REPO = Path(__file__).resolve().parents[2]


def pad_toml(prov: ProvisionResult, device: str, folder: Path) -> Path:
    """A pad.toml that reads the provisioned mqtt.toml, as the README tells operators to write it."""
    folder.mkdir(parents=True, exist_ok=True)
    text = (f'branch_id = "{prov.branch_id}"\nrole = "rm"\nlanguage = "zh-CN"\n'
            f'mqtt_file = "{prov.device_dir(device) / "mqtt.toml"}"\n'
            f'[mqtt]\nhost = "127.0.0.1"\noutbox_path = "{folder / "outbox.db"}"\n'
            f'seen_ids_path = "{folder / "seen.db"}"\nreconnect_min_s = 0.1\nreconnect_max_s = 1.0\n')
    path = folder / "pad.toml"
    path.write_text(text, encoding="utf-8")
    return path


def branch_pad(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "ui.cli", *args], cwd=REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, **(env or {})})


def wait_for_line(proc: subprocess.Popen[str], needle: str, stream: str = "stdout") -> list[str]:
    lines = []
    pipe = proc.stdout if stream == "stdout" else proc.stderr
    assert pipe is not None
    for line in pipe:
        lines.append(line)
        if needle in line:
            return lines
    raise AssertionError(f"{needle!r} never printed; got {lines}")


@pytest.fixture
def edge(provisioned_branch, mosquitto_broker, tmp_path: Path):  # type: ignore[no-untyped-def]  # noqa: F811
    mosquitto_broker(provisioned_branch)
    client = make_client(provisioned_branch, "edge-1", tmp_path / "edge")
    client.start()
    assert client.wait_connected(10)
    yield client
    client.stop()


def test_console_prints_arrivals(provisioned_branch, edge, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    config = pad_toml(provisioned_branch, "rm-1", tmp_path / "pad")
    proc = branch_pad("--config", str(config), "--console", "--language", "en", "--exit-after", "2")
    try:
        wait_for_line(proc, "Connected")
        edge.publish(sample_arrival(name="王晓明", customer_id="c-1", assigned_rm="rm-1"))
        edge.publish(sample_arrival(name="李娜", customer_id="c-2", assigned_rm="rm-2"))
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    lines = [line for line in out.splitlines() if "+" in line]
    assert len(lines) == 2
    assert "王晓明" in out and "[My customer]" in lines[[("王晓明" in x) for x in lines].index(True)]
    assert "三年期大额存单" in lines[0]


def test_screenshots_of_every_arrival_headless(provisioned_branch, edge, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    config = pad_toml(provisioned_branch, "rm-1", tmp_path / "pad")
    shots = tmp_path / "shots"
    env = {"QT_QPA_PLATFORM": "offscreen"}
    proc = branch_pad("--config", str(config), "--screenshots", str(shots), "--exit-after", "2",
                      "--log-level", "INFO", env=env)
    try:
        # Arrivals sent before the PAD's subscriptions are acknowledged are lost to its first connection.
        wait_for_line(proc, SUBSCRIBED_LINE, "stderr")
        for seed in range(2):
            edge.publish(sample_arrival(customer_id=f"c-{seed}", seed=seed))
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "propagateSizeHints" not in err
    pngs = sorted(p.name for p in shots.glob("*.png"))
    assert len(pngs) == 2 and all(name.startswith("card-") for name in pngs)
    assert QImage(str(shots / pngs[0])).width() == 1280


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read config file"),
        ("branch_id = ", "not valid TOML"),
        ('branch_id = "b1"\nrole = "cashier"\n[mqtt]\n', "role"),
        ('branch_id = "b1"\nmqtt_file = "nowhere.toml"\n', "cannot read config file"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(tmp_path: Path, content: str | None, message: str) -> None:
    path = tmp_path / "pad.toml"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    proc = branch_pad("--config", str(path), "--console")
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert message in err and len(err.strip().splitlines()) == 1


def test_demo_pad_process_on_the_embedded_broker(tmp_path: Path) -> None:
    """The demo's path: embedded broker (no TLS), a PAD process saving one card per arrival."""
    from edge.tools.demo.bus import demo_broker
    from edge.tools.demo.pad import PadProcess
    from mqtt.client import BranchClient, Identity
    from mqtt.config import MqttConfig

    base = MqttConfig(device_id="edge", outbox_path=tmp_path / "edge-outbox.db",
                      seen_ids_path=tmp_path / "edge-seen.db")
    with demo_broker(base) as bus:
        pad = PadProcess.start(bus, "demo", tmp_path / "pad", tmp_path / "cards", count=2, language="en")
        assert pad.wait_connected(), pad.log
        edge = BranchClient(bus, Identity("demo", "edge", "edge"))
        edge.start()
        for seed in range(2):
            edge.publish(sample_arrival("demo", customer_id=f"c-{seed}", seed=seed))
        cards = pad.finish()
        edge.stop()
    assert pad.proc.returncode == 0, pad.log
    assert [c.name for c in cards] == ["card-001-c-0.png", "card-002-c-1.png"]
