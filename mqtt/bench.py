"""MQTT benchmark: 1 edge publisher, N subscribing RM PADs, TLS on loopback, real Mosquitto.

Latency is measured from the moment the application calls ``publish`` (so it
includes the durable outbox write) to the moment a PAD's receiver hands the
checked, de-duplicated message to the application.
"""

from __future__ import annotations

import base64
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mqtt import codec
from mqtt.client import BranchClient, Identity, Role
from mqtt.config import MqttConfig
from mqtt.dedup import SeenIds
from mqtt.messages import Arrival, CustomerCard, Holding, Portrait, Recommendation
from mqtt.provision import Device, provision
from mqtt.provision.run import BrokerOptions, ProvisionResult, current_user
from mqtt.receiver import Delivery, Receiver
from mqtt.topics import BranchTopics

BRANCH = "bench"


@dataclass(frozen=True)
class BenchOptions:
    pads: int = 20
    rate: float = 50.0
    seconds: float = 10.0
    thumbnail_bytes: int = 15_000
    mosquitto: str = "mosquitto"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bench_arrival(seq: int, thumbnail: str) -> Arrival:
    now = datetime.now(UTC)
    return Arrival(
        branch_id=BRANCH,
        expires_at=now + timedelta(minutes=10),
        visit_id=str(uuid.uuid4()),
        camera_id="lobby-1",
        seen_at=now,
        customer=CustomerCard(
            customer_id=f"c-{seq}", display_name="Customer", tier="private",
            masked_id_number="1101**********1234", masked_account="****5678",
        ),
        assigned_rm="rm-01",
        thumbnail_jpeg_b64=thumbnail,
        portrait=Portrait(
            segment="affluent", aum_band="1M-5M", risk_level="R3",
            holdings=[Holding(category="time deposit", amount_band="500k-1M")] * 4,
            preferences=["prefers mandarin", "morning visits"],
        ),
        recommendations=[Recommendation(product_id="td-3y", name="3-year deposit", reason="maturing")] * 3,
        talking_points=["deposit matures next week", "birthday this month"],
    )


class _Latencies:
    def __init__(self) -> None:
        self.sent: dict[str, float] = {}
        self.samples: list[float] = []
        self.lock = threading.Lock()

    def handler(self, delivery: Delivery) -> None:
        now = time.perf_counter()
        with self.lock:
            self.samples.append(now - self.sent[delivery.message.id])


def _client(prov: ProvisionResult, device: str, role: Role, state: Path, port: int,
            **kw: Any) -> BranchClient:
    folder = prov.device_dir(device)
    cfg = MqttConfig(
        host="127.0.0.1", port=port, device_id=device, ca_file=folder / "ca.crt",
        cert_file=folder / "client.crt", key_file=folder / "client.key",
        password_file=folder / "password", outbox_path=state / f"{device}-outbox.db",
    )
    receiver = Receiver(SeenIds(":memory:"), handler=kw.get("handler"))
    subs = kw.get("subscriptions", ())
    return BranchClient(cfg, Identity(BRANCH, device, role), receiver=receiver, subscriptions=subs)


def run_bench(options: BenchOptions) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="mqtt-bench-") as tmp:
        return _run(Path(tmp), options)


def _run(tmp: Path, options: BenchOptions) -> dict[str, Any]:
    port = _free_port()
    pads = [Device(f"rm-{i:02d}", "rm") for i in range(1, options.pads + 1)]
    prov = provision(BRANCH, [Device("edge-1", "edge"), *pads], tmp / "pki",
                     BrokerOptions(port=port, bind="127.0.0.1", broker_user=current_user()))
    with (tmp / "mosquitto.log").open("wb") as log:
        broker = subprocess.Popen([options.mosquitto, "-c", str(prov.broker_conf)], stdout=log, stderr=log)
    lat = _Latencies()
    clients: list[BranchClient] = []
    try:
        arrivals = BranchTopics(BRANCH).arrivals
        for pad in pads:
            clients.append(
                _client(prov, pad.id, "rm", tmp, port, handler=lat.handler, subscriptions=(arrivals,))
            )
        edge = _client(prov, "edge-1", "edge", tmp, port)
        clients.append(edge)
        for client in clients:
            client.start()
        if not all(c.wait_connected(15) for c in clients):
            raise RuntimeError("bench clients could not connect to mosquitto")
        time.sleep(0.5)  # let every subscription settle before the clock starts
        return _publish_and_measure(edge, lat, options)
    finally:
        for client in clients:
            client.stop(drain_s=0.5)
        broker.terminate()
        broker.wait(10)


def _publish_and_measure(edge: BranchClient, lat: _Latencies, options: BenchOptions) -> dict[str, Any]:
    thumbnail = base64.b64encode(os.urandom(options.thumbnail_bytes)).decode()
    count = int(options.rate * options.seconds)
    period = 1.0 / options.rate
    start = time.perf_counter()
    payload_bytes = 0
    for seq in range(count):
        message = bench_arrival(seq, thumbnail)
        lat.sent[message.id] = time.perf_counter()
        edge.publish(message)
        if seq == 0:
            payload_bytes = len(codec.encode(message))
        delay = start + (seq + 1) * period - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    expected = count * options.pads
    deadline = time.monotonic() + 30
    while len(lat.samples) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    sizes = {"count": count, "expected": expected, "payload_bytes": payload_bytes}
    return _summary(lat.samples, sizes, elapsed, options)


def _summary(
    samples: list[float], sizes: dict[str, int], elapsed: float, options: BenchOptions
) -> dict[str, Any]:
    ms = sorted(s * 1000 for s in samples)
    count, expected, payload_bytes = sizes["count"], sizes["expected"], sizes["payload_bytes"]
    # "inclusive" stays within the observed range; the default extrapolates past the max.
    q = statistics.quantiles(ms, n=100, method="inclusive") if len(ms) >= 2 else [float("nan")] * 99
    return {
        "transport": "mosquitto, TLS 1.2+, client certificates, loopback",
        "pads": options.pads,
        "rate_per_s": options.rate,
        "arrivals_published": count,
        "arrival_payload_bytes": payload_bytes,
        "deliveries_expected": expected,
        "deliveries_received": len(ms),
        "lost": expected - len(ms),
        "latency_ms": {"p50": round(q[49], 2), "p95": round(q[94], 2), "p99": round(q[98], 2),
                       "max": round(ms[-1], 2) if ms else None},
        "throughput_deliveries_per_s": round(len(ms) / elapsed, 1),
        "elapsed_s": round(elapsed, 2),
    }
