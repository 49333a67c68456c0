"""The demo's lobby leg: a synthetic lobby video of the demo branch goes through the
real daemon (capture -> pipeline -> visits -> arrivals -> outbox) and a broker to
an RM subscriber that prints each arrival as it receives it: who, tier, RM, latency.

With no ``[mqtt] host`` configured, the embedded loopback broker is started.
``edge/tools/demo/branch.py`` calls :func:`run_lobby_demo` after enrolling the demo branch.
"""

from __future__ import annotations

import csv
import queue
import shutil
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.config import CameraConfig, EdgeConfig
from edge.core.files import open_private
from edge.crm.portrait import PortraitBuilder
from edge.lobby.daemon import EdgeDaemon
from edge.store.database import Store
from edge.tools.demo.bus import demo_broker
from edge.tools.demo.pad import PadProcess
from edge.tools.synth import SynthSpec, generate_lobby
from edge.vision.engine import FaceEngine
from mqtt.client import BranchClient, Identity
from mqtt.config import MqttConfig
from mqtt.dedup import SeenIds
from mqtt.messages import Arrival, utc_now
from mqtt.receiver import Receiver
from mqtt.topics import BranchTopics

CONNECT_TIMEOUT_S = 10.0
DRAIN_S = 10.0


@dataclass(frozen=True)
class Received:
    arrival: Arrival
    latency_ms: float  # from the frame the decision was made on, to the subscriber
    received_at: datetime


def visitors_csv(customers_csv: Path, out: Path, visitors: int) -> Path:
    """The first ``visitors`` customers of the demo CSV: they walk through the lobby."""
    with customers_csv.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    chosen = list(dict.fromkeys(r["customer_id"] for r in rows))[:visitors]
    with open_private(out, newline="") as handle:  # customer names: owner only
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(r for r in rows if r["customer_id"] in chosen)
    return out


def connect(cfg: MqttConfig, identity: Identity, state: Path,
            receiver: Receiver | None = None, subscriptions: tuple[str, ...] = ()) -> BranchClient:
    device_cfg = cfg.model_copy(update={
        "device_id": identity.device_id, "client_id": f"{identity.device_id}-{identity.branch_id}",
        "outbox_path": state / f"{identity.device_id}-outbox.db",
        "seen_ids_path": state / f"{identity.device_id}-seen.db"})
    return BranchClient(device_cfg, identity, receiver=receiver, subscriptions=subscriptions)


class ConsolePad:
    """An RM PAD on the console: prints each arrival the moment it is received."""

    def __init__(self, client: BranchClient, receiver: Receiver, show: Callable[[str], None]) -> None:
        self.client, self.receiver, self.show = client, receiver, show
        self.received: list[Received] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="demo-pad", daemon=True)

    def start(self) -> None:
        self.client.start()
        if not self.client.wait_connected(CONNECT_TIMEOUT_S):
            raise ConnectionError("the demo PAD cannot connect to the broker")
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                message = self.receiver.queue.get(timeout=0.1).message
            except queue.Empty:
                continue
            if isinstance(message, Arrival):
                now = utc_now()
                latency = (now - message.seen_at).total_seconds() * 1000
                self.received.append(Received(message, latency, now))
                self.show(format_arrival(message, latency))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.client.stop()


def format_arrival(arrival: Arrival, latency_ms: float) -> str:
    card = arrival.customer
    lines = [f"  PAD <- arrival  {arrival.seen_at:%H:%M:%S}  {card.display_name or card.customer_id:<8} "
             f"tier {card.tier or '-':<6} RM {arrival.assigned_rm or '-':<6} camera {arrival.camera_id}  "
             f"latency {latency_ms:6.0f} ms"]
    p = arrival.portrait
    if p.aum_band:
        lines.append(f"      {p.segment} · AUM {p.aum_band} · risk {p.risk_level} ({p.risk_assessment})")
    lines += [f"      推荐 {r.name}: {r.reason}" for r in arrival.recommendations[:2]]
    lines += [f"      话术 {t}" for t in arrival.talking_points[:1]]
    return "\n".join(lines)


def lobby_config(cfg: EdgeConfig, video: Path, pace: str) -> EdgeConfig:
    camera = CameraConfig(name="lobby-1", source=str(video), pace=pace, analyse_fps=10.0)
    return cfg.model_copy(update={"cameras": (camera,)})


def run_lobby_demo(out: Path, faces_dir: Path, cfg: EdgeConfig, engine: FaceEngine, *,
                   customers_csv: Path, open_store: Callable[[], Store], visitors: int = 5,
                   strangers: int = 3, seconds: float = 24.0, pace: str = "native",
                   background_video: Path | None = None,
                   show: Callable[[str], None] = print, portraits: PortraitBuilder | None = None,
                   pad_cards: Path | None = None) -> dict[str, Any]:
    """Synthesise the lobby, run the daemon over it, print arrivals as a PAD gets them.

    With ``pad_cards`` the real PAD app (offscreen without a display) also runs and
    saves a screenshot of the customer card of every arrival there."""
    out.mkdir(parents=True, exist_ok=True)
    walkers = visitors_csv(customers_csv, out / "lobby-visitors.csv", visitors)
    truth = generate_lobby(faces_dir, out / "lobby.mp4", out / "lobby-truth.json", customers_csv=walkers,
                           strangers=strangers, spec=SynthSpec(seconds=seconds, fps=10.0),
                           background_video=background_video)
    people = truth["people"]
    assert isinstance(people, list)
    expected = sorted(p["customer_id"] for p in people if p["enrolled"])
    show(f"\nLobby: {len(expected)} customers and {len(people) - len(expected)} strangers walk in "
         f"({seconds:g} s synthetic video, {pace} pace); the daemon publishes, a PAD receives:")
    state = out / "mqtt-lobby"
    shutil.rmtree(state, ignore_errors=True)  # a previous run's outboxes and PAD journal
    state.mkdir()
    started = time.monotonic()
    with demo_broker(cfg.mqtt) as bus:
        receiver = Receiver(SeenIds(state / "pad-seen.db"))
        pad = ConsolePad(connect(bus, Identity(cfg.branch_id, "pad-rm-lobby", "rm"), state, receiver,
                                 (BranchTopics(cfg.branch_id).arrivals,)), receiver, show)
        pad.start()
        app = (start_pad_app(bus, cfg.branch_id, state, pad_cards, len(expected), show=show)
               if pad_cards else None)
        edge = connect(bus, Identity(cfg.branch_id, "edge", "edge"), state)
        daemon = EdgeDaemon(lobby_config(cfg, out / "lobby.mp4", pace), engine, open_store, edge,
                            exit_when_sources_end=True, portraits=portraits)
        daemon.run()
        deadline = time.monotonic() + DRAIN_S
        while len(pad.received) < daemon.worker.arrivals and time.monotonic() < deadline:
            time.sleep(0.05)
        pad.stop()
        if app is not None and app.interactive:
            show("\nThe PAD window stays open (the broker with it): close it, or press Ctrl-C, to end "
                 "the demo.")
            app.wait_closed()
        cards = app.finish() if app is not None else []
    summary = summarise(pad.received, expected, time.monotonic() - started, show)
    if pace == "native":
        summary["time_to_notify_ms"] = time_to_notify(
            pad.received, people, daemon.cameras[0].health.first_frame_wall)
    summary["pad_card_screenshots"] = [str(c) for c in cards]
    if cards:
        show(f"PAD app saved {len(cards)} customer-card screenshots in {pad_cards}/")
    return summary


def start_pad_app(bus: MqttConfig, branch_id: str, state: Path, cards: Path, count: int, *,
                  show: Callable[[str], None] = print) -> PadProcess | None:
    """The real PAD app beside the console PAD; None if it cannot start, after saying why
    (its exit status and its own last log lines: a missing Qt platform library, say)."""
    app = PadProcess.start(bus, branch_id, state / "pad-app", cards, count=count)
    if app.wait_connected(CONNECT_TIMEOUT_S * 3):
        return app
    reason = app.failure()
    app.finish(1)
    show(f"{reason}\nThe demo goes on with the console PAD only. A window on a display needs Qt's "
         f"system libraries: docs/operations/pad-display.md.")
    return None


def time_to_notify(received: list[Received], people: list[dict[str, Any]],
                   video_start: datetime | None) -> dict[str, Any]:
    """From the first frame where a customer's face is at least the minimum size
    (ground truth ``min_size_s``) to the moment the PAD received the arrival."""
    sized = {p["customer_id"]: p["min_size_s"] for p in people
             if p["enrolled"] and p.get("min_size_s") is not None}
    if video_start is None:
        return {"count": 0}
    waits = sorted(
        ((r.received_at - video_start).total_seconds() - sized[r.arrival.customer.customer_id]) * 1000
        for r in received if r.arrival.customer.customer_id in sized)
    if not waits:
        return {"count": 0}
    return {"count": len(waits), "p50": round(statistics.median(waits), 1),
            "p95": round(percentile(waits, 95), 1), "max": round(waits[-1], 1)}


def percentile(ordered: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def summarise(received: list[Received], expected: list[str], seconds: float,
              show: Callable[[str], None]) -> dict[str, Any]:
    got = [r.arrival.customer.customer_id for r in received]
    latencies = sorted(r.latency_ms for r in received)
    summary = {
        "customers_in_video": len(expected),
        "arrivals_received": len(got),
        "customers_recognised": len(set(got) & set(expected)),
        "false_arrivals": sum(1 for c in got if c not in expected),
        "repeated_arrivals": len(got) - len(set(got)),
        "latency_ms_p50": round(statistics.median(latencies), 1) if latencies else None,
        "latency_ms_max": round(latencies[-1], 1) if latencies else None,
        "seconds": round(seconds, 1),
    }
    show(f"Lobby: {summary['customers_recognised']}/{len(expected)} customers announced, "
         f"{summary['false_arrivals']} false, {summary['repeated_arrivals']} repeated; "
         f"latency p50 {summary['latency_ms_p50']} ms")
    return summary
