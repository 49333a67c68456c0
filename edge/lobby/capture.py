"""Camera capture: one grabber thread per camera keeps only the newest frame,
and a watchdog restarts a dead or stale stream with paced back-off.

Sources are video files (looped or not, paced at their native rate or "fast"),
``rtsp://`` URLs and USB camera indexes, all read through OpenCV's FFMPEG or
V4L2 backends.  A camera's password reaches only the URL FFmpeg opens
(``edge.lobby.rtsp``): its status, its errors and the log show the URL masked.
When an RTSP stream does not open, one ``DESCRIBE`` probe says why (unreachable,
authentication failed, no such stream), and the restart back-off keeps growing,
so a wrong password is not retried in a storm (cameras lock accounts out).

A camera with a ``substream`` is analysed on it; its main stream (:class:`MainStream`)
is opened only while the pipeline asks for it (a face too small on the substream),
and closed ``main_linger_s`` after the last ask.  "fast" file pacing hands every decoded frame to the consumer
(the grabber waits until the newest frame is taken): benchmarks and tests see
every frame, and nothing is queued.  Every other mode overwrites the slot, so
the consumer is never more than one frame behind the camera.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol

import cv2
import numpy as np

from edge.config import CameraConfig
from edge.core.errors import ConfigError
from edge.lobby.rtsp import CredentialError, mask_url, probe, redact, stream_url

log = logging.getLogger(__name__)

HOUR_S = 3600.0
FFMPEG_OPTIONS_ENV = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
_OPEN_LOCK = threading.Lock()  # the FFMPEG options travel in a process-wide variable
MIN_SIDE, MAX_SIDE = 16, 8192
State = Literal["starting", "up", "down", "ended", "stopped", "idle"]  # idle: a main stream not asked for
PROBE_REASONS = {"unauthorized": "auth", "not_found": "not_found"}  # probe state -> error reason
# How far apart (seconds) a main-stream frame and the substream frame it serves may be.
MAIN_MAX_SKEW_S = 0.5


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
    url = stream_url(cam, cam.source)  # CredentialError when the password cannot be read
    with _OPEN_LOCK:
        previous = os.environ.get(FFMPEG_OPTIONS_ENV)
        os.environ[FFMPEG_OPTIONS_ENV] = ffmpeg_options(cam)
        try:
            return cv2.VideoCapture(url, cv2.CAP_FFMPEG, timeouts)
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

    def peek(self) -> Frame | None:
        """The newest frame, taken or not (the main stream's frames serve many asks)."""
        with self._cond:
            return self._frame

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
    reconnects: int = 0  # since the daemon started
    errors: Counter[str] = field(default_factory=Counter)  # reason -> count (metrics)
    codec: str = ""
    width: int = 0
    height: int = 0
    # Wall clock of the first frame of a file (video time 0), for time-to-notify.
    first_frame_wall: datetime | None = None
    _recent: deque[float] = field(default_factory=lambda: deque(maxlen=30))

    def fail(self, reason: str, text: str) -> None:
        """Why the stream is down: ``reason`` is a fixed word (a metrics label), ``text`` for people."""
        self.errors[reason] += 1
        self.last_error = text

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
                "reconnects_last_hour": self.reconnects_last_hour, "reconnects": self.reconnects,
                "errors": dict(self.errors), "codec": self.codec, "width": self.width,
                "height": self.height}


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
            # No traceback: an exception's text may quote the URL; it is masked here.
            text = redact(f"{type(err).__name__}: {err}", self.cam)
            log.error("camera %s: grabber crashed: %s", self.cam.name, text)
            self.health.fail("crash", f"grabber crashed: {text}")
            self.outcome = "failed"

    def _session(self) -> Literal["failed", "ended", "stopped"]:
        try:
            source = self.opener(self.cam)
        except CredentialError as err:
            self.health.fail("credentials", str(err))
            return "failed"
        try:
            if not source.isOpened():
                self._diagnose()
                return "failed"
            fps = source.get(cv2.CAP_PROP_FPS)
            self.health.codec = fourcc(source.get(cv2.CAP_PROP_FOURCC))
            return self._read_loop(source, fps if 1.0 <= fps <= 240.0 else 25.0)
        finally:
            source.release()

    def _diagnose(self) -> None:
        """Why a source did not open; for RTSP, one DESCRIBE asks the camera."""
        if source_kind(self.cam.source) != "rtsp" or self.cam.rtsp_listen:
            self.health.fail("open", "cannot open source")
            return
        answer = probe(stream_url(self.cam, self.cam.source), timeout=min(self.cam.open_timeout_s, 5.0))
        if answer.state == "ok":
            self.health.fail("open", "cannot open stream: the camera answered but the stream did not "
                                     "start (codec, transport or a firewall blocking UDP)")
        else:
            self.health.fail(PROBE_REASONS.get(answer.state, "unreachable"), redact(answer.detail, self.cam))

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
                self.health.fail("read", "stream read failed")
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
                    self.health.fail("undecodable", "undecodable frame")
                    return "failed"
                self.health.height, self.health.width = image.shape[:2]
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


def fourcc(value: float) -> str:
    """OpenCV's FOURCC property as text ("h264", "hevc"); "" when unknown."""
    code = int(value) if value == value and 0 < value < 2**32 else 0  # noqa: PLR0124 - NaN
    text = code.to_bytes(4, "little").decode("latin-1").strip("\x00 ")
    return text if text.isprintable() else ""


class MainStream:
    """A camera's main (high-resolution) stream, open only while the pipeline asks for it.

    The pipeline asks (``frame``) when a face on the substream is too small to embed
    well; the camera's watchdog (``tend``) opens the stream on the first ask, keeps it
    while asks come, and closes it ``main_linger_s`` after the last one, so the main
    stream is decoded only while small faces are in view.  A stream that fails is
    retried with the camera's back-off, and only while asked for.
    """

    def __init__(self, cam: CameraConfig, stop: threading.Event, opener: Opener = open_source) -> None:
        # Frames are converted to BGR at the analysis rate (an ask finds one at most a period old).
        self.cam = cam.model_copy(update={"substream": None})
        self.name, self.below_px = cam.name, cam.main_crop_below_px
        self.stop_event, self.opener = stop, opener
        self.slot = LatestFrame()
        self.health = CameraHealth(f"{cam.name}/main", state="idle")
        self.backoff = Backoff(cam.backoff_min_s, cam.backoff_max_s)
        self.grabber: Grabber | None = None
        self.abandoned: list[Grabber] = []
        self.asked_at: float | None = None
        self.not_before = 0.0
        self.opens = self.fetches = self.misses = 0
        self._started_at = 0.0

    @property
    def state(self) -> State:
        return self.health.state

    def frame(self, ts: float) -> np.ndarray | None:
        """The newest main-stream frame within ``MAIN_MAX_SKEW_S`` of ``ts`` (the substream
        frame's time), or None (the stream is opening, or failed); the ask keeps it open."""
        self.asked_at = time.monotonic()
        latest = self.slot.peek()
        if latest is None or abs(latest.ts - ts) > MAIN_MAX_SKEW_S or self.state != "up":
            self.misses += 1
            return None
        self.fetches += 1
        return latest.image

    def tend(self) -> None:
        """Open, keep, retire or restart the stream (the camera's watchdog calls this)."""
        now = time.monotonic()
        asked = self.asked_at is not None and now - self.asked_at <= self.cam.main_linger_s
        grabber = self.grabber
        running = grabber is not None and grabber.is_alive()
        if running and (not asked or self.stop_event.is_set()):
            self._retire("idle")
        elif running and self._stale(now):
            self.health.fail("stale", f"no frame for {self.cam.stale_after_s:g} s")
            self._retire("down")
        elif not running and grabber is not None:  # it failed
            self.grabber = None
            self.health.state = "down"
            self.not_before = now + self.backoff.delay(now)
            self.backoff.record(now)
            log.warning("camera %s: main stream down (%s)", self.name,
                        redact(self.health.last_error, self.cam))
        elif not running and asked and now >= self.not_before and not self.stop_event.is_set():
            self._start(now)

    def _stale(self, now: float) -> bool:
        last = self.health.last_frame_at
        limit = self.cam.stale_after_s + (self.cam.open_timeout_s if last is None else 0.0)
        return now - (last if last is not None else self._started_at) > limit

    def _start(self, now: float) -> None:
        first = self.grabber.seq if self.grabber is not None else 0
        self.health.state, self.health.last_frame_at, self._started_at = "starting", None, now
        self.opens += 1
        self.grabber = Grabber(self.cam, self.slot, self.health, now, first, opener=self.opener)
        self.grabber.name = f"grab-{self.name}-main"
        self.grabber.start()
        log.info("camera %s: main stream opened for small faces", self.name)

    def _retire(self, state: State) -> None:
        grabber, self.grabber = self.grabber, None
        if grabber is not None:
            grabber.quit.set()
            grabber.join(0.5)
            if grabber.is_alive():
                self.abandoned.append(grabber)
        self.abandoned = [g for g in self.abandoned if g.is_alive()]
        self.health.state = state
        if state == "idle":
            log.info("camera %s: main stream closed (no small face for %g s)", self.name,
                     self.cam.main_linger_s)

    def threads(self) -> list[Grabber]:
        return [g for g in [self.grabber, *self.abandoned] if g is not None]

    def snapshot(self) -> dict[str, Any]:
        snap = self.health.snapshot(time.monotonic())
        snap["last_error"] = redact(snap["last_error"], self.cam)
        return {**snap, "opens": self.opens, "fetches": self.fetches, "misses": self.misses}


class Camera:
    """A camera's grabber and its watchdog, both stopped by the daemon's one stop event;
    with a substream, the grabber reads the substream and :class:`MainStream` the main one."""

    CHECK_S = 0.1

    def __init__(self, cam: CameraConfig, stop: threading.Event, origin: float,
                 opener: Opener = open_source) -> None:
        self.cam, self.stop_event, self.origin, self.opener = cam, stop, origin, opener
        # What the grabber reads: the substream when there is one.
        self.analysed = cam if cam.substream is None else cam.model_copy(update={"source": cam.substream})
        self.main = MainStream(cam, stop, opener) if cam.substream is not None else None
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
        for grabber in [self.grabber, *self.abandoned, *(self.main.threads() if self.main else [])]:
            if grabber is not None:
                grabber.quit.set()
                grabber.join(max(timeout, 0.0))
        if self.health.state != "ended":
            self.health.state = "stopped"

    def threads(self) -> list[threading.Thread]:
        alive = [g for g in [self.grabber, *self.abandoned] if g is not None]
        return [self.watchdog, *alive, *(self.main.threads() if self.main else [])]

    def _start_grabber(self) -> None:
        """A new session; its clock continues after the last frame, so ts never goes back."""
        first, origin = 0, self.origin
        if self.grabber is not None:
            first, last_ts = self.grabber.seq, self.grabber.last_ts
            origin = max(time.monotonic(), last_ts + 1e-3) if last_ts is not None else time.monotonic()
        self._session_start = time.monotonic()
        self.grabber = Grabber(self.analysed, self.slot, self.health, origin, first, opener=self.opener)
        self.grabber.start()

    def _watch(self) -> None:
        while not self.stop_event.wait(self.CHECK_S):
            reason = self._trouble()
            if reason == "ended":
                self.health.state = "ended"
            elif reason:
                self._restart(reason)
            if self.main is not None:
                self.main.tend()
        if self.grabber is not None:
            self.grabber.quit.set()
        if self.main is not None:
            self.main.tend()  # retires its grabber: the stop event is set

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
            self.health.fail("stale", f"no frame for {self.cam.stale_after_s:g} s")
        self._retire_grabber()
        now = time.monotonic()
        delay = self.backoff.delay(now)
        log.warning("camera %s: %s (%s); reconnecting in %.1f s", self.name, reason,
                    redact(self.health.last_error, self.cam), delay)
        if self.stop_event.wait(delay):
            return
        self.backoff.record(time.monotonic())
        self.health.reconnects += 1
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
        """The camera's health for status and metrics: masked, never the URL's password."""
        now = time.monotonic()
        self.health.reconnects_last_hour = self.backoff.restarts_within(now)
        snap = self.health.snapshot(now)
        snap["last_error"] = redact(snap["last_error"], self.cam)
        snap["source"] = mask_url(self.analysed.source)
        if self.main is not None:
            snap["main"] = self.main.snapshot()
        return snap


def open_cameras(cameras: tuple[CameraConfig, ...], stop: threading.Event, origin: float,
                 opener: Opener = open_source) -> list[Camera]:
    names = [c.name for c in cameras]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"cameras: duplicate camera name(s): {', '.join(duplicates)}")
    return [Camera(cam, stop, origin, opener) for cam in cameras]

