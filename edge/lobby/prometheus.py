"""The daemon's Prometheus metrics and the HTTP endpoint that serves them.

Counters the pipeline already keeps (frames, faces, embeddings, decisions) are read
at scrape time, so the hot path only observes the two latency histograms and
counts arrivals.  Each daemon has its own registry: several daemons in one
process (tests, the soak run) do not share or clash over metrics.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from edge.config import MetricsConfig

log = logging.getLogger(__name__)

PREFIX = "branch_edge"
# Seconds; the target is an arrival on the PAD within 0.5 s of the face being big enough.
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 5.0, 10.0)
# LobbyPipeline.counts keys exported as counters: key -> (metric name, help).
PIPELINE_COUNTERS = {
    "frames": ("pipeline_frames", "frames analysed by the lobby pipeline"),
    "faces": ("faces_detected", "faces detected in analysed frames"),
    "embeds": ("faces_embedded", "face crops embedded (recognition attempts)"),
    "main_crops": ("main_stream_crops", "small faces cropped from a camera's main stream"),
}


class PipelineCollector(Collector):
    """Reads the pipeline's own counts and the outbox depth when Prometheus scrapes."""

    def __init__(self, pipeline_counts: Callable[[], dict[str, int]],
                 outbox_depth: Callable[[], int]) -> None:
        self.pipeline_counts, self.outbox_depth = pipeline_counts, outbox_depth

    def collect(self) -> Iterator[Metric]:
        counts = self.pipeline_counts()
        for key, (name, text) in PIPELINE_COUNTERS.items():
            yield CounterMetricFamily(f"{PREFIX}_{name}", text, value=counts.get(key, 0))
        decisions = CounterMetricFamily(f"{PREFIX}_decisions", "track decisions", labels=["outcome"])
        decisions.add_metric(["customer"], counts.get("decisions", 0))
        decisions.add_metric(["unknown"], counts.get("unknown", 0))
        yield decisions
        yield GaugeMetricFamily(f"{PREFIX}_outbox_depth", "messages waiting in the MQTT outbox",
                                value=self.outbox_depth())


CAMERA_ERRORS = ("auth", "credentials", "unreachable", "not_found", "open", "read", "undecodable", "stale",
                 "crash")


class CameraCollector(Collector):
    """The cameras' health when Prometheus scrapes: labels are camera names and fixed
    words only (never a URL: it may carry a password)."""

    def __init__(self, snapshots: Callable[[], list[dict[str, Any]]]) -> None:
        self.snapshots = snapshots

    def collect(self) -> Iterator[Metric]:
        snaps = self.snapshots()
        up = GaugeMetricFamily(f"{PREFIX}_camera_up", "1 while the camera delivers frames", labels=["camera"])
        reconnects = CounterMetricFamily(f"{PREFIX}_camera_reconnects", "stream restarts (paced by back-off)",
                                         labels=["camera"])
        decoded = CounterMetricFamily(f"{PREFIX}_camera_frames_decoded", "frames decoded",
                                      labels=["camera", "stream"])
        errors = CounterMetricFamily(f"{PREFIX}_camera_errors", "why the stream went down",
                                     labels=["camera", "reason"])
        age = GaugeMetricFamily(f"{PREFIX}_camera_last_frame_age_seconds", "since the newest frame",
                                labels=["camera"])
        info = GaugeMetricFamily(f"{PREFIX}_camera_stream_info", "codec and resolution of each stream",
                                 labels=["camera", "stream", "codec", "width", "height"])
        main_opens = CounterMetricFamily(f"{PREFIX}_camera_main_stream_opens",
                                         "main stream opened for small faces", labels=["camera"])
        main_fetches = CounterMetricFamily(f"{PREFIX}_camera_main_stream_fetches",
                                           "main-stream frames used for small faces' crops",
                                           labels=["camera"])
        for snap in snaps:
            name = snap["name"]
            up.add_metric([name], 1.0 if snap["state"] == "up" else 0.0)
            reconnects.add_metric([name], snap.get("reconnects", 0))
            if snap.get("last_frame_age_s") is not None:
                age.add_metric([name], snap["last_frame_age_s"])
            for reason in CAMERA_ERRORS:
                errors.add_metric([name, reason], snap.get("errors", {}).get(reason, 0))
            streams = [("sub" if "main" in snap else "main", snap)]
            if "main" in snap:
                streams.append(("main", snap["main"]))
                main_opens.add_metric([name], snap["main"]["opens"])
                main_fetches.add_metric([name], snap["main"]["fetches"])
            for stream, health in streams:
                decoded.add_metric([name, stream], health["frames"])
                if health.get("width"):
                    codec = "".join(c for c in str(health.get("codec", "")) if c.isalnum())[:8]
                    info.add_metric([name, stream, codec, str(health["width"]), str(health["height"])], 1.0)
        yield from (up, reconnects, decoded, errors, age, info, main_opens, main_fetches)


class ReceiverCollector(Collector):
    """What became of the messages the edge received over MQTT (``mqtt.receiver.Receiver.stats``):
    handled, duplicate, expired, dropped over a device's rate, and rejected by reason."""

    OUTCOMES = ("accepted", "duplicates", "expired", "rate_limited")

    def __init__(self, stats: Callable[[], dict[str, int]]) -> None:
        self.stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self.stats()
        received = CounterMetricFamily(f"{PREFIX}_mqtt_received", "MQTT messages received, by what became "
                                       "of them", labels=["outcome"])
        for key in self.OUTCOMES:
            received.add_metric([key], stats.get(key, 0))
        yield received
        rejected = CounterMetricFamily(f"{PREFIX}_mqtt_rejected", "MQTT messages rejected (acknowledged "
                                       "and dropped), by reason", labels=["reason"])
        for key, value in sorted(stats.items()):
            if key.startswith("rejected."):
                rejected.add_metric([key.removeprefix("rejected.")], value)
        yield rejected


class DaemonMetrics:
    """The metrics one daemon updates; ``registry`` is what the endpoint serves."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)  # RSS, CPU, open fds: what the soak watches
        self.frames = Counter(f"{PREFIX}_frames_analysed", "frames analysed, per camera", ["camera"],
                              registry=self.registry)
        self.arrivals = Counter(f"{PREFIX}_arrivals", "arrivals queued for the PADs", ["camera"],
                                registry=self.registry)
        self.frame_to_result = Histogram(
            f"{PREFIX}_frame_to_result_seconds", "frame grabbed -> pipeline result",
            buckets=LATENCY_BUCKETS, registry=self.registry)
        self.arrival_publish = Histogram(
            f"{PREFIX}_arrival_publish_seconds", "frame grabbed -> arrival stored in the outbox",
            buckets=LATENCY_BUCKETS, registry=self.registry)

    def watch(self, pipeline_counts: Callable[[], dict[str, int]], outbox_depth: Callable[[], int]) -> None:
        self.registry.register(PipelineCollector(pipeline_counts, outbox_depth))

    def watch_cameras(self, snapshots: Callable[[], list[dict[str, Any]]]) -> None:
        self.registry.register(CameraCollector(snapshots))

    def watch_receiver(self, stats: Callable[[], dict[str, int]]) -> None:
        self.registry.register(ReceiverCollector(stats))


class MetricsServer:
    """``/metrics`` over HTTP on its own thread; ``stop()`` closes the socket and joins it."""

    def __init__(self, server: WSGIServer, thread: threading.Thread) -> None:
        self.server, self.thread = server, thread

    @classmethod
    def start(cls, cfg: MetricsConfig, registry: CollectorRegistry) -> MetricsServer:
        """Raises OSError when the port is taken or the address is not local."""
        server, thread = start_http_server(cfg.port, addr=cfg.bind, registry=registry)
        thread.name = "metrics-http"
        log.info("metrics endpoint listening", extra={"bind": cfg.bind, "port": server.server_port})
        return cls(server, thread)

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def stop(self, timeout: float = 5.0) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout)
