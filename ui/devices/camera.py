"""The counter camera on the teller terminal: where live frames come from, and how they
travel to the edge.

Qt-free: the teller page polls :meth:`FrameSource.read` from a GUI timer and shows
the frames itself.  A source is an OpenCV device index ("0") or a folder of images
shown in turn (demos, tests, machines without a camera)::

    camera = open_camera("0")          # or open_camera("/path/to/folder"); None: nothing usable
    frame = camera.read()              # BGR ndarray, or None when no frame came
    live_jpeg_b64(frame)               # base64 JPEG for AuthRequest.live_jpeg_b64
    camera.close()
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from mqtt.messages import MAX_IMAGE_B64

MAX_SIDE = 640  # a live frame is sent at most this many pixels on its longer side
# Bytes of JPEG: base64 adds a third, so this keeps 2 KB under the message's image limit (70 KB).
MAX_LIVE_JPEG = MAX_IMAGE_B64 * 3 // 4 - 2048
JPEG_QUALITIES = (85, 70, 55, 40)


class FrameSource(Protocol):
    def read(self) -> np.ndarray | None: ...

    def close(self) -> None: ...


class CameraFrames:
    """A camera by its OpenCV index."""

    def __init__(self, index: int) -> None:
        self.capture = cv2.VideoCapture(index)

    def read(self) -> np.ndarray | None:
        ok, frame = self.capture.read()
        return frame if ok else None

    def close(self) -> None:
        self.capture.release()


class FolderFrames:
    """Images from a folder, in turn: for demos and tests on machines without a camera.
    Files that are not decodable images are skipped."""

    def __init__(self, paths: list[Path]) -> None:
        self.images = [img for p in paths if (img := cv2.imread(str(p))) is not None]
        self.index = 0

    def read(self) -> np.ndarray | None:
        if not self.images:
            return None
        image = self.images[self.index % len(self.images)]
        self.index += 1
        return image

    def close(self) -> None:
        self.images = []


def open_camera(source: str) -> FrameSource | None:
    """The frame source named by ``source``: a device index, or a folder of images.
    None when ``source`` is empty or names neither."""
    if source.isdigit():
        return CameraFrames(int(source))
    if source and Path(source).is_dir():
        return FolderFrames(sorted(p for p in Path(source).iterdir() if p.is_file()))
    return None


def live_jpeg_b64(frame: np.ndarray) -> str:
    """A live frame as base64 JPEG, at most :data:`MAX_SIDE` px on its longer side and
    at most :data:`MAX_LIVE_JPEG` bytes (the quality is lowered until it fits).

    Raises:
        ValueError: the frame cannot be made that small.
    """
    scale = min(1.0, MAX_SIDE / max(frame.shape[:2]))
    small = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else frame
    for quality in JPEG_QUALITIES:
        ok, data = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and data.size <= MAX_LIVE_JPEG:
            return base64.b64encode(data.tobytes()).decode("ascii")
    raise ValueError(f"the frame does not fit in {MAX_LIVE_JPEG} bytes even at JPEG quality "
                     f"{JPEG_QUALITIES[-1]}")
