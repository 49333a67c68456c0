"""Capture: files that end or loop, pacing, garbage, stale streams and real RTSP.

RTSP is real: here an ffmpeg process publishes a file with RTSP ANNOUNCE/RECORD to the
grabber, which listens (``rtsp_listen``: an encoder that pushes).  Pull mode, the way a
branch's IP cameras are read, is tested against GStreamer's RTSP server in
tests/integration/test_rtsp_pull.py.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.config import CameraConfig
from edge.core.errors import ConfigError
from edge.lobby.capture import Backoff, Camera, Frame, LatestFrame, open_source, source_kind, usable_image
from tests.mqtt_fixtures import free_port, wait_until


def write_video(path: Path, frames: int, fps: float = 10.0, size: tuple[int, int] = (160, 120)) -> Path:
    """A real MPEG-4 file whose frame i shows the number i in its pixel values."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, size)
    for i in range(frames):
        image = np.full((size[1], size[0], 3), (i * 7) % 256, np.uint8)
        cv2.putText(image, str(i), (10, 80), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
        writer.write(image)
    writer.release()
    return path


def camera(source: str | Path, **options: object) -> CameraConfig:
    values: dict[str, object] = {"name": "cam-1", "source": str(source), "backoff_min_s": 0.1,
                                 "backoff_max_s": 0.8, "stale_after_s": 1.0, "open_timeout_s": 3.0,
                                 "read_timeout_s": 2.0}
    values.update(options)
    return CameraConfig.model_validate(values)


def drain(cam: Camera, until: float, stop_when_ended: bool = True) -> list[Frame]:
    frames: list[Frame] = []
    while time.monotonic() < until:
        frame = cam.slot.take()
        if frame is not None:
            frames.append(frame)
        elif stop_when_ended and cam.health.state == "ended":
            break
        else:
            cam.slot.wait_fresh(0.05)
    return frames


@pytest.fixture
def stop() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def started(cfg: CameraConfig, stop: threading.Event, **kw: object) -> Camera:
    cam = Camera(cfg, stop, time.monotonic(), **kw)  # type: ignore[arg-type]
    cam.start()
    return cam


def watchdog_checks(cam: Camera, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """How many times the camera's watchdog has looked at its stream so far."""
    count = 0
    trouble = cam._trouble

    def counting() -> str:
        nonlocal count
        count += 1
        return trouble()

    monkeypatch.setattr(cam, "_trouble", counting)
    return lambda: count


def test_source_kinds() -> None:
    assert source_kind("0") == "usb"
    assert source_kind("rtsp://10.0.0.5/stream1") == "rtsp"
    assert source_kind("/videos/lobby.mp4") == "file"


def test_usable_image_rejects_garbage() -> None:
    assert usable_image(np.zeros((120, 160, 3), np.uint8))
    assert not usable_image(None)
    assert not usable_image(np.zeros((120, 160), np.uint8))
    assert not usable_image(np.zeros((120, 160, 3), np.float32))
    assert not usable_image(np.zeros((4, 4, 3), np.uint8))


def test_file_that_ends_delivers_every_frame_in_fast_mode(tmp_path: Path, stop: threading.Event,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    video = write_video(tmp_path / "v.mp4", 25)
    cam = started(camera(video, pace="fast"), stop)
    checks = watchdog_checks(cam, monkeypatch)
    frames = drain(cam, time.monotonic() + 10)
    assert [f.seq for f in frames] == list(range(1, 26))
    assert np.allclose(np.diff([f.ts for f in frames]), 0.1, atol=1e-6)  # video time
    assert wait_until(lambda: cam.health.state == "ended", 10)
    looked = checks()
    assert wait_until(lambda: checks() >= looked + 3, 10)  # three more looks at the ended file
    assert cam.backoff.restarts_within(time.monotonic()) == 0  # an ended file is not restarted
    stop.set()
    cam.join(2)
    assert not any(t.is_alive() for t in cam.threads())


def test_only_frames_due_for_analysis_are_handed_over(tmp_path: Path, stop: threading.Event) -> None:
    video = write_video(tmp_path / "v.mp4", 20, fps=10)
    cam = started(camera(video, pace="fast", analyse_fps=5), stop)
    frames = drain(cam, time.monotonic() + 10)
    assert len(frames) == 10
    assert np.allclose(np.diff([f.ts for f in frames]), 0.2, atol=1e-6)
    assert cam.health.frames == 20  # every frame was decoded, half converted and handed over


def test_looped_file_goes_on_with_increasing_time(tmp_path: Path, stop: threading.Event) -> None:
    video = write_video(tmp_path / "v.mp4", 8)
    cam = started(camera(video, pace="fast", loop=True), stop)
    frames = drain(cam, time.monotonic() + 2, stop_when_ended=False)[:30]
    assert len(frames) == 30
    assert all(b.ts > a.ts for a, b in itertools.pairwise(frames))
    # the ninth frame is the first frame again
    assert np.array_equal(frames[8].image, frames[0].image)
    assert cam.health.state == "up"


def test_native_pacing_keeps_only_the_newest_frame(tmp_path: Path, stop: threading.Event) -> None:
    video = write_video(tmp_path / "v.mp4", 20, fps=20)  # one second
    cam = started(camera(video, pace="native", analyse_fps=20), stop)
    begun = time.monotonic()
    assert wait_until(lambda: cam.health.frames >= 10, 10)  # a slow consumer: ten frames, none taken
    first = cam.slot.take()
    assert first is not None
    assert first.seq >= 9  # not the first frame: older frames were dropped
    assert cam.slot.take() is None  # nothing queued behind it
    assert wait_until(lambda: cam.health.state == "ended", 3)
    assert time.monotonic() - begun >= 0.9  # paced at 20 fps, not decoded at once


def test_garbage_file_is_retried_with_growing_back_off(tmp_path: Path, stop: threading.Event,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(np.random.default_rng(1).integers(0, 256, 50_000, np.uint8).tobytes())
    opened: list[float] = []
    delays: list[float] = []

    def opener(cfg: CameraConfig):  # the real opener, timed
        opened.append(time.monotonic())
        return open_source(cfg)

    cam = Camera(camera(garbage, backoff_min_s=0.1, backoff_max_s=0.4), stop, time.monotonic(), opener=opener)
    delay = cam.backoff.delay

    def recorded(now: float) -> float:
        delays.append(delay(now))
        return delays[-1]

    monkeypatch.setattr(cam.backoff, "delay", recorded)
    cam.start()
    assert wait_until(lambda: len(opened) >= 5, 30)
    # back-off 0.1 s, 0.2 s, 0.4 s, 0.4 s (capped), and each was waited before the next open
    assert delays[:4] == pytest.approx([0.1, 0.2, 0.4, 0.4])
    assert all(gap >= wait for gap, wait in zip(np.diff(opened[:5]), delays, strict=False))
    status = cam.snapshot()
    assert status["state"] == "down"
    assert status["last_error"] == "cannot open source"
    assert status["reconnects_last_hour"] >= 4
    assert cam.slot.take() is None


class GarbageServer:
    """A "camera" on loopback that answers every connection with random bytes."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        rng = np.random.default_rng(2)
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            with conn, contextlib.suppress(OSError):
                conn.sendall(rng.integers(0, 256, 4096, np.uint8).tobytes())
                time.sleep(0.2)

    def close(self) -> None:
        self.sock.close()
        self._thread.join(2)


def test_network_stream_of_garbage_is_down_and_retried(stop: threading.Event) -> None:
    server = GarbageServer()
    try:
        cam = started(camera(f"rtsp://127.0.0.1:{server.port}/live", open_timeout_s=1.0,
                             backoff_min_s=0.1, backoff_max_s=0.2), stop)
        assert wait_until(lambda: cam.snapshot()["reconnects_last_hour"] >= 2, 15), cam.snapshot()
        status = cam.snapshot()
        assert server.connections >= 3
        assert status["state"] == "down"
        assert status["frames"] == 0
        # the probe's DESCRIBE got garbage back: said in words, not "cannot open source"
        assert "does not answer as an RTSP camera" in status["last_error"] \
            or "camera unreachable" in status["last_error"], status
        assert cam.slot.take() is None
    finally:
        stop.set()
        server.close()


def test_missing_file_is_down_not_ended(tmp_path: Path, stop: threading.Event) -> None:
    cam = started(camera(tmp_path / "nope.mp4"), stop)
    assert wait_until(lambda: cam.health.state == "down", 3)
    assert cam.health.last_error == "cannot open source"


def test_duplicate_camera_names_are_refused(tmp_path: Path) -> None:
    from edge.lobby.capture import open_cameras

    cfg = camera(tmp_path / "a.mp4")
    with pytest.raises(ConfigError, match="duplicate camera name"):
        open_cameras((cfg, cfg), threading.Event(), 0.0)


@given(st.floats(0.01, 5), st.floats(1, 100), st.lists(st.floats(0, 7200), max_size=40))
def test_backoff_grows_and_stays_bounded(min_s: float, factor: float, times: list[float]) -> None:
    backoff = Backoff(min_s, min_s * factor)
    previous = 0.0
    for t in sorted(times):
        delay = backoff.delay(t)
        assert min_s <= delay <= min_s * factor + 1e-9
        backoff.record(t)
        previous = delay
    assert previous >= 0
    if times:
        assert backoff.restarts_within(max(times)) == sum(1 for t in times if t >= max(times) - 3600)


def test_latest_frame_slot() -> None:
    slot = LatestFrame()
    image = np.zeros((20, 20, 3), np.uint8)
    assert slot.take() is None
    for seq in (1, 2, 3):
        slot.put(Frame("c", image, seq, float(seq), 0.0))
    frame = slot.take()
    assert frame is not None and frame.seq == 3
    assert slot.take() is None


# --- real RTSP -------------------------------------------------------------------


def ffmpeg() -> str:
    found = shutil.which("ffmpeg")
    if found is None:
        pytest.fail("ffmpeg is not installed (`make test` installs it: SYSTEM_DEPS in the Makefile)")
    return found


class RtspCamera:
    """An ffmpeg process publishing a looped file to rtsp://127.0.0.1:PORT/lobby, retrying."""

    def __init__(self, video: Path, port: int) -> None:
        self.url = f"rtsp://127.0.0.1:{port}/lobby"
        self.video = video
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        publish = (f"exec {ffmpeg()} -hide_banner -loglevel error -re -stream_loop -1 "
                   f"-i {self.video} -c copy -f rtsp -rtsp_transport tcp {self.url}")
        loop = f"while true; do ( {publish} ); sleep 0.2; done"
        self.proc = subprocess.Popen(["bash", "-c", loop], start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, sig)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.signal(signal.SIGKILL)
            self.proc.wait(5)
        self.proc = None


@pytest.fixture
def rtsp_camera(tmp_path: Path) -> Iterator[RtspCamera]:
    source = write_video(tmp_path / "src.mp4", 20, fps=10)
    h264 = tmp_path / "cam.mp4"
    subprocess.run([ffmpeg(), "-hide_banner", "-loglevel", "error", "-i", str(source), "-c:v", "libx264",
                    "-g", "5", "-pix_fmt", "yuv420p", "-preset", "ultrafast", str(h264)], check=True)
    server = RtspCamera(h264, free_port())
    yield server
    server.kill()


def test_rtsp_stream_killed_and_restarted(rtsp_camera: RtspCamera, stop: threading.Event) -> None:
    rtsp_camera.start()
    cfg = camera(rtsp_camera.url, rtsp_listen=True, stale_after_s=1.0, open_timeout_s=3.0,
                 read_timeout_s=1.0, backoff_min_s=0.2, backoff_max_s=1.0)
    cam = started(cfg, stop)
    assert wait_until(lambda: cam.health.frames >= 10, 20), cam.snapshot()
    frame = cam.slot.take()
    assert frame is not None and frame.image.shape == (120, 160, 3)

    rtsp_camera.kill()  # the camera dies mid-stream
    assert wait_until(lambda: cam.health.state == "down", 10), cam.snapshot()
    frames_when_down = cam.health.frames

    rtsp_camera.start()  # and comes back
    assert wait_until(lambda: cam.health.state == "up" and cam.health.frames > frames_when_down + 5, 30), \
        cam.snapshot()
    assert cam.snapshot()["reconnects_last_hour"] >= 1


def test_rtsp_stream_that_stalls_is_restarted(rtsp_camera: RtspCamera, stop: threading.Event) -> None:
    rtsp_camera.start()
    cfg = camera(rtsp_camera.url, rtsp_listen=True, stale_after_s=0.8, open_timeout_s=3.0,
                 read_timeout_s=5.0, backoff_min_s=0.2, backoff_max_s=1.0)
    cam = started(cfg, stop)
    assert wait_until(lambda: cam.health.frames >= 5, 20), cam.snapshot()
    rtsp_camera.signal(signal.SIGSTOP)  # connection open, no frames: stale, not failed
    try:
        assert wait_until(lambda: cam.health.state == "down", 5), cam.snapshot()
        assert "no frame for" in cam.health.last_error
    finally:
        rtsp_camera.kill()
    rtsp_camera.start()
    assert wait_until(lambda: cam.health.state == "up", 30), cam.snapshot()
    stop.set()
    cam.join(8)
    assert not any(t.is_alive() for t in cam.threads())


def test_recent_frames_takes_fresh_frames_and_gives_up_in_time():
    """The counter camera's frames for one authorization request."""
    import threading

    import numpy as np

    from edge.lobby.capture import Frame, LatestFrame, recent_frames

    slot = LatestFrame()
    stop = threading.Event()

    def camera() -> None:
        seq = 0
        while not stop.wait(0.02):
            seq += 1
            slot.put(Frame("counter", np.full((4, 4, 3), seq % 255, np.uint8), seq, seq / 50, 0.0))

    feeder = threading.Thread(target=camera, daemon=True)
    feeder.start()
    try:
        frames = recent_frames(slot, 3, 2.0)
        assert len(frames) == 3
        assert len({int(f[0, 0, 0]) for f in frames}) == 3  # three different frames, none twice
    finally:
        stop.set()
        feeder.join(1)
    assert recent_frames(LatestFrame(), 3, 0.2) == []  # a dead camera: nothing, in time
