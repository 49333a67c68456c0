"""``branch-edge soak``: the daemon under a steady load for minutes, watched for leaks.

N cameras play looped videos (a synthetic lobby of enrolled customers, and a
downscaled clip of the opera walk with crowds of strangers) through the real
daemon; M RM PADs (real ``BranchClient`` + ``Receiver``) subscribe to arrivals on a
real Mosquitto started with a provisioned config (TLS, passwords, ACL), or the
embedded broker when Mosquitto is not installed.  Every ``sample_s`` the process's
RSS, thread count and open file descriptors are sampled (all of it runs in this
one process) with the arrival latencies (frame grabbed -> PAD received) of that
window.  Short visit times make each loop of the video a new visit, so arrivals
keep flowing for the whole run.

Limits (exit 1 when exceeded): memory slope over the second half of the run
(least squares) above ``max_slope_mb_h``; more threads or descriptors at the end
than at the start (the smallest of the last three samples against the largest of
the first three after warm-up, so one passing connection is not a leak); an
arrival that some PAD never received.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2

from edge.config import EdgeConfig, parse_config
from edge.core.errors import BranchEdgeError
from edge.enrol.enrolment import enrol_folder
from edge.lobby.daemon import EdgeDaemon, package_version
from edge.store.crypto import generate_key_file
from edge.store.database import open_configured
from edge.tools.demo.lobby import percentile
from edge.tools.synth import SynthSpec, generate_lobby, write_consenting_customers
from edge.vision.engine import FaceEngine
from mqtt.client import BranchClient, Identity
from mqtt.config import MqttConfig
from mqtt.dedup import SeenIds
from mqtt.embedded import EmbeddedBroker
from mqtt.messages import Arrival, utc_now
from mqtt.provision import Device, provision
from mqtt.provision.run import BrokerOptions, current_user
from mqtt.receiver import Delivery, Receiver
from mqtt.topics import BranchTopics

BRANCH = "soak"
CONNECT_S = 20.0
DRAIN_S = 15.0
OPERA_CLIP_S = 20.0


class SoakError(BranchEdgeError):
    """The soak run cannot be set up (no photos, no video, broker did not start)."""


@dataclass(frozen=True)
class SoakOptions:
    faces_dir: Path
    opera_video: Path | None
    cameras: int = 4
    pads: int = 20
    seconds: float = 600.0
    sample_s: float = 10.0
    warmup_s: float = 60.0
    analyse_fps: float = 5.0
    max_slope_mb_h: float = 20.0
    models_dir: Path | None = None


# --- process samples --------------------------------------------------------------


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise SoakError("no VmRSS in /proc/self/status")


def os_threads() -> int:
    """Every OS thread of the process, ONNX Runtime's and paho's included."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise SoakError("no Threads in /proc/self/status")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def slope_per_hour(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, value) points, per hour."""
    if len(points) < 2:
        return 0.0
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var * 3600


# --- PADs -------------------------------------------------------------------------


class Pads:
    """RM PADs collecting arrival latencies (frame grabbed -> received) per window."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.window: list[float] = []
        self.all: list[float] = []
        self.received: dict[str, set[str]] = {}
        self.clients: list[BranchClient] = []

    def handler(self, device: str) -> Any:
        def on_delivery(delivery: Delivery) -> None:
            message = delivery.message
            if not isinstance(message, Arrival):
                return
            latency = (utc_now() - message.seen_at).total_seconds() * 1000
            with self.lock:
                self.window.append(latency)
                self.all.append(latency)
                self.received.setdefault(device, set()).add(message.id)
        return on_delivery

    def take_window(self) -> list[float]:
        with self.lock:
            window, self.window = sorted(self.window), []
        return window

    def least_received(self) -> int:
        with self.lock:
            return min((len(self.received.get(c.identity.device_id, ())) for c in self.clients), default=0)


# --- set-up -----------------------------------------------------------------------


def opera_clip(video: Path, out: Path, seconds: float = OPERA_CLIP_S) -> Path:
    """The first seconds of the opera walk at 960x540, so looping it does not decode 1080p."""
    cap = cv2.VideoCapture(str(video))
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter.fourcc(*"mp4v"), fps, (960, 540))
    try:
        for _ in range(int(fps * seconds)):
            ok, frame = cap.read()
            if not ok:
                break
            writer.write(cv2.resize(frame, (960, 540), interpolation=cv2.INTER_AREA))
    finally:
        cap.release()
        writer.release()
    return out


def camera_list(options: SoakOptions, lobby: Path, opera: Path | None) -> list[dict[str, Any]]:
    """Lobby cameras and opera cameras alternate (all lobby without the opera video)."""
    cams = []
    for i in range(options.cameras):
        source = opera if (i % 2 == 1 and opera is not None) else lobby
        kind = "opera" if source == opera else "lobby"
        cams.append({"name": f"{kind}-{i + 1}", "source": str(source), "loop": True,
                     "analyse_fps": options.analyse_fps})
    return cams


@contextlib.contextmanager
def soak_broker(work: Path, pads: int) -> Iterator[tuple[str, dict[str, MqttConfig]]]:
    """("mosquitto" | "embedded", {device id: its [mqtt] settings})."""
    binary = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    devices = ["edge-1", *[f"rm-{i:02d}" for i in range(1, pads + 1)]]
    if binary is None:
        broker = EmbeddedBroker()
        port = broker.start()
        try:
            yield "embedded", {d: mqtt_settings(work, d, port) for d in devices}
        finally:
            broker.stop()
        return
    with mosquitto(binary, work, devices) as configs:
        yield "mosquitto", configs


@contextlib.contextmanager
def mosquitto(binary: str, work: Path, devices: list[str]) -> Iterator[dict[str, MqttConfig]]:
    """Mosquitto with a freshly provisioned branch: TLS, one password per device, ACL."""
    port = free_port()
    prov = provision(BRANCH, [Device(d, "edge" if d.startswith("edge") else "rm") for d in devices],
                     work / "pki", BrokerOptions(port=port, bind="127.0.0.1", broker_user=current_user()))
    with (work / "mosquitto.log").open("wb") as log:
        proc = subprocess.Popen([binary, "-c", str(prov.broker_conf)], stdout=log, stderr=log)
    try:
        if not listening(port, proc, CONNECT_S):
            raise SoakError(f"mosquitto did not start; see {work / 'mosquitto.log'}")
        yield {d: mqtt_settings(work, d, port, prov.device_dir(d)) for d in devices}
    finally:
        proc.terminate()
        proc.wait(10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def listening(port: int, proc: subprocess.Popen[bytes], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
        time.sleep(0.05)
    return False


def mqtt_settings(work: Path, device: str, port: int, folder: Path | None = None) -> MqttConfig:
    values: dict[str, Any] = {
        "host": "127.0.0.1", "port": port, "device_id": device, "reconnect_min_s": 0.2,
        "reconnect_max_s": 2.0, "outbox_path": work / f"{device}-outbox.db",
        "seen_ids_path": work / f"{device}-seen.db"}
    if folder is not None:
        values.update(ca_file=folder / "ca.crt", cert_file=folder / "client.crt",
                      key_file=folder / "client.key", password_file=folder / "password")
    return MqttConfig.model_validate(values)


def prepare_branch(options: SoakOptions, work: Path, mqtt: MqttConfig) -> tuple[EdgeConfig, FaceEngine]:
    """Synthesise the lobby, enrol its customers into a fresh keyed store; the config."""
    if not options.faces_dir.is_dir():
        raise SoakError(f"faces folder {options.faces_dir} does not exist (set BRANCH_EDGE_DATA)")
    truth = generate_lobby(options.faces_dir, work / "lobby.mp4", work / "truth.json", enrolled=4,
                           strangers=2, spec=SynthSpec(seconds=20.0, fps=10.0), seed=11,
                           background_video=options.opera_video)
    opera = opera_clip(options.opera_video, work / "opera.mp4") if options.opera_video else None
    generate_key_file(work / "store.key")
    cfg = parse_config({
        "branch_id": BRANCH, "mqtt": mqtt.model_dump(mode="json", exclude_none=True),
        "store": {"path": str(work / "edge.db"), "key_file": str(work / "store.key")},
        "cameras": camera_list(options, work / "lobby.mp4", opera),
        "runtime": {"intra_op_threads": 1},
        "visits": {"absence_s": 3.0, "cooldown_s": 5.0},  # each loop of the video: a new visit
        "metrics": {"port": 0},
        "daemon": {"status_interval_s": 5.0}})
    engine = FaceEngine.from_config(cfg, options.models_dir)
    with open_configured(cfg.store) as store:
        enrol_folder(store, engine, cfg, options.faces_dir, customers_csv=write_consenting_customers(
            truth, work / "customers.csv"), actor="soak", progress=False)
    return cfg, engine


def start_pads(configs: dict[str, MqttConfig], pads: Pads) -> None:
    topic = BranchTopics(BRANCH).arrivals
    for device, cfg in configs.items():
        if device.startswith("edge"):
            continue
        receiver = Receiver(SeenIds(cfg.seen_ids_path), handler=pads.handler(device))
        client = BranchClient(cfg, Identity(BRANCH, device, "rm"), receiver=receiver, subscriptions=(topic,))
        pads.clients.append(client)
        client.start()
    if not all(c.wait_connected(CONNECT_S) for c in pads.clients):
        raise SoakError("the PADs could not connect to the broker")


# --- the run ----------------------------------------------------------------------


def sample(t0: float, pads: Pads, daemon: EdgeDaemon) -> dict[str, Any]:
    window = pads.take_window()
    return {"t_s": round(time.monotonic() - t0, 1), "rss_mb": round(rss_mb(), 1),
            "threads": os_threads(), "fds": open_fds(), "arrivals": daemon.worker.arrivals,
            "outbox_depth": len(daemon.client.outbox), "latency_ms": latency_stats(window)}


def latency_stats(ordered: list[float]) -> dict[str, Any]:
    if not ordered:
        return {"count": 0, "p50": None, "p95": None}
    return {"count": len(ordered), "p50": round(statistics.median(ordered), 1),
            "p95": round(percentile(ordered, 95), 1)}


def watch(daemon: EdgeDaemon, pads: Pads, options: SoakOptions) -> list[dict[str, Any]]:
    t0 = time.monotonic()
    samples = []
    while time.monotonic() - t0 < options.seconds:
        if daemon.stop_event.wait(options.sample_s):
            raise SoakError(f"the daemon stopped during the soak: {daemon.worker.error!r}")
        samples.append(sample(t0, pads, daemon))
    return samples


def run_soak(options: SoakOptions, work: Path) -> dict[str, Any]:
    started = datetime.now(UTC)
    pads = Pads()
    with soak_broker(work, options.pads) as (broker, configs):
        cfg, engine = prepare_branch(options, work, configs["edge-1"])
        start_pads(configs, pads)
        edge = BranchClient(cfg.mqtt, Identity(BRANCH, "edge-1", "edge", package_version()[:32]))
        daemon = EdgeDaemon(cfg, engine, lambda: open_configured(cfg.store, create=False), edge)
        daemon.start()
        try:
            samples = watch(daemon, pads, options)
        finally:
            daemon.stop()
        deadline = time.monotonic() + DRAIN_S
        while pads.least_received() < daemon.worker.arrivals and time.monotonic() < deadline:
            time.sleep(0.1)
        for client in pads.clients:
            client.stop()
    return report(options, broker, started, samples, pads=pads, published=daemon.worker.arrivals)


def growth(samples: list[dict[str, Any]], key: str, warmup_s: float) -> dict[str, int]:
    """Start: the largest of the first three samples after warm-up; end: the smallest of the
    last three.  A steady leak still shows; one connection passing by does not."""
    steady = [s for s in samples if s["t_s"] >= warmup_s] or samples
    start, end = max(s[key] for s in steady[:3]), min(s[key] for s in steady[-3:])
    return {"start": start, "end": end, "growth": end - start}


def memory(samples: list[dict[str, Any]]) -> dict[str, Any]:
    second_half = samples[len(samples) // 2:]
    points = [(s["t_s"], s["rss_mb"]) for s in second_half]
    return {"start_mb": samples[0]["rss_mb"], "end_mb": samples[-1]["rss_mb"],
            "max_mb": max(s["rss_mb"] for s in samples),
            "slope_mb_per_hour": round(slope_per_hour(points), 2), "fit_samples": len(points)}


def report(options: SoakOptions, broker: str, started: datetime, samples: list[dict[str, Any]], *,
           pads: Pads, published: int) -> dict[str, Any]:
    if not samples:
        raise SoakError("no samples: the run was shorter than one sample period")
    result: dict[str, Any] = {
        "soak": {**{k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
                 "broker": broker, "date": started.isoformat(timespec="seconds"),
                 "cpu_count": os.cpu_count()},
        "memory": memory(samples),
        "threads": growth(samples, "threads", options.warmup_s),
        "fds": growth(samples, "fds", options.warmup_s),
        "arrivals": {"published": published, "least_received_by_a_pad": pads.least_received(),
                     "pads": len(pads.clients)},
        "latency_ms": {"overall": latency_stats(sorted(pads.all)),
                       "windows": [{"t_s": s["t_s"], **s["latency_ms"]} for s in samples]},
        "samples": [{k: v for k, v in s.items() if k != "latency_ms"} for s in samples],
        "limits": {"max_slope_mb_per_hour": options.max_slope_mb_h, "thread_growth": 0, "fd_growth": 0},
    }
    result["failures"] = failures(result)
    result["ok"] = not result["failures"]
    return result


def failures(result: dict[str, Any]) -> list[str]:
    found = []
    slope, limit = result["memory"]["slope_mb_per_hour"], result["limits"]["max_slope_mb_per_hour"]
    if slope > limit:
        found.append(f"memory grows {slope} MB/hour (limit {limit})")
    for key in ("threads", "fds"):
        if result[key]["growth"] > 0:
            found.append(f"{key}: {result[key]['start']} at the start, {result[key]['end']} at the end")
    arrivals = result["arrivals"]
    if arrivals["least_received_by_a_pad"] < arrivals["published"]:
        found.append(f"a PAD received {arrivals['least_received_by_a_pad']} of "
                     f"{arrivals['published']} arrivals")
    return found
