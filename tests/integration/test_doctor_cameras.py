"""`branch-edge doctor` on IP cameras (GStreamer's RTSP server on loopback): reachable,
credentials accepted, codec, resolution and frame rate of the main stream and the
substream, and what to fix; the password never appears in what it prints."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from edge.cli import main
from edge.commands.doctor import check_camera
from edge.config import CameraConfig
from tests.integration.test_capture import write_video
from tests.rtsp_fixtures import RtspCameraServer, rtsp_camera

USER, PASSWORD = "admin", "Doctor-Pa55!"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(tmp_path_factory.mktemp("doctor") / "clip.mp4", 30, fps=10, size=(320, 240))


@pytest.fixture
def camera(rtsp_cameras, clip: Path) -> RtspCameraServer:
    return rtsp_camera(rtsp_cameras, clip, streams={"main": (640, 360), "sub": (320, 180), "big": (1296, 730),
                                                    "square": (240, 240)},
                       user=USER, password=PASSWORD, auth="digest")


def config(**values: object) -> CameraConfig:
    return CameraConfig.model_validate({"name": "lobby-1", "open_timeout_s": 10.0, **values})


def fps_of(detail: str, stream: str) -> float:
    match = re.search(rf"{stream}: \w+ \d+x\d+ @ ([\d.]+) fps", detail)
    assert match, detail
    return float(match.group(1))


def test_main_and_substream_codec_resolution_and_frame_rate(camera: RtspCameraServer) -> None:
    check = check_camera(config(source=camera.url("main"), substream=camera.url("sub")))
    assert check.status == "ok", check
    assert re.fullmatch(r"main: h264 640x360 @ [\d.]+ fps; sub: h264 320x180 @ [\d.]+ fps", check.detail)
    assert fps_of(check.detail, "main") > 0 and fps_of(check.detail, "sub") > 0


@pytest.mark.parametrize(("url", "status", "detail", "fix"), [
    (lambda c: c.url("main", password="wrong"), "fail", "authentication failed", "password"),
    (lambda c: c.url("main", user=""), "fail", "authentication failed", "user name"),
    (lambda c: c.url("nope"), "fail", "no such stream", "stream path"),
    (lambda c: f"rtsp://{USER}:{PASSWORD}@127.0.0.1:9/main", "fail", "camera unreachable", "RTSP port"),
])
def test_each_problem_is_named_with_its_fix(camera: RtspCameraServer, url, status: str, detail: str,
                                            fix: str) -> None:
    check = check_camera(config(source=url(camera)))
    assert (check.status, detail in check.detail, fix in check.fix) == (status, True, True), check
    assert PASSWORD not in check.detail + check.fix
    assert "***" in check.detail or "@" not in url(camera)


def test_advice_for_a_large_analysed_stream_and_a_substream_of_another_shape(
        camera: RtspCameraServer) -> None:
    big = check_camera(config(source=camera.url("big")))
    assert big.status == "warn" and "1296x730" in big.detail and "substream" in big.fix, big
    odd = check_camera(config(source=camera.url("main"), substream=camera.url("square")))
    assert odd.status == "warn" and "aspect ratio" in odd.fix, odd


def test_h265_substream_and_too_few_frames_are_flagged(rtsp_cameras, clip: Path) -> None:
    slow = rtsp_camera(rtsp_cameras, clip, streams={"main": (640, 360), "sub": (320, 180)}, codec="h265",
                       fps=4.0, user=USER, password=PASSWORD)
    check = check_camera(config(source=slow.url("main"), substream=slow.url("sub"), analyse_fps=10.0))
    assert check.status == "warn", check
    assert "sub: hevc 320x180" in check.detail
    assert "H.265" in check.fix and "fewer than analyse_fps" in check.fix


def test_doctor_output_never_shows_the_password(camera: RtspCameraServer, tmp_path: Path, capsys) -> None:
    secret = tmp_path / "camera.password"
    secret.write_text(PASSWORD, encoding="utf-8")
    secret.chmod(0o600)
    cfg = tmp_path / "edge.toml"
    cfg.write_text("\n".join([
        "[[cameras]]", 'name = "inline"', f'source = "{camera.url("main")}"',
        f'substream = "{camera.url("sub")}"',
        "[[cameras]]", 'name = "wrong"', f'source = "{camera.url("main", password=PASSWORD + "x")}"',
        "[[cameras]]", 'name = "from-file"', f'source = "{camera.url("main", user="")}"',
        f'username = "{USER}"', f'password_file = "{secret}"', ""]), encoding="utf-8")
    for json_flag in ([], ["--json"]):
        main(["doctor", "--config", str(cfg), "--db", str(tmp_path / "none.db"), *json_flag])
        out = capsys.readouterr()
        text = out.out + out.err
        assert PASSWORD not in text and "Doctor-Pa55%21" not in text
    report = json.loads(out.out)
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["camera inline"]["status"] == "ok"
    assert checks["camera from-file"]["status"] == "ok"
    assert checks["camera wrong"]["status"] == "fail"
    assert "authentication failed" in checks["camera wrong"]["detail"]
    assert f"rtsp://{USER}:***@127.0.0.1:{camera.port}/main" in checks["camera wrong"]["detail"]
