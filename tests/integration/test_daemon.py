"""The daemon's composition root: one stop event ends every thread; the device
status is published retained; SIGTERM stops the CLI daemon cleanly; JSON logs."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge.config import EdgeConfig
from edge.core.errors import StoreError
from edge.lobby.capture import AnalysisClock
from edge.lobby.daemon import EdgeDaemon
from mqtt.messages import DeviceStatus
from mqtt.topics import BranchTopics
from tests.daemon_fixtures import edge_client, edge_config, next_message, store_opener, write_toml
from tests.integration.test_capture import write_video
from tests.mqtt_fixtures import make_client, wait_until

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def lobby_video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "lobby.mp4", 20, fps=10, size=(320, 240))


@pytest.fixture
def broker_cfg(tmp_path: Path, provisioned_branch, mosquitto_broker, lobby_video: Path) -> EdgeConfig:
    mosquitto_broker(provisioned_branch)
    cameras = [{"name": "lobby-1", "source": str(lobby_video), "loop": True, "analyse_fps": 5},
               {"name": "door-2", "source": str(tmp_path / "missing.mp4"), "backoff_min_s": 0.2}]
    return edge_config(tmp_path, provisioned_branch, cameras)


def status_watcher(prov, tmp_path: Path):
    topic = BranchTopics(prov.branch_id).status("edge-1")
    client = make_client(prov, "sup-1", tmp_path / "sup", subscriptions=(topic,))
    client.start()
    assert client.wait_connected(10)
    return client


def test_analysis_clock_keeps_the_configured_rate() -> None:
    clock = AnalysisClock()
    frames = [i / 25 for i in range(250)]  # 10 s of 25 fps video
    analysed = [ts for ts in frames if clock.due("c", ts, 10.0)]
    assert 98 <= len(analysed) <= 101
    assert max(b - a for a, b in itertools.pairwise(analysed)) <= 0.12 + 1e-9


def test_daemon_runs_publishes_status_and_stops_every_thread(
        tmp_path: Path, provisioned_branch, broker_cfg: EdgeConfig, engine) -> None:
    watcher = status_watcher(provisioned_branch, tmp_path)
    baseline = set(threading.enumerate())
    daemon = EdgeDaemon(broker_cfg, engine, store_opener(broker_cfg), edge_client(broker_cfg))
    daemon.start()
    try:
        assert wait_until(lambda: daemon.worker.fps.rate() > 0, 30)  # frames are being analysed
        status = next_message(watcher.receiver, DeviceStatus, 10,
                              lambda s: s.cameras and s.cameras[0].state == "up" and s.analysed_fps > 0)
        assert status is not None, "no status with a live camera"
        cameras = {c.name: c for c in status.cameras}
        assert cameras["lobby-1"].fps > 0  # frames flow; how many per second is the bench's business
        assert cameras["door-2"].state == "down"
        assert cameras["door-2"].last_error == "cannot open source"
        assert status.state == "online"
        assert status.outbox_depth == 0
        assert status.last_arrival_at is None  # nobody in this video
    finally:
        daemon.stop()
    assert not [t.name for t in daemon.threads() if t.is_alive()]
    assert wait_until(lambda: not (set(threading.enumerate()) - baseline), 5), \
        [t.name for t in set(threading.enumerate()) - baseline]
    stopped = next_message(watcher.receiver, DeviceStatus, 10, lambda s: s.state == "stopped")
    assert stopped is not None
    assert {c.name for c in stopped.cameras} == {"lobby-1", "door-2"}
    watcher.stop()


def test_daemon_with_a_wrong_store_key_fails_to_start_and_leaves_no_threads(
        tmp_path: Path, broker_cfg: EdgeConfig, engine) -> None:
    other_key = tmp_path / "other.key"
    from edge.store.crypto import generate_key_file

    generate_key_file(other_key)
    cfg = broker_cfg.model_copy(update={"store": broker_cfg.store.model_copy(update={"key_file": other_key})})
    baseline = set(threading.enumerate())
    daemon = EdgeDaemon(cfg, engine, store_opener(cfg), edge_client(cfg))
    with pytest.raises(StoreError):
        daemon.start()
    daemon.stop()
    assert not (set(threading.enumerate()) - baseline)


def test_cli_daemon_stops_cleanly_on_sigterm_with_json_logs(
        tmp_path: Path, broker_cfg: EdgeConfig, models_dir: Path) -> None:
    config = write_toml(broker_cfg.model_copy(update={"cameras": broker_cfg.cameras[:1]}),
                        tmp_path / "edge.toml")
    env = {**os.environ, "BRANCH_EDGE_MODELS": str(models_dir)}
    lines: list[str] = []
    with subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(config),
                           "--log-format", "json"], cwd=REPO, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        reader = threading.Thread(target=lambda: lines.extend(proc.stderr or []), daemon=True)
        reader.start()
        try:
            assert wait_until(lambda: any('"daemon started"' in line for line in lines), 60), lines
            time.sleep(1.0)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        reader.join(5)
    records = [json.loads(line) for line in lines if line.startswith("{")]
    messages = [r["msg"] for r in records]
    assert "signal SIGTERM: stopping" in messages
    assert "daemon stopped" in messages
    started = next(r for r in records if r["msg"] == "daemon started")
    assert started["cameras"] == ["lobby-1"]
    assert started["level"] == "INFO"


def test_counter_camera_feeds_authorization_not_the_lobby_pipeline(
        tmp_path: Path, provisioned_branch, mosquitto_broker, lobby_video: Path, engine) -> None:
    mosquitto_broker(provisioned_branch)
    cameras = [{"name": "lobby-1", "source": str(lobby_video), "loop": True, "analyse_fps": 5},
               {"name": "counter-1", "source": str(lobby_video), "loop": True, "role": "counter"}]
    cfg = edge_config(tmp_path, provisioned_branch, cameras)
    daemon = EdgeDaemon(cfg, engine, store_opener(cfg), edge_client(cfg))
    frames = daemon.counter_frames(count=3, within_s=5.0)
    assert frames is not None
    daemon.start()
    try:
        assert wait_until(lambda: daemon.worker.analysed["lobby-1"] > 3, 15)
        got = frames()
        assert len(got) == 3 and got[0].shape == (240, 320, 3)
        assert "counter-1" not in daemon.worker.analysed  # never lobby recognition
    finally:
        daemon.stop()
    (tmp_path / "b").mkdir()
    lobby_only = edge_config(tmp_path / "b", provisioned_branch, cameras[:1])
    client = edge_client(lobby_only)
    try:
        assert EdgeDaemon(lobby_only, engine, store_opener(lobby_only), client).counter_frames() is None
    finally:
        client.stop(0)
