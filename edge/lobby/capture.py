"""Camera capture: one grabber thread per camera keeps only the newest frame,
and a watchdog restarts a dead or stale stream with paced back-off.

Sources are video files (looped or not, paced at their native rate or "fast"),
``rtsp://`` URLs and USB camera indexes, all read through OpenCV's FFMPEG or
V4L2 backends.  "fast" file pacing hands every decoded frame to the consumer
(the grabber waits until the newest frame is taken): benchmarks and tests see
every frame, and nothing is queued.  Every other mode overwrites the slot, so
the consumer is never more than one frame behind the camera.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np

from edge.config import CameraConfig
from edge.core.errors import ConfigError

log = logging.getLogger(__name__)

HOUR_S = 3600.0
FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_OPEN_LOCK = threading.Lock()  # the FFMPEG options travel in a process-wide variable
MIN_SIDE, MAX_SIDE = 16, 8192
State = Literal["starting", "up", "down", "ended", "stopped"]


class VideoSource(Protocol):
    def isOpened(self) -> bool: ...  # noqa: N802 - OpenCV's name
    def read(self) -> tuple[bool, Any]: ...
    def grab(self) -> bool: ...
    def retrieve(self) -> tuple[bool, Any]: ...
    def get(self, prop: int) -> float: ...
    def release(self) -> None: ...


Opener = Callable[[CameraConfig], VideoSource]


@dataclass(frozen=True)
class Frame:
    camera: str
    image: np.ndarray
    seq: int  # per camera, increasing over restarts
    ts: float  # seconds on the daemon clock (file: session start + position in the video)
    grabbed_at: float  # time.monotonic() when decoded (for latency)


def source_kind(source: str) -> Literal["usb", "rtsp", "file"]:
    if source.isdigit():
        return "usb"
    if source.lower().startswith(("rtsp://", "rtsps://")):
        return "rtsp"
    return "file"


def ffmpeg_options(cam: CameraConfig) -> str:
    if cam.rtsp_listen:
        return "rtsp_flags;listen"
    return f"rtsp_transport;{cam.rtsp_transport}"


def open_source(cam: CameraConfig) -> VideoSource:
    """Open the camera's source; the caller checks ``isOpened()``."""
    kind = source_kind(cam.source)
    timeouts = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(cam.open_timeout_s * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(cam.read_timeout_s * 1000)]
    if kind == "usb":
        return cv2.VideoCapture(int(cam.source), cv2.CAP_ANY, timeouts)
    if kind == "file":
        return cv2.VideoCapture(str(Path(cam.source).expanduser()), cv2.CAP_FFMPEG, timeouts)
    with _OPEN_LOCK:
        previous = os.environ.get(FFMPEG_OPTIONS_ENV)
        os.environ[FFMPEG_OPTIONS_ENV] = ffmpeg_options(cam)
        try:
            return cv2.VideoCapture(cam.source, cv2.CAP_FFMPEG, timeouts)
        finally:
            if previous is None:
                os.environ.pop(FFMPEG_OPTIONS_ENV, None)
            else:
                os.environ[FFMPEG_OPTIONS_ENV] = previous


def usable_image(image: object) -> bool:
    """A decoded frame we can analyse: 8-bit BGR of a sane size (garbage is not)."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
        return False
    height, width, channels = image.shape
    return bool(channels == 3 and MIN_SIDE <= height <= MAX_SIDE and MIN_SIDE <= width <= MAX_SIDE)


class AnalysisClock:
    """Which frames to analyse: about ``fps`` per camera, on the frames' own clock."""

    def __init__(self) -> None:
        self._next: dict[str, float] = {}

    def due(self, camera: str, ts: float, fps: float) -> bool:
        period = 1.0 / fps
        next_due = self._next.get(camera, ts)
        if ts + 1e-6 < next_due:
            return False
        following = next_due + period
        self._next[camera] = following if following > ts else ts + period
        return True


class LatestFrame:
    """A one-frame slot: ``put`` replaces, ``take`` returns the newest frame not yet taken."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._frame: Frame | None = None
        self._taken = True

    def put(self, frame: Frame) -> None:
        with self._cond:
            self._frame, self._taken = frame, False
            self._cond.notify_all()

    def take(self) -> Frame | None:
        with self._cond:
            if self._taken:
                return None
            self._taken = True
            self._cond.notify_all()
            return self._frame

    def wait_taken(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self._taken, timeout)

    def wait_fresh(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: not self._taken, timeout)


def recent_frames(slot: LatestFrame, count: int, within_s: float) -> list[np.ndarray]:
    """Up to ``count`` fresh frames from a camera's slot, waiting at most ``within_s``
    in all (the counter camera's frames for one authorization request)."""
    frames: list[np.ndarray] = []
    deadline = time.monotonic() + within_s
    while len(frames) < count:
        left = deadline - time.monotonic()
        if left <= 0 or not slot.wait_fresh(left):
            break
        frame = slot.take()
        if frame is not None:
            frames.append(frame.image)
    return frames


class Backoff:
    """Restart pacing: the delay doubles with each restart in the last ``window_s``.

    Pure: times are passed in.  ``restarts_within`` reports ``reconnects_last_hour``.
    """

    def __init__(self, min_s: float, max_s: float, window_s: float = HOUR_S) -> None:
        self.min_s, self.max_s, self.window_s = min_s, max_s, window_s
        self.restarts: deque[float] = deque()

    def _forget(self, now: float) -> None:
        while self.restarts and self.restarts[0] < now - self.window_s:
            self.restarts.popleft()

    def delay(self, now: float) -> float:
        """Seconds to wait before the next restart: min_s, 2 min_s, 4 min_s ... max_s."""
        self._forget(now)
        recent = sum(1 for t in self.restarts if t >= now - 10 * self.max_s)
        return float(min(self.max_s, self.min_s * 2.0 ** min(recent, 30)))

    def record(self, now: float) -> None:
        self.restarts.append(now)

    def restarts_within(self, now: float, seconds: float = HOUR_S) -> int:
        self._forget(now)
        return sum(1 for t in self.restarts if t >= now - seconds)


@dataclass
class CameraHealth:
    """What the device status reports about one camera (updated by its threads)."""

    name: str
    state: State = "starting"
    frames: int = 0
    last_frame_at: float | None = None  # monotonic
    last_error: str = ""
    reconnects_last_hour: int = 0
    # Wall clock of the first frame of a file (video time 0), for time-to-notify.
    first_frame_wall: datetime | None = None
    _recent: deque[float] = field(default_factory=lambda: deque(maxlen=30))

    def frame_seen(self, now: float) -> None:
        self.frames += 1
        self.last_frame_at = now
        self.state = "up"
        self._recent.append(now)

    def fps(self, now: float) -> float:
        recent = [t for t in self._recent if t >= now - 3.0]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6)

    def snapshot(self, now: float) -> dict[str, Any]:
        age = None if self.last_frame_at is None else round(now - self.last_frame_at, 3)
        return {"name": self.name, "state": self.state, "fps": round(self.fps(now), 2),
                "frames": self.frames, "last_frame_age_s": age, "last_error": self.last_error,
                "reconnects_last_hour": self.reconnects_last_hour}


class Grabber(threading.Thread):
    """One streaming session: open, read until told to stop, the stream fails or the file ends."""

    def __init__(self, cam: CameraConfig, slot: LatestFrame, health: CameraHealth,
                 origin: float, first_seq: int, *, opener: Opener = open_source) -> None:
        super().__init__(name=f"grab-{cam.name}", daemon=True)
        self.cam, self.slot, self.health, self.opener = cam, slot, health, opener
        self.origin, self.seq = origin, first_seq
        self.last_ts: float | None = None
        self.clock = AnalysisClock()
        self._delivered = False
        self.quit = threading.Event()
        self.outcome: Literal["running", "failed", "ended", "stopped"] = "running"
        self.is_file = source_kind(cam.source) == "file"

    def run(self) -> None:
        try:
            self.outcome = self._session()
        except Exception as err:  # a grabber reports failure; it never takes the daemon down
            log.exception("camera %s: grabber crashed", self.cam.name)
            self.health.last_error = f"grabber crashed: {err}"
            self.outcome = "failed"

    def _session(self) -> Literal["failed", "ended", "stopped"]:
        source = self.opener(self.cam)
        try:
            if not source.isOpened():
                self.health.last_error = "cannot open source"
                return "failed"
            fps = source.get(cv2.CAP_PROP_FPS)
            return self._read_loop(source, fps if 1.0 <= fps <= 240.0 else 25.0)
        finally:
            source.release()

    def _read_loop(self, source: VideoSource, fps: float) -> Literal["failed", "ended", "stopped"]:
        started, index, video_offset = time.monotonic(), 0, 0.0
        while not self.quit.is_set():
            ok = source.grab()
            if self.quit.is_set():  # retired while blocked in a read: its frame is too old
                break
            if not ok and self.is_file and self.cam.loop and index > 0:
                if not self._rewind(source):
                    self.health.last_error = "cannot rewind the file to its start"
                    return "failed"
                video_offset += index / fps
                started, index = time.monotonic() - video_offset, 0
                continue
            if not ok:
                if self.is_file:
                    return "ended"
                self.health.last_error = "stream read failed"
                return "failed"
            now = time.monotonic()
            if self.is_file and self.health.first_frame_wall is None:
                self.health.first_frame_wall = datetime.now(UTC)
            self.health.frame_seen(now)
            ts = self.origin + video_offset + index / fps if self.is_file else now
            index += 1
            # Only frames the pipeline will analyse are converted to BGR and handed over.
            if self.clock.due(self.cam.name, ts, self.cam.analyse_fps):
                ok, image = source.retrieve()
                if not ok or not usable_image(image):
                    self.health.last_error = "undecodable frame"
                    return "failed"
                self._deliver(image, ts, now)
            self._pace(started, video_offset + index / fps)
        return "stopped"

    def _rewind(self, source: VideoSource) -> bool:
        return bool(getattr(source, "set", lambda *_: False)(cv2.CAP_PROP_POS_FRAMES, 0))

    def _deliver(self, image: np.ndarray, ts: float, grabbed_at: float) -> None:
        self.seq += 1
        self.last_ts = ts
        self.slot.put(Frame(self.cam.name, image, self.seq, ts, grabbed_at))
        self._delivered = True

    def _pace(self, started: float, next_position: float) -> None:
        if not self.is_file:
            return
        if self.cam.pace == "fast":
            while self._delivered and not self.quit.is_set() and not self.slot.wait_taken(0.1):
                pass
            self._delivered = False
            return
        delay = started + next_position - time.monotonic()
        if delay > 0:
            self.quit.wait(delay)


class Camera:
    """A camera's grabber and its watchdog, both stopped by the daemon's one stop event."""

    CHECK_S = 0.1

    def __init__(self, cam: CameraConfig, stop: threading.Event, origin: float,
                 opener: Opener = open_source) -> None:
        self.cam, self.stop_event, self.origin, self.opener = cam, stop, origin, opener
        self.slot = LatestFrame()
        self.health = CameraHealth(cam.name)
        self.backoff = Backoff(cam.backoff_min_s, cam.backoff_max_s)
        self.grabber: Grabber | None = None
        self.abandoned: list[Grabber] = []
        self._session_start = 0.0
        self._last_ts: float | None = None
        self.watchdog = threading.Thread(target=self._watch, name=f"watchdog-{cam.name}", daemon=True)

    @property
    def name(self) -> str:
        return self.cam.name

    def start(self) -> None:
        self._start_grabber()
        self.watchdog.start()

    def join(self, timeout: float) -> None:
        self.watchdog.join(timeout)
        for grabber in [self.grabber, *self.abandoned]:
            if grabber is not None:
                grabber.quit.set()
                grabber.join(max(timeout, 0.0))
        if self.health.state != "ended":
            self.health.state = "stopped"

    def threads(self) -> list[threading.Thread]:
        alive = [g for g in [self.grabber, *self.abandoned] if g is not None]
        return [self.watchdog, *alive]

    def _start_grabber(self) -> None:
        """A new session; its clock continues after the last frame, so ts never goes back."""
        first, origin = 0, self.origin
        if self.grabber is not None:
            first, last_ts = self.grabber.seq, self.grabber.last_ts
            origin = max(time.monotonic(), last_ts + 1e-3) if last_ts is not None else time.monotonic()
        self._session_start = time.monotonic()
        self.grabber = Grabber(self.cam, self.slot, self.health, origin, first, opener=self.opener)
        self.grabber.start()

    def _watch(self) -> None:
        while not self.stop_event.wait(self.CHECK_S):
            reason = self._trouble()
            if reason == "ended":
                self.health.state = "ended"
            elif reason:
                self._restart(reason)
        if self.grabber is not None:
            self.grabber.quit.set()

    def _trouble(self) -> str:
        """Why the stream needs a restart ("" = healthy), or "ended" for a finished file."""
        grabber = self.grabber
        if grabber is None:
            return "no grabber"
        if not grabber.is_alive():
            return "ended" if grabber.outcome == "ended" else grabber.outcome
        last = self.health.last_frame_at or self._session_start
        waiting = self.cam.pace == "fast" and grabber.is_file and not self.slot.wait_taken(0)
        limit = self.cam.stale_after_s + (self.cam.open_timeout_s if self.health.last_frame_at is None else 0)
        if not waiting and time.monotonic() - last > limit:
            return "stale"
        return ""

    def _restart(self, reason: str) -> None:
        self.health.state = "down"
        if reason == "stale":
            self.health.last_error = f"no frame for {self.cam.stale_after_s:g} s"
        log.warning("camera %s: %s (%s); restarting", self.name, reason, self.health.last_error)
        self._retire_grabber()
        now = time.monotonic()
        delay = self.backoff.delay(now)
        if self.stop_event.wait(delay):
            return
        self.backoff.record(time.monotonic())
        self.health.reconnects_last_hour = self.backoff.restarts_within(time.monotonic())
        self.health.last_frame_at = None
        self._start_grabber()

    def _retire_grabber(self) -> None:
        grabber = self.grabber
        if grabber is None:
            return
        grabber.quit.set()
        grabber.join(0.5)
        if grabber.is_alive():  # blocked in a read: it ends at its read timeout
            self.abandoned.append(grabber)
        self.abandoned = [g for g in self.abandoned if g.is_alive()]

    def snapshot(self) -> dict[str, Any]:
        now = time.monotonic()
        self.health.reconnects_last_hour = self.backoff.restarts_within(now)
        return self.health.snapshot(now)


def open_cameras(cameras: tuple[CameraConfig, ...], stop: threading.Event, origin: float,
                 opener: Opener = open_source) -> list[Camera]:
    names = [c.name for c in cameras]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"cameras: duplicate camera name(s): {', '.join(duplicates)}")
    return [Camera(cam, stop, origin, opener) for cam in cameras]

