"""``branch-pad`` on a real X display: Xvfb with Qt's ``xcb`` platform plugin (not offscreen),
so a missing system library (``libxcb-cursor0``, ``libxcb-icccm4``, ...) fails here as it would
on a tablet.  The PAD receives an arrival from the edge over Mosquitto (TLS, ACL); what the
X server shows is read from its framebuffer and compared with the card the app saved."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PyQt6.QtGui import QImage

from mqtt.client import SUBSCRIBED_LINE
from mqtt.provision.run import ProvisionResult
from tests.e2e.pad_display import Screen, xvfb
from tests.mqtt_fixtures import make_client, mosquitto_broker, provisioned_branch, wait_until  # noqa: F401
from ui.state.sample import sample_arrival

REPO = Path(__file__).resolve().parents[2]
SIZE = (1280, 800)  # the app's landscape window; the X screen is exactly that, so it fills it


def pad_toml(prov: ProvisionResult, device: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = (f'branch_id = "{prov.branch_id}"\nrole = "rm"\nlanguage = "zh-CN"\nsound = false\n'
            f'mqtt_file = "{prov.device_dir(device) / "mqtt.toml"}"\n'
            f'[mqtt]\nhost = "127.0.0.1"\noutbox_path = "{folder / "outbox.db"}"\n'
            f'seen_ids_path = "{folder / "seen.db"}"\nreconnect_min_s = 0.1\nreconnect_max_s = 1.0\n')
    path = folder / "pad.toml"
    path.write_text(text, encoding="utf-8")
    return path


def qimage_rgb(path: Path) -> np.ndarray:
    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    width, height, stride = image.width(), image.height(), image.bytesPerLine()
    ptr = image.constBits()
    assert ptr is not None
    rows = np.frombuffer(ptr.asstring(stride * height), np.uint8).reshape(height, stride)
    return rows[:, :width * 3].reshape(height, width, 3)


def shows(screen: Screen, card: np.ndarray) -> bool:
    """Whether the X screen shows ``card`` (the app's own picture of its window): nearly every
    pixel the same (the pointer and anti-aliasing may differ on a few)."""
    pixels = screen.grab()
    if pixels.shape != card.shape:
        return False
    same = np.all(np.abs(pixels.astype(int) - card.astype(int)) <= 8, axis=-1)
    return float(same.mean()) >= 0.97


@pytest.fixture
def edge(provisioned_branch, mosquitto_broker, tmp_path: Path):  # type: ignore[no-untyped-def]  # noqa: F811
    mosquitto_broker(provisioned_branch)
    client = make_client(provisioned_branch, "edge-1", tmp_path / "edge")
    client.start()
    assert client.wait_connected(10)
    yield client
    client.stop()


def test_pad_on_a_real_x_display_shows_an_arrival(provisioned_branch, edge, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    config = pad_toml(provisioned_branch, "rm-1", tmp_path / "pad")
    shots = tmp_path / "shots"
    with xvfb(tmp_path, SIZE) as screen:
        # `make test` sets QT_QPA_PLATFORM=offscreen for everything; this process is the exception.
        env = {**os.environ, "DISPLAY": screen.display, "QT_QPA_PLATFORM": "xcb"}
        env.pop("WAYLAND_DISPLAY", None)
        log = tmp_path / "pad.log"
        with log.open("w", encoding="utf-8") as err:
            proc = subprocess.Popen([sys.executable, "-m", "ui.cli", "--config", str(config),
                                     "--screenshots", str(shots), "--log-level", "INFO"],
                                    cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=err, text=True)
        try:
            # Arrivals sent before the PAD's subscriptions are acknowledged are lost to its first connection.
            assert wait_until(lambda: SUBSCRIBED_LINE in log.read_text() or proc.poll() is not None,
                              60), log.read_text()
            assert proc.poll() is None, f"branch-pad died on the xcb platform:\n{log.read_text()}"
            edge.publish(sample_arrival(name="王晓明", customer_id="c-1", assigned_rm="rm-1"))
            saved = shots / "card-001-c-1.png"
            assert wait_until(lambda: "saved card-001" in log.read_text() or proc.poll() is not None, 60)
            card = qimage_rgb(saved)
            # What the X server shows is the window with the card open, not a blank screen.
            assert wait_until(lambda: shows(screen, card), 30), "the X screen does not show the card"
            pixels = screen.grab()
            assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
            proc.terminate()
            assert proc.wait(30) == 0, log.read_text()
        finally:
            proc.kill()
