"""The counter camera device (ui.devices.camera): sources and the live-frame encoding."""

from __future__ import annotations

import base64
from pathlib import Path

import cv2
import numpy as np
import pytest

from mqtt.messages import MAX_IMAGE_B64
from ui.devices.camera import (
    MAX_LIVE_JPEG,
    MAX_SIDE,
    CameraFrames,
    FolderFrames,
    live_jpeg_b64,
    open_camera,
)


def write_images(folder: Path, count: int) -> list[np.ndarray]:
    folder.mkdir()
    images = []
    for i in range(count):
        image = np.full((40, 60, 3), 40 * (i + 1), np.uint8)
        assert cv2.imwrite(str(folder / f"f{i}.png"), image)
        images.append(image)
    (folder / "notes.txt").write_text("not an image", encoding="utf-8")
    return images


def test_folder_frames_come_in_turn_and_skip_what_is_not_an_image(tmp_path: Path) -> None:
    images = write_images(tmp_path / "cam", 2)
    camera = open_camera(str(tmp_path / "cam"))
    assert isinstance(camera, FolderFrames)
    frames = [camera.read() for _ in range(3)]
    assert [int(f[0, 0, 0]) for f in frames if f is not None] == [int(images[i][0, 0, 0]) for i in (0, 1, 0)]
    camera.close()
    assert camera.read() is None


def test_open_camera_names_an_index_a_folder_or_nothing(tmp_path: Path) -> None:
    assert open_camera("") is None
    assert open_camera(str(tmp_path / "absent")) is None
    camera = open_camera("99")  # an index with no device behind it: opens, gives no frames
    assert isinstance(camera, CameraFrames)
    assert camera.read() is None
    camera.close()


def test_live_jpeg_is_scaled_down_and_fits_the_message_limit() -> None:
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 256, (1080, 1920, 3), np.uint8)  # noise: the hardest case for JPEG
    frame[::8] = 128
    encoded = live_jpeg_b64(frame)
    assert len(encoded) <= MAX_IMAGE_B64
    data = base64.b64decode(encoded)
    assert len(data) <= MAX_LIVE_JPEG
    decoded = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert max(decoded.shape[:2]) == MAX_SIDE


def test_live_jpeg_of_a_small_frame_keeps_its_size() -> None:
    frame = np.full((120, 100, 3), 90, np.uint8)
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(live_jpeg_b64(frame)), np.uint8),
                           cv2.IMREAD_COLOR)
    assert decoded.shape == frame.shape


def test_a_frame_that_cannot_fit_is_refused_with_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("ui.devices.camera.MAX_LIVE_JPEG", 100)
    with pytest.raises(ValueError, match="does not fit"):
        live_jpeg_b64(np.random.default_rng(1).integers(0, 256, (200, 200, 3), np.uint8))
