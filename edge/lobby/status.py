"""The edge device's status: what operations sees on ``status/{device_id}`` (retained).

Built from the cameras' watchdog health, the pipeline's frame rate, the time of
the last arrival and the outbox depth.  Counts and states only: no customer data.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from datetime import datetime
from typing import Any

from edge.lobby.capture import Camera
from mqtt.messages import CameraStatus, DeviceStatus

RATE_WINDOW_S = 5.0


class RateMeter:
    """Events per second over the last few seconds (thread-safe)."""

    def __init__(self, window_s: float = RATE_WINDOW_S) -> None:
        self.window_s = window_s
        self._times: deque[float] = deque()
        self._lock = threading.Lock()

    def tick(self, now: float | None = None) -> None:
        with self._lock:
            self._times.append(time.monotonic() if now is None else now)

    def rate(self, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        with self._lock:
            while self._times and self._times[0] < now - self.window_s:
                self._times.popleft()
            return len(self._times) / self.window_s


def camera_status(camera: Camera) -> CameraStatus:
    snap = camera.snapshot()
    return CameraStatus(name=snap["name"], state=snap["state"], fps=snap["fps"],
                        reconnects_last_hour=snap["reconnects_last_hour"],
                        last_error=str(snap["last_error"])[:200])


def device_status(branch_id: str, device_id: str, version: str, cameras: list[Camera], *,
                  analysed_fps: float, last_arrival_at: datetime | None,
                  outbox_depth: int) -> DeviceStatus:
    return DeviceStatus(
        branch_id=branch_id, device_id=device_id, role="edge", state="online", version=version[:32],
        cameras=[camera_status(c) for c in cameras], analysed_fps=round(analysed_fps, 2),
        last_arrival_at=last_arrival_at, outbox_depth=outbox_depth,
    )


def status_dict(status: DeviceStatus) -> dict[str, Any]:
    """For logs and ``--json`` output."""
    return {
        "state": status.state, "version": status.version, "analysed_fps": status.analysed_fps,
        "last_arrival_at": status.last_arrival_at.isoformat() if status.last_arrival_at else None,
        "outbox_depth": status.outbox_depth,
        "cameras": [{"name": c.name, "state": c.state, "fps": c.fps,
                     "reconnects_last_hour": c.reconnects_last_hour, "last_error": c.last_error}
                    for c in status.cameras],
    }
