"""Pull mode, for real: the daemon pulls RTSP from a camera on loopback (GStreamer's RTSP
server, tests/rtsp_camera_server.py) with a user name and password, over TCP and UDP;
the camera reboots (at another resolution), stalls without closing, is given a wrong
password, and serves H.265.  No timing is bounded from above: every wait is on a condition."""

from __future__ import annotations

import itertools
import re
import threading
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from edge.config import CameraConfig, EdgeConfig
from edge.lobby.capture import Camera, open_source
from edge.lobby.daemon import EdgeDaemon
from edge.lobby.status import camera_status
from mqtt.messages import DeviceStatus
from tests.daemon_fixtures import edge_client, edge_config, next_message, store_opener
from tests.integration.test_capture import write_video
from tests.integration.test_daemon import status_watcher
from tests.mqtt_fixtures import wait_until
from tests.rtsp_fixtures import rtsp_camera

USER, PASSWORD = "admin", "Pa55:w/rd@lobby"  # characters a URL must escape


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("rtsp") / "clip.mp4", 30, fps=10, size=(320, 240))


@pytest.fixture
def stop() -> threading.Event:
    event = threading.Event()
    yield event
    event.set()


def camera_config(url: str, **options: object) -> CameraConfig:
    values: dict[str, object] = {"name": "lobby-1", "source": url, "backoff_min_s": 0.2, "backoff_max_s": 1.6,
                                 "stale_after_s": 2.0, "open_timeout_s": 10.0, "read_timeout_s": 5.0}
    values.update(options)
    return CameraConfig.model_validate(values)


def recorded_delays(cam: Camera, monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The back-off delays the camera's watchdog asks for, in order."""
    delays: list[float] = []
    delay = cam.backoff.delay

    def recorded(now: float) -> float:
        delays.append(delay(now))
        return delays[-1]

    monkeypatch.setattr(cam.backoff, "delay", recorded)
    return delays


def frame_shape(cam: Camera) -> tuple[int, ...] | None:
    frame = cam.slot.peek()
    return None if frame is None else frame.image.shape


@pytest.mark.parametrize("transport", ["tcp", "udp"])
def test_pulls_over_tcp_and_udp_with_a_password(rtsp_cameras, clip: Path, stop: threading.Event,
                                                transport: str) -> None:
    server = rtsp_camera(rtsp_cameras, clip, streams={"lobby": (320, 240)}, user=USER, password=PASSWORD)
    cam = Camera(camera_config(server.url("lobby"), rtsp_transport=transport), stop, time.monotonic())
    cam.start()
    assert wait_until(lambda: cam.health.frames >= 10, 60), cam.snapshot()
    assert frame_shape(cam) == (240, 320, 3)
    snap = cam.snapshot()
    assert (snap["state"], snap["codec"], snap["width"], snap["height"]) == ("up", "h264", 320, 240)
    assert snap["source"] == f"rtsp://{USER}:***@127.0.0.1:{server.port}/lobby"
    assert PASSWORD not in str(snap)


def test_password_from_a_file_or_the_environment(rtsp_cameras, clip: Path, stop: threading.Event,
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = rtsp_camera(rtsp_cameras, clip, streams={"lobby": (320, 240)}, user=USER, password=PASSWORD)
    secret = tmp_path / "camera.password"
    secret.write_text(PASSWORD + "\n", encoding="utf-8")
    secret.chmod(0o600)
    monkeypatch.setenv("LOBBY_CAMERA_PASSWORD", PASSWORD)
    bare = server.url("lobby", user="")
    from_file = Camera(camera_config(bare, name="from-file", username=USER, password_file=str(secret)),
                       stop, time.monotonic())
    from_env = Camera(camera_config(bare, name="from-env", username=USER,
                                    password_env="LOBBY_CAMERA_PASSWORD"), stop, time.monotonic())
    for cam in (from_file, from_env):
        cam.start()
    assert wait_until(lambda: from_file.health.frames >= 5 and from_env.health.frames >= 5, 60), \
        (from_file.snapshot(), from_env.snapshot())


def test_a_password_file_others_may_read_is_refused(tmp_path: Path, stop: threading.Event) -> None:
    secret = tmp_path / "camera.password"
    secret.write_text(PASSWORD, encoding="utf-8")
    secret.chmod(0o644)
    cam = Camera(camera_config("rtsp://127.0.0.1:9/lobby", username=USER, password_file=str(secret)),
                 stop, time.monotonic())
    cam.start()
    assert wait_until(lambda: cam.health.errors["credentials"] >= 1, 30), cam.snapshot()
    assert "chmod 600" in cam.snapshot()["last_error"]


def test_wrong_password_says_authentication_failed_and_backs_off(
        rtsp_cameras, clip: Path, stop: threading.Event, monkeypatch: pytest.MonkeyPatch) -> None:
    server = rtsp_camera(rtsp_cameras, clip, streams={"lobby": (320, 240)}, user=USER, password=PASSWORD)
    opened: list[float] = []

    def opener(cfg: CameraConfig):  # the real opener, timed
        opened.append(time.monotonic())
        return open_source(cfg)

    cam = Camera(camera_config(server.url("lobby", password="not-the-password")), stop, time.monotonic(),
                 opener=opener)
    delays = recorded_delays(cam, monkeypatch)
    cam.start()
    assert wait_until(lambda: len(opened) >= 5, 60), cam.snapshot()
    status = camera_status(cam)  # what the device status publishes
    assert status.state == "down"
    assert status.last_error.startswith("authentication failed"), status
    assert cam.health.errors["auth"] >= 4
    # Not a storm: the delay doubles (0.2, 0.4, 0.8, 1.6 s, then capped) and is waited each time.
    assert delays[:4] == pytest.approx([0.2, 0.4, 0.8, 1.6])
    assert all(gap >= wait for gap, wait in zip(np.diff(opened[:5]), delays, strict=False))
    # Each attempt is one open and one probe: two connections to the camera, no more.
    assert server.count("client") <= 2 * len(opened) + 2
    assert "not-the-password" not in str(cam.snapshot())


def test_stream_that_stalls_is_found_stale_not_left_to_the_read_timeout(
        rtsp_cameras, clip: Path, stop: threading.Event) -> None:
    server = rtsp_camera(rtsp_cameras, clip, streams={"lobby": (320, 240)}, user=USER, password=PASSWORD)
    # The read timeout is far longer than stale_after_s: only the watchdog can notice in time.
    cam = Camera(camera_config(server.url("lobby"), stale_after_s=1.0, read_timeout_s=60.0), stop,
                 time.monotonic())
    cam.start()
    assert wait_until(lambda: cam.health.frames >= 10, 60), cam.snapshot()
    server.stall()  # the connection stays open, the camera answers RTSP, no frame comes
    assert wait_until(lambda: cam.health.errors["stale"] >= 1, 60), cam.snapshot()
    snap = cam.snapshot()
    assert snap["last_error"] == "no frame for 1 s"
    assert snap["errors"].get("read", 0) == 0  # the read did not time out first
    frames = cam.health.frames
    server.resume()
    assert wait_until(lambda: cam.health.state == "up" and cam.health.frames > frames + 5, 60), cam.snapshot()
    stop.set()
    cam.join(10)
    assert wait_until(lambda: not any(t.is_alive() for t in cam.threads()), 70)


def test_h265_stream_is_decoded(rtsp_cameras, clip: Path, stop: threading.Event) -> None:
    server = rtsp_camera(rtsp_cameras, clip, streams={"lobby": (320, 240)}, codec="h265", user=USER,
                         password=PASSWORD)
    cam = Camera(camera_config(server.url("lobby")), stop, time.monotonic())
    cam.start()
    assert wait_until(lambda: cam.health.frames >= 10, 60), cam.snapshot()
    assert cam.snapshot()["codec"] == "hevc"
    assert frame_shape(cam) == (240, 320, 3)
    image = cam.slot.peek().image
    assert float(image.std()) > 5  # a picture, not a grey field of decoding errors


# --- through the daemon: status over MQTT and /metrics --------------------------------


def scrape(daemon: EdgeDaemon) -> str:
    assert daemon.metrics_server is not None
    url = f"http://127.0.0.1:{daemon.metrics_server.port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.read().decode()


def metric(text: str, name: str, **labels: str) -> float | None:
    """The sample of ``name`` with exactly these labels (in any order), or None."""
    for line in text.splitlines():
        key, _, value = line.rpartition(" ")
        sample, _, rest = key.partition("{")
        found = dict(re.findall(r'(\w+)="([^"]*)"', rest))
        if sample == name and found == labels:
            return float(value)
    return None


@pytest.fixture
def broker(provisioned_branch, mosquitto_broker):
    mosquitto_broker(provisioned_branch)
    return provisioned_branch


def test_camera_reboot_at_another_resolution_is_reported_in_status_and_metrics(
        rtsp_cameras, clip: Path, tmp_path: Path, broker, engine, *, monkeypatch: pytest.MonkeyPatch) -> None:
    provisioned_branch = broker
    server = rtsp_camera(rtsp_cameras, clip, streams={"lobby": (320, 240)}, user=USER, password=PASSWORD)
    camera = {"name": "lobby-1", "source": server.url("lobby"), "analyse_fps": 5.0, "backoff_min_s": 0.2,
              "backoff_max_s": 1.6, "stale_after_s": 2.0, "read_timeout_s": 2.0}
    cfg: EdgeConfig = edge_config(tmp_path, provisioned_branch, [camera], metrics={"port": 0})
    watcher = status_watcher(provisioned_branch, tmp_path)
    daemon = EdgeDaemon(cfg, engine, store_opener(cfg), edge_client(cfg))
    cam = daemon.cameras[0]
    delays = recorded_delays(cam, monkeypatch)
    daemon.start()
    try:
        assert wait_until(lambda: daemon.worker.analysed["lobby-1"] >= 5, 60), cam.snapshot()
        before = len(delays)  # restarts before the reboot (a slow first open) do not count
        server.kill()  # the camera reboots...
        down = next_message(watcher.receiver, DeviceStatus, 60,
                            lambda s: s.cameras[0].state == "down" and s.cameras[0].last_error)
        assert down is not None, cam.snapshot()
        why = down.cameras[0].last_error
        assert "camera unreachable" in why or "read failed" in why, why
        assert wait_until(lambda: len(delays) >= before + 4, 60), delays  # tried while it is off, paced
        paced = delays[before:before + 4]
        assert paced[0] >= 0.2
        assert all(b == pytest.approx(min(2 * a, 1.6)) for a, b in itertools.pairwise(paced)), paced
        server.start({"lobby": (256, 192)})  # ... and comes back at another resolution
        assert wait_until(lambda: frame_shape(cam) == (192, 256, 3), 60), cam.snapshot()
        analysed = daemon.worker.analysed["lobby-1"]
        assert wait_until(lambda: daemon.worker.analysed["lobby-1"] >= analysed + 5, 60)
        back = next_message(watcher.receiver, DeviceStatus, 60,
                            lambda s: s.cameras[0].state == "up" and s.cameras[0].reconnects_last_hour >= 1)
        assert back is not None, cam.snapshot()
        text = scrape(daemon)
        assert metric(text, "branch_edge_camera_up", camera="lobby-1") == 1.0
        assert (metric(text, "branch_edge_camera_reconnects_total", camera="lobby-1") or 0) >= 4
        errors = metric(text, "branch_edge_camera_errors_total", camera="lobby-1", reason="unreachable")
        assert (errors or 0) >= 1
        assert metric(text, "branch_edge_camera_stream_info", camera="lobby-1", stream="main", codec="h264",
                      width="256", height="192") == 1.0
        assert PASSWORD not in text
    finally:
        daemon.stop()
        watcher.stop()
