"""``branch-edge doctor``: check what the daemon needs and say what to fix.

Checks models (digests), each camera (opens and gives one frame), the broker
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
from typing import Literal

from edge.config import CameraConfig, EdgeConfig

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


def check_camera(cam: CameraConfig) -> Check:
    from edge.lobby.capture import open_source, usable_image

    name = f"camera {cam.name}"
    started = time.monotonic()
    source = open_source(cam)
    try:
        if not source.isOpened():
            return Check(name, "fail", f"cannot open {cam.source}",
                         "check the path / rtsp URL (user, password, stream path) / USB index, "
                         "and that the camera is powered and reachable from this PC")
        ok, image = source.read()
    finally:
        source.release()
    if not ok or not usable_image(image):
        return Check(name, "fail", f"{cam.source} opened but gave no usable frame",
                     "check the camera's codec (H.264/H.265/MJPEG) and stream settings")
    height, width = image.shape[:2]
    return Check(name, "ok", f"{width}x{height} frame in {time.monotonic() - started:.2f} s")


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
