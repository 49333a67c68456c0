"""``branch-edge doctor``: check what the daemon needs and say what to fix.

Checks models (digests), each camera (for RTSP: reachable, credentials accepted, then
codec, resolution and frame rate of the main stream and the substream, with what to
change; URLs are shown with the password masked), the broker
(TLS handshake and an MQTT CONNECT under a separate client id, so a running
daemon is not disconnected and its retained status is untouched; with no
``[mqtt] host`` nothing is probed: that configuration means the demo's
embedded broker), the store (``--db`` or ``store.path``, opened with the key,
never created), free disk space and the clock.  Exit 0 when nothing
failed (warnings allowed), 1 otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import shutil
import socket
import ssl
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from edge.config import CameraConfig, EdgeConfig

if TYPE_CHECKING:
    from edge.lobby.capture import VideoSource

MIN_FREE_BYTES = 1 << 30  # 1 GiB: the outbox, the WAL and logs must be able to grow
MIN_YEAR = 2025
CONNACK = {0: "accepted", 1: "unacceptable protocol version", 2: "client id rejected",
           3: "server unavailable", 4: "bad user name or password", 5: "not authorised"}


@dataclass(frozen=True)
class Check:
    name: str
    status: Literal["ok", "warn", "fail"]
    detail: str
    fix: str = ""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("doctor", help="check models, cameras, broker, store, disk and clock")
    parser.add_argument("--config", type=Path, help="edge TOML config (default: $BRANCH_EDGE_CONFIG)")
    parser.add_argument("--models", type=Path, help="model folder (default: models.dir / env)")
    parser.add_argument("--db", type=Path, help="store database (default: store.path in config)")
    parser.add_argument("--key-file", type=Path, help="store key file (default: from config/env)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edge.config import load_config

    cfg = load_config(args.config)
    if args.db is not None:  # the store and disk checks look at this file instead
        cfg = cfg.model_copy(update={"store": cfg.store.model_copy(update={"path": args.db})})
    checks = run_checks(cfg, args.models, args.key_file)
    ok = not any(c.status == "fail" for c in checks)
    if args.json:
        print(json.dumps({"ok": ok, "checks": [asdict(c) for c in checks]}, indent=2, ensure_ascii=False))
    else:
        for c in checks:
            print(f"[{c.status.upper():4}] {c.name}: {c.detail}")
            if c.fix and c.status != "ok":
                print(f"       fix: {c.fix}")
        print("all checks passed" if ok else "some checks failed")
    return 0 if ok else 1


def run_checks(cfg: EdgeConfig, models_dir: Path | None, key_file: Path | None) -> list[Check]:
    checks = [guarded("models", lambda: check_models(cfg, models_dir))]
    checks += [guarded(f"camera {c.name}", functools.partial(check_camera, c)) for c in cfg.cameras]
    if not cfg.cameras:
        checks.append(Check("cameras", "fail", "no [[cameras]] configured",
                            "add a [[cameras]] section per camera (see scripts/edge.sample.toml)"))
    checks.append(guarded("broker", lambda: check_broker(cfg)))
    checks.append(guarded("store", lambda: check_store(cfg, key_file)))
    checks.append(guarded("disk", lambda: check_disk(cfg)))
    checks.append(guarded("clock", check_clock))
    return checks


def guarded(name: str, probe: Callable[[], Check]) -> Check:
    """A check that raises becomes a failed check, never a crashed doctor."""
    try:
        return probe()
    except Exception as err:
        return Check(name, "fail", f"{type(err).__name__}: {err}", "see the detail above")


def check_models(cfg: EdgeConfig, models_dir: Path | None) -> Check:
    from models.pack import ModelPackError, load_pack, require_verified, resolve_models_dir

    try:
        pack = load_pack(cfg.models.pack)
        root = resolve_models_dir(pack, models_dir, cfg.models.dir)
        files = require_verified(pack, root)
    except ModelPackError as err:
        return Check("models", "fail", str(err),
                     "set models.dir (or BRANCH_EDGE_MODELS) to the folder with the pack's ONNX files; "
                     "replace any file whose digest does not match")
    return Check("models", "ok", f"pack {pack.id}: {len(files)} files verified (sha256) in {root}")


# Seconds of frames read from each stream to measure its frame rate.
MEASURE_S = 1.5
# Analysed above this many pixels without a substream, a camera costs more CPU than it needs.
SUBSTREAM_ADVISED_PIXELS = 1280 * 720


@dataclass(frozen=True)
class StreamInfo:
    codec: str
    width: int
    height: int
    fps: float

    def text(self) -> str:
        return f"{self.codec or '?'} {self.width}x{self.height} @ {self.fps:.1f} fps"


def check_camera(cam: CameraConfig) -> Check:
    """Each stream of the camera: reachable, credentials accepted, codec, resolution, frame rate."""
    from edge.lobby.rtsp import CredentialError, mask_url, redact

    name = f"camera {cam.name}"
    streams = [("main", cam.source)] + ([("sub", cam.substream)] if cam.substream else [])
    infos: dict[str, StreamInfo] = {}
    for label, url in streams:
        try:
            failed, info = probe_stream(cam, url)
        except CredentialError as err:
            return Check(name, "fail", str(err), "create the password file (mode 0600) or set the variable "
                         "named in the camera's password_file / password_env")
        if failed is not None:
            where = f"{label} stream {mask_url(url)}" if cam.substream else mask_url(url)
            return Check(name, "fail", redact(f"{failed[0]} ({where})", cam), failed[1])
        assert info is not None
        infos[label] = info
    detail = "; ".join(f"{label}: {info.text()}" for label, info in infos.items()) if cam.substream \
        else infos["main"].text()
    advice = camera_advice(cam, infos)
    if advice:
        return Check(name, "warn", redact(detail, cam), " ".join(advice))
    return Check(name, "ok", redact(detail, cam))


FIXES = {
    "unauthorized": "check the camera's user name and password (its web page, Users); give the password "
                    "with password_file or password_env; cameras lock an account out after repeated failures",
    "not_found": "check the stream path for the camera's brand (docs/operations/cameras.md: RTSP URLs)",
    "refused": "check the camera's address and RTSP port (554 unless changed), that RTSP is enabled, and "
               "that the camera is powered",
    "unreachable": "check the camera's IP address, power and cabling, and that this PC reaches it "
                   "(ping; a firewall between them)",
    "error": "check that the URL points at the camera's RTSP port",
}


def probe_stream(cam: CameraConfig, url: str) -> tuple[tuple[str, str] | None, StreamInfo | None]:
    """((problem, fix), None) or (None, the stream's codec, resolution and measured frame rate)."""
    from edge.lobby.capture import fourcc, open_source, source_kind, usable_image
    from edge.lobby.rtsp import probe, stream_url

    one = cam.model_copy(update={"source": url, "substream": None})
    codecs: tuple[str, ...] = ()
    if source_kind(url) == "rtsp" and not cam.rtsp_listen:
        answer = probe(stream_url(cam, url), timeout=min(cam.open_timeout_s, 5.0))
        if answer.state != "ok":
            return (answer.detail, FIXES[answer.state]), None
        codecs = answer.codecs
    import cv2

    source = open_source(one)
    try:
        if not source.isOpened():
            return ("cannot open the stream" if codecs else "cannot open source",
                    "check the path / rtsp URL (user, password, stream path) / USB index, that the camera "
                    "is powered and reachable from this PC, and for RTSP the transport (rtsp_transport = "
                    "\"tcp\" passes firewalls that block UDP)"), None
        ok, image = source.read()
        if not ok or not usable_image(image):
            return ("opened but gave no usable frame",
                    "check the camera's codec (H.264 or H.265) and stream settings"), None
        declared = source.get(cv2.CAP_PROP_FPS)
        codec = fourcc(source.get(cv2.CAP_PROP_FOURCC)) or (codecs[0].lower() if codecs else "")
        fps = measured_fps(source) if source_kind(url) == "rtsp" else declared
    finally:
        source.release()
    height, width = image.shape[:2]
    return None, StreamInfo(codec, width, height, fps if fps > 0 else declared)


def measured_fps(source: VideoSource) -> float:
    """Frames per second of the stream, from its frames' own timestamps over ``MEASURE_S``
    (frames buffered while the stream opened arrive at once: their arrival says nothing)."""
    import cv2

    stamps: list[float] = []
    started = time.monotonic()
    while time.monotonic() - started < MEASURE_S and len(stamps) < 120 and source.grab():
        stamps.append(source.get(cv2.CAP_PROP_POS_MSEC))
    span = (stamps[-1] - stamps[0]) / 1000 if len(stamps) >= 2 else 0.0
    return (len(stamps) - 1) / span if span > 0 else 0.0


def camera_advice(cam: CameraConfig, infos: dict[str, StreamInfo]) -> list[str]:
    """What to change on the camera or in its [[cameras]] section."""
    analysed = infos.get("sub") or infos["main"]
    advice = []
    if analysed.fps and analysed.fps < cam.analyse_fps * 0.9:
        advice.append(f"the {'substream' if 'sub' in infos else 'stream'} delivers {analysed.fps:.1f} fps, "
                      f"fewer than analyse_fps = {cam.analyse_fps:g}: raise the camera's frame rate.")
    if analysed.codec in ("hevc", "h265"):
        advice.append("the analysed stream is H.265, which costs more CPU to decode than H.264: set the "
                      "camera's (sub)stream to H.264 if this PC is short of CPU.")
    if "sub" not in infos and analysed.width * analysed.height > SUBSTREAM_ADVISED_PIXELS \
            and source_is_rtsp(cam):
        advice.append(f"the {analysed.width}x{analysed.height} main stream is analysed: set the camera's "
                      "substream to 1280x720 (or 640x360) and give it as substream; small faces are still "
                      "cropped from the main stream.")
    if "sub" in infos:
        main, sub = infos["main"], infos["sub"]
        if abs(main.width / main.height - sub.width / sub.height) > 0.05:
            advice.append(f"the substream ({sub.width}x{sub.height}) and the main stream "
                          f"({main.width}x{main.height}) differ in aspect ratio: give the substream the "
                          "main stream's shape (e.g. 640x360 for 16:9).")
        if sub.width * sub.height >= main.width * main.height:
            advice.append("the substream is not smaller than the main stream: check which URL is which.")
    return advice


def source_is_rtsp(cam: CameraConfig) -> bool:
    from edge.lobby.capture import source_kind

    return source_kind(cam.source) == "rtsp"


def check_broker(cfg: EdgeConfig, timeout: float = 5.0) -> Check:
    mq = cfg.mqtt
    if not mq.host:  # nothing to probe: no broker is configured
        return Check("broker", "warn",
                     "no [mqtt] host configured: the demo and the benchmarks start the embedded "
                     "loopback broker themselves; no broker probed",
                     "on a branch PC set [mqtt] host (and port, ca_file, cert_file, key_file from "
                     "`branch-edge provision`) to the branch's Mosquitto, which `branch-edge run` needs")
    host = mq.host
    where = f"{host}:{mq.port}"
    try:
        code = mqtt_connect(cfg, host, timeout)
    except ssl.SSLError as err:
        return Check("broker", "fail", f"TLS with {where} failed: {err.reason or err}",
                     "check mqtt.ca_file, cert_file and key_file (from `branch-edge provision`)")
    except OSError as err:
        return Check("broker", "fail", f"cannot reach {where}: {err}",
                     "start Mosquitto (systemctl status mosquitto) and check mqtt.host / port")
    if code != 0:
        return Check("broker", "fail", f"{where} refused the connection: {CONNACK.get(code, code)}",
                     "check mqtt.device_id, password_file and the broker's ACL for this device")
    return Check("broker", "ok", f"connected to {where}" + (" over TLS" if mq.tls else ""))


def mqtt_connect(cfg: EdgeConfig, host: str, timeout: float) -> int:
    """One MQTT 3.1.1 CONNECT (clean session, own client id); the CONNACK return code."""
    mq = cfg.mqtt
    username = mq.username or (mq.device_id if mq.tls else None)
    password = mq.read_password()
    flags = 0x02 | (0x80 if username else 0) | (0x40 if password else 0)
    client_id = f"{mq.effective_client_id[:40]}-doctor-{uuid.uuid4().hex[:8]}"
    body = b"\x00\x04MQTT\x04" + bytes([flags]) + b"\x00\x0a" + _utf8(client_id)
    body += (_utf8(username) if username else b"") + (_utf8(password) if password else b"")
    with contextlib.ExitStack() as stack:
        sock = stack.enter_context(socket.create_connection((host, mq.port), timeout=timeout))
        if mq.tls:
            from mqtt.client import tls_context

            sock = stack.enter_context(tls_context(mq).wrap_socket(sock, server_hostname=host))
        sock.sendall(bytes([0x10]) + _remaining_length(len(body)) + body)
        reply = sock.recv(4)
        sock.sendall(b"\xe0\x00")  # DISCONNECT
    if len(reply) < 4 or reply[0] != 0x20:
        raise OSError(f"no CONNACK from the broker (got {reply!r})")
    return reply[3]


def _utf8(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


def _remaining_length(n: int) -> bytes:
    out = bytearray()
    while True:
        n, digit = divmod(n, 128)
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def check_store(cfg: EdgeConfig, key_file: Path | None) -> Check:
    from edge.core.errors import StoreError
    from edge.store.database import open_configured

    try:
        with open_configured(cfg.store, None, key_file, create=False) as store:
            generation = store.gallery_generation()
    except StoreError as err:
        return Check("store", "fail", str(err),
                     "check store.path and the key (store.key_file or the key environment variable)")
    return Check("store", "ok", f"{cfg.store.path} opens with the key (gallery generation {generation})")


def check_disk(cfg: EdgeConfig) -> Check:
    folders = {Path(cfg.store.path).resolve().parent, Path(cfg.mqtt.outbox_path).resolve().parent}
    worst = min((shutil.disk_usage(f).free, f) for f in folders if f.exists())
    free, folder = worst
    detail = f"{free / 2**30:.1f} GiB free for {folder}"
    if free < MIN_FREE_BYTES:
        return Check("disk", "fail", detail, "free disk space: at least 1 GiB for the store and outbox")
    return Check("disk", "ok", detail)


def check_clock() -> Check:
    now = datetime.now(UTC)
    if now.year < MIN_YEAR:
        return Check("clock", "fail", f"system time is {now:%Y-%m-%d}",
                     "set the clock and enable NTP (timedatectl set-ntp true): "
                     "TLS certificates and arrival expiry depend on it")
    synced = ntp_synchronised()
    if synced is False:
        return Check("clock", "warn", f"{now:%Y-%m-%d %H:%M:%S} UTC, not NTP-synchronised",
                     "enable time sync: timedatectl set-ntp true")
    state = "NTP-synchronised" if synced else "NTP state unknown"
    return Check("clock", "ok", f"{now:%Y-%m-%d %H:%M:%S} UTC, {state}")


def ntp_synchronised() -> bool | None:
    if shutil.which("timedatectl") is None:
        return None
    try:
        out = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                             capture_output=True, text=True, timeout=3, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return {"yes": True, "no": False}.get(out)
