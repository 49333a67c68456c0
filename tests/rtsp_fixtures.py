"""A real IP camera for the tests: tests/rtsp_camera_server.py (GStreamer's RTSP server,
run by the system Python) serving a video on loopback, which the daemon pulls.

``rtsp_cameras`` starts them; each :class:`RtspCameraServer` can be killed and started
again (a reboot, maybe at another resolution), stalled and resumed (SIGUSR1/SIGUSR2).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.mqtt_fixtures import free_port, wait_until

SERVER = Path(__file__).with_name("rtsp_camera_server.py")
# python3-gi (GObject introspection) is a Debian package for the system's Python.
SYSTEM_PYTHON = "/usr/bin/python3"
GST_CHECK = ("import gi; gi.require_version('GstRtspServer', '1.0'); "
             "from gi.repository import GstRtspServer")


def require_rtsp_server() -> None:
    probe = subprocess.run([SYSTEM_PYTHON, "-c", GST_CHECK], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.fail("GStreamer's RTSP server is not installed (`make test` installs it: SYSTEM_DEPS in the "
                    "Makefile: gir1.2-gst-rtsp-server-1.0, python3-gi, gstreamer1.0-plugins-*)")


class RtspCameraServer:
    """One camera: ``start()`` (again after ``kill()``: a reboot), ``stall()``, ``resume()``."""

    def __init__(self, video: Path, *, streams: dict[str, tuple[int, int]], user: str = "",
                 password: str = "", codec: str = "h264", fps: float = 10.0, auth: str = "basic") -> None:
        self.video, self.streams, self.user, self.password = video, dict(streams), user, password
        self.auth = auth
        self.codec, self.fps = codec, fps
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.events: list[dict[str, object]] = []
        self._reader: threading.Thread | None = None

    def url(self, stream: str, *, user: str | None = None, password: str | None = None) -> str:
        """The stream's URL with the given credentials (default: the camera's own)."""
        user = self.user if user is None else user
        password = self.password if password is None else password
        credentials = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user else ""
        return f"rtsp://{credentials}127.0.0.1:{self.port}/{stream}"

    def start(self, streams: dict[str, tuple[int, int]] | None = None) -> None:
        """Start serving (and wait until it listens); ``streams`` replaces the resolutions."""
        self.streams = dict(streams or self.streams)
        command = [SYSTEM_PYTHON, str(SERVER), "--video", str(self.video), "--port", str(self.port),
                   "--codec", self.codec, "--fps", str(self.fps)]
        command += [a for name, (w, h) in self.streams.items() for a in ("--stream", f"{name}={w}x{h}")]
        if self.user:
            command += ["--user", self.user, "--password", self.password, "--auth", self.auth]
        ready_before = self.count("ready")
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                                     start_new_session=True)
        self._reader = threading.Thread(target=self._read, args=(self.proc,), daemon=True)
        self._reader.start()
        if not wait_until(lambda: self.count("ready") > ready_before or self.proc.poll() is not None, 60):
            pytest.fail("the RTSP camera did not start listening")
        if self.proc.poll() is not None:
            pytest.fail(f"the RTSP camera exited: {self.events}")

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("{"):
                self.events.append(json.loads(line))

    def count(self, event: str) -> int:
        return sum(1 for e in list(self.events) if e.get("event") == event)

    def stall(self) -> None:
        """Frames stop; the connection and the RTSP session stay up."""
        self._signal(signal.SIGUSR1)
        assert wait_until(lambda: self.count("stalled") >= 1, 10)

    def resume(self) -> None:
        flowing = self.count("flowing")
        self._signal(signal.SIGUSR2)
        assert wait_until(lambda: self.count("flowing") > flowing, 10)

    def _signal(self, sig: int) -> None:
        assert self.proc is not None and self.proc.poll() is None
        os.kill(self.proc.pid, sig)

    def kill(self) -> None:
        """The camera loses power: no goodbye to its clients."""
        if self.proc is not None:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            if self._reader is not None:
                self._reader.join(10)
            if self.proc.stdout is not None:
                self.proc.stdout.close()
        self.proc = None


@pytest.fixture
def rtsp_cameras() -> Iterator[list[RtspCameraServer]]:
    """Append servers to this list (``rtsp_camera(...)``); all are killed afterwards."""
    require_rtsp_server()
    servers: list[RtspCameraServer] = []
    yield servers
    for server in servers:
        server.kill()


def rtsp_camera(servers: list[RtspCameraServer], video: Path, **options: object) -> RtspCameraServer:
    server = RtspCameraServer(video, **options)  # type: ignore[arg-type]
    servers.append(server)
    server.start()
    return server
