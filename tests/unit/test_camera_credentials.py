"""Camera credentials: masked wherever a URL is shown, read from a file or the environment,
refused in two places at once; the on-demand main stream opens only while asked for."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.config import CameraConfig, parse_config
from edge.core.errors import ConfigError
from edge.lobby.capture import MainStream, fourcc
from edge.lobby.rtsp import CredentialError, mask_url, redact, secrets_of, stream_url
from tests.mqtt_fixtures import wait_until


def cam(source: str, **options: object) -> CameraConfig:
    return CameraConfig.model_validate({"name": "c1", "source": source, **options})


@pytest.mark.parametrize(("url", "shown"), [
    ("rtsp://admin:hunter22@10.0.0.5:554/Streaming/Channels/101",
     "rtsp://admin:***@10.0.0.5:554/Streaming/Channels/101"),
    ("rtsp://admin:p%40ss%3Aw@cam.local/live", "rtsp://admin:***@cam.local/live"),
    ("rtsp://admin@10.0.0.5/live", "rtsp://admin:***@10.0.0.5/live"),
    ("rtsp://10.0.0.5/cam/realmonitor?channel=1&subtype=0&user=admin&password=hunter22",
     "rtsp://10.0.0.5/cam/realmonitor?channel=1&subtype=0&user=***&password=***"),
    ("rtsp://10.0.0.5/live", "rtsp://10.0.0.5/live"),
    ("/videos/lobby.mp4", "/videos/lobby.mp4"),
])
def test_urls_are_shown_masked(url: str, shown: str) -> None:
    assert mask_url(url) == shown


@given(st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=3, max_size=30))
def test_any_password_is_masked_and_redacted(password: str) -> None:
    from urllib.parse import quote

    url = f"rtsp://admin:{quote(password, safe='')}@10.0.0.5/live"
    assert mask_url(url) == "rtsp://admin:***@10.0.0.5/live"
    cleaned = redact(f"could not open {url}; password was {password}", cam(url))
    shown = "could not open rtsp://admin:***@10.0.0.5/live; password was ***"
    if len(password) >= 3 and password not in shown:  # shorter ones are not searched for
        assert cleaned == shown


def test_password_from_file_goes_into_the_opened_url_only(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("s3cr:et/\n", encoding="utf-8")
    secret.chmod(0o600)
    config = cam("rtsp://10.0.0.5/live", username="admin", password_file=str(secret))
    assert stream_url(config, config.source) == "rtsp://admin:s3cr%3Aet%2F@10.0.0.5/live"
    assert "s3cr:et/" in secrets_of(config)
    assert "s3cr" not in repr(config)  # nor in the config's repr


def test_password_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    config = cam("rtsp://viewer@10.0.0.5/live", password_env="CAM_PW")
    with pytest.raises(CredentialError, match="CAM_PW is not set"):
        stream_url(config, config.source)
    monkeypatch.setenv("CAM_PW", "topsecret")
    assert stream_url(config, config.source) == "rtsp://viewer:topsecret@10.0.0.5/live"


def test_loose_password_file_is_refused(tmp_path: Path) -> None:
    secret = tmp_path / "pw"
    secret.write_text("topsecret", encoding="utf-8")
    secret.chmod(0o640)
    with pytest.raises(CredentialError, match="chmod 600"):
        stream_url(cam("rtsp://10.0.0.5/live", username="a", password_file=str(secret)), "rtsp://10.0.0.5/live")


@pytest.mark.parametrize(("options", "message"), [
    ({"source": "rtsp://a:inline@h/x", "password_env": "X"}, "already carries a password"),
    ({"source": "rtsp://h/x", "password_env": "X", "password_file": "/f"}, "give one of them"),
    ({"source": "/videos/a.mp4", "password_env": "X"}, "rtsp:// sources only"),
    ({"source": "/videos/a.mp4", "substream": "rtsp://h/sub"}, "rtsp:// URLs for both"),
])
def test_credential_settings_that_contradict_are_refused_without_quoting_the_url(
        options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        parse_config({"cameras": [{"name": "c1", **options}]})
    assert "inline" not in str(caught.value)


def test_fourcc_text() -> None:
    assert fourcc(float(int.from_bytes(b"h264", "little"))) == "h264"
    assert fourcc(float("nan")) == ""
    assert fourcc(0.0) == ""


# --- the main stream, opened on demand -------------------------------------------------


class FakeSource:
    """A camera's main stream: 1080p frames as fast as they are read (a little paced)."""

    opened = 0

    def __init__(self) -> None:
        FakeSource.opened += 1
        self.image = np.zeros((1080, 1920, 3), np.uint8)
        self.released = False

    def isOpened(self) -> bool:  # noqa: N802
        return True

    def grab(self) -> bool:
        time.sleep(0.01)
        return not self.released

    def retrieve(self) -> tuple[bool, Any]:
        return True, self.image

    def read(self) -> tuple[bool, Any]:
        return self.grab(), self.image

    def get(self, prop: int) -> float:
        return 25.0

    def release(self) -> None:
        self.released = True


def test_main_stream_opens_when_asked_and_closes_after_the_linger_time() -> None:
    FakeSource.opened = 0
    stop = threading.Event()
    config = cam("rtsp://h/main", substream="rtsp://h/sub", main_linger_s=0.5, main_crop_below_px=30)
    main = MainStream(config, stop, opener=lambda _: FakeSource())
    assert main.below_px == 30
    for _ in range(5):  # nobody asks: nothing is opened
        main.tend()
    assert FakeSource.opened == 0 and main.state == "idle"

    def ask_and_tend() -> bool:
        image = main.frame(time.monotonic())
        main.tend()
        return image is not None

    assert wait_until(ask_and_tend, 30)  # asked: opened, and a recent frame comes back
    assert FakeSource.opened == 1 and main.state == "up" and main.fetches >= 1
    assert main.frame(time.monotonic() - 10) is None  # a frame far from the asked time is not used

    def closed() -> bool:
        main.tend()
        return main.state == "idle"

    assert wait_until(closed, 30)  # no ask for main_linger_s: closed
    assert not any(t.is_alive() for t in main.threads())
    assert FakeSource.opened == 1
    stop.set()
