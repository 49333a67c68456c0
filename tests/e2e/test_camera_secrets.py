"""Camera passwords are secrets: a real `branch-edge run` with credentialed cameras (in the URL,
in a 0600 file, in an environment variable; one wrong, one unreachable, one with a substream)
and `branch-edge doctor` on the same config; every output is scanned for the passwords: the
log (stderr and the log file, at DEBUG), the device status over MQTT, /metrics, the run's JSON
summary and doctor's text and JSON."""

from __future__ import annotations

import base64
import os
import queue
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from urllib.parse import quote

import pytest

from edge.tools.synth import SynthSpec, generate_lobby
from mqtt.codec import encode
from mqtt.messages import DeviceStatus
from tests.daemon_fixtures import edge_config, write_toml
from tests.integration.test_daemon import status_watcher
from tests.mqtt_fixtures import free_port, wait_until
from tests.rtsp_fixtures import RtspCameraServer, rtsp_camera

REPO = Path(__file__).resolve().parents[2]
USER, PASSWORD, WRONG = "admin", "Sesame:Open/42", "Wr0ng#Guess"


def forms(secret: str) -> list[str]:
    """Every way a password could leak: as is, URL-encoded, in a basic-auth header."""
    header = base64.b64encode(f"{USER}:{secret}".encode()).decode()
    return [secret, quote(secret, safe=""), quote(secret), header]


def leaks(text: str) -> list[str]:
    return [f for s in (PASSWORD, WRONG) for f in forms(s) if f in text]


@pytest.fixture(scope="module")
def lobby(tmp_path_factory, data_dir) -> Path:
    """Faces walking in: the substream camera asks its main stream for them."""
    out = tmp_path_factory.mktemp("secrets-lobby")
    generate_lobby(data_dir / "faces", out / "lobby.mp4", out / "truth.json", enrolled=1, strangers=1,
                   spec=SynthSpec(seconds=6.0, fps=8.0, walk_s=4.0), seed=5)
    return out / "lobby.mp4"


def cameras_config(tmp_path: Path, camera: RtspCameraServer) -> list[dict[str, object]]:
    secret = tmp_path / "camera.password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    secret.chmod(0o600)
    bare = camera.url("main", user="")
    common = {"backoff_min_s": 0.2, "backoff_max_s": 1.0, "analyse_fps": 5.0}
    return [
        {"name": "inline", "source": camera.url("main"), "substream": camera.url("sub"),
         "main_crop_below_px": 400.0, **common},  # every face cropped from the main stream
        {"name": "from-file", "source": bare, "username": USER, "password_file": str(secret), **common},
        {"name": "from-env", "source": bare, "username": USER, "password_env": "LOBBY_CAM_PW", **common},
        {"name": "wrong", "source": camera.url("main", password=WRONG), **common},
        {"name": "gone", "source": f"rtsp://{USER}:{quote(PASSWORD, safe='')}@127.0.0.1:{free_port()}/x",
         **common},
    ]


def test_no_output_of_run_or_doctor_shows_a_camera_password(
        tmp_path: Path, provisioned_branch, mosquitto_broker, rtsp_cameras, models_dir: Path, *,
        lobby: Path) -> None:
    mosquitto_broker(provisioned_branch)
    camera = rtsp_camera(rtsp_cameras, lobby, streams={"main": (640, 360), "sub": (320, 180)}, user=USER,
                         password=PASSWORD)
    metrics_port = free_port()
    log_file = tmp_path / "logs" / "edge.log"
    cfg = edge_config(tmp_path, provisioned_branch, cameras_config(tmp_path, camera),
                      logging={"level": "DEBUG", "file": str(log_file)}, metrics={"port": metrics_port})
    config = write_toml(cfg, tmp_path / "edge.toml")
    env = {**os.environ, "BRANCH_EDGE_MODELS": str(models_dir), "LOBBY_CAM_PW": PASSWORD}
    watcher = status_watcher(provisioned_branch, tmp_path)
    statuses: list[DeviceStatus] = []
    stderr: list[str] = []
    scraped: list[str] = []
    with subprocess.Popen([sys.executable, "-m", "edge.cli", "run", "--config", str(config), "--json",
                           "--log-format", "json"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        reader = threading.Thread(target=lambda: stderr.extend(proc.stderr or []), daemon=True)
        reader.start()

        def settled() -> bool:
            try:
                while True:
                    message = watcher.receiver.queue.get_nowait().message
                    if isinstance(message, DeviceStatus):
                        statuses.append(message)
            except queue.Empty:
                pass
            if not statuses:
                return False
            by_name = {c.name: c for c in statuses[-1].cameras}
            return (all(by_name[n].state == "up" for n in ("inline", "from-file", "from-env"))
                    and by_name["wrong"].last_error.startswith("authentication failed")
                    and "camera unreachable" in by_name["gone"].last_error
                    and by_name["wrong"].reconnects_last_hour >= 2)

        try:
            assert wait_until(settled, 120), (statuses[-1:], stderr[-20:])
            with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10) as reply:
                scraped.append(reply.read().decode())
            proc.send_signal(signal.SIGTERM)
            summary, _ = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
        reader.join(10)
    watcher.stop()
    assert proc.returncode == 0
    metrics = scraped[0]
    assert 'branch_edge_camera_up{camera="inline"} 1.0' in metrics
    assert 'branch_edge_camera_errors_total{camera="wrong",reason="auth"}' in metrics
    log_text = "".join(stderr) + log_file.read_text(encoding="utf-8")
    assert "authentication failed" in log_text and "main stream opened" in log_text  # the log did speak
    status_text = "\n".join(encode(s).decode() for s in statuses)
    doctor = []
    for flags in ([], ["--json"]):
        done = subprocess.run([sys.executable, "-m", "edge.cli", "doctor", "--config", str(config), *flags],
                              cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
        doctor.append(done.stdout + done.stderr)
    assert "authentication failed" in doctor[0] and f"{USER}:***@" in doctor[0]
    outputs = {"log": log_text, "status over MQTT": status_text, "metrics": metrics, "run summary": summary,
               "doctor": doctor[0], "doctor --json": doctor[1]}
    found = {name: leaks(text) for name, text in outputs.items() if leaks(text)}
    assert not found, f"camera passwords in: {found}"
