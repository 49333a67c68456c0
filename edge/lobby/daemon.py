"""The edge daemon's composition root: the one place that starts and stops every thread.

Threads, all ended by one shared stop event:

* per camera, a grabber (newest frame only) and a watchdog (``edge.lobby.capture``);
* one pipeline worker: takes each camera's newest frame at ``analyse_fps``, runs
  ``LobbyPipeline.process``, turns recognitions into visits (``VisitBook``) and
  arrivals (``edge.lobby.arrivals.build_arrival``), publishes them through the MQTT
  outbox, and reloads the gallery when the store's generation changes (an
  enrolment or an erasure takes effect within ``daemon.gallery_check_s``);
  it also publishes the audit log's head for head office (``audit_head``);
* a status publisher: the retained device status every ``daemon.status_interval_s``;
* paho's network thread and the outbox sender, owned by ``BranchClient``.

The store's SQLite connection lives in the pipeline worker, the only thread that uses it.

Erasure wins every race with the pipeline.  At start, before the outbox sender runs, the
worker records the outbox's path in the store (so ``branch-edge erase`` finds it whatever
its flags) and deletes every waiting arrival whose customer has no active consent or was
erased after the sighting.  Every ``daemon.gallery_check_s`` it looks for new erasures
(``erasures`` table): for each, the customer's visit is forgotten, arrivals parked for a
retry and those still in the outbox are dropped, and a ``retraction`` is published so that
PADs remove what they already show and keep.  An arrival is queued only after a consent
check in the worker itself, which also guards the parked arrivals' retry.
"""

from __future__ import annotations

import dataclasses
import logging
import re
import signal
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from importlib import metadata
from typing import TYPE_CHECKING, Any, Protocol

from edge.config import EdgeConfig
from edge.core.errors import StoreError
from edge.core.gallery import Gallery
from edge.lobby.arrivals import ARRIVAL_TTL, Sighting, build_arrival
from edge.lobby.capture import (
    AnalysisClock,
    Camera,
    Frame,
    MainStream,
    Opener,
    open_cameras,
    open_source,
    recent_frames,
)
from edge.lobby.pipeline import LobbyPipeline, Recognition, VisitBook
from edge.lobby.prometheus import DaemonMetrics, MetricsServer
from edge.lobby.status import RateMeter, device_status
from edge.store.base import parse_time
from edge.store.database import Store
from edge.store.retention import forget_customer, forget_withdrawn, remember_outbox
from edge.vision.engine import FaceEngine
from edge.vision.gallery_index import make_gallery
from mqtt.client import BranchClient
from mqtt.codec import EncodeError
from mqtt.messages import ID_PATTERN, Arrival, AuditHead, DeviceStatus, Message, Retraction, utc_now

if TYPE_CHECKING:
    from edge.crm.portrait import PortraitBuilder


class Service(Protocol):
    """A component with threads of its own that the daemon starts and stops
    (the counter authorization service)."""

    def start(self, stop: threading.Event | None = None) -> None: ...
    def stop(self, timeout: float = 5.0) -> None: ...

log = logging.getLogger(__name__)

HOUSEKEEPING_S = 0.5
# meta key: the last erasure (``erasures.id``) whose retraction is in the outbox.
RETRACTED_THROUGH_KEY = "retracted_through_erasure"
IDLE_WAIT_S = 0.005
JOIN_S = 10.0


def package_version() -> str:
    try:
        return metadata.version("branch-edge")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def load_gallery(store: Store, engine: FaceEngine, cfg: EdgeConfig) -> Gallery:
    ids, embeddings = store.load_templates(engine.pack_id, engine.embedding_size)
    gallery = make_gallery(engine.embedding_size, cfg.gallery.backend)
    if ids:
        gallery.add(ids, embeddings)
    return gallery


class PipelineWorker(threading.Thread):
    """Frames in, arrivals out; owns the store connection, the pipeline and the visit book."""

    def __init__(self, cfg: EdgeConfig, engine: FaceEngine, open_store: Callable[[], Store],
                 client: BranchClient, *, cameras: list[Camera], stop: threading.Event,
                 portraits: PortraitBuilder | None = None, metrics: DaemonMetrics | None = None) -> None:
        super().__init__(name="pipeline", daemon=True)
        self.cfg, self.engine, self.open_store, self.client = cfg, engine, open_store, client
        self.metrics = metrics or DaemonMetrics()
        self.portraits = portraits
        self.cameras, self.stop_event = cameras, stop
        self.ready = threading.Event()
        self.error: BaseException | None = None
        self.fps = RateMeter()
        self.clock = AnalysisClock()
        self.visits = VisitBook(cfg.visits)
        self.last_arrival_at: datetime | None = None
        self.arrivals = 0
        self.withheld = 0  # recognitions of customers whose consent was withdrawn: no arrival
        self.retractions = 0
        self.unqueued: list[Arrival] = []  # decided arrivals the outbox could not take yet
        self.analysed: dict[str, int] = {c.name: 0 for c in cameras}
        self.sources_ended = threading.Event()
        self._ended: set[str] = set()
        self._latest_ts = 0.0
        self._housekept = 0.0
        self._gallery_checked = 0.0
        self._generation = -1
        self._erasure_mark = 0  # erasures up to this id are applied
        self._sent: dict[str, list[tuple[str, datetime]]] = {}  # customer -> (arrival id, expiry)
        self._audit_checked = 0.0
        self._audit_published: tuple[int, str] | None = None
        self.pipeline: LobbyPipeline | None = None
        self.store: Store | None = None

    def run(self) -> None:
        try:
            with self.open_store() as store:
                self.store = store
                self._prepare_outbox(store)
                self._generation = store.gallery_generation()
                gallery = load_gallery(store, self.engine, self.cfg)
                self.pipeline = LobbyPipeline(self.engine, gallery, self.cfg)
                if self.portraits is not None:  # fit the recommender now, not on the first arrival
                    self.portraits.recommender(utc_now().astimezone().date())
                self.ready.set()
                self._loop()
        except Exception as err:  # fatal for the daemon: report it and stop everything
            log.exception("pipeline worker failed")
            self.error = err
            self.ready.set()
            self.stop_event.set()

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            worked = False
            for camera in self.cameras:
                frame = camera.slot.take()
                if frame is None:
                    self._note_end(camera)
                    continue
                worked = True
                if self.clock.due(camera.name, frame.ts, camera.cam.analyse_fps):
                    self._analyse(frame, camera.main)
            self._housekeeping()
            if not worked:
                self.stop_event.wait(IDLE_WAIT_S)

    def _analyse(self, frame: Frame, main: MainStream | None = None) -> None:
        assert self.pipeline is not None
        recognitions = self.pipeline.process(frame.camera, frame.image, frame.ts, main)
        self.fps.tick()
        self.metrics.frame_to_result.observe(time.monotonic() - frame.grabbed_at)
        self.metrics.frames.labels(frame.camera).inc()
        self.analysed[frame.camera] += 1
        self._latest_ts = max(self._latest_ts, frame.ts)
        for recognition in recognitions:
            self._arrive(recognition, frame)

    def _arrive(self, recognition: Recognition, frame: Frame) -> None:
        decision = self.visits.observe(recognition)
        if decision is None:
            return
        assert self.store is not None
        customer = self.store.get_customer(recognition.customer_id)
        if customer is None:
            log.warning("recognised a customer the store no longer has; no arrival")
            return
        if self.store.active_consent(customer.customer_id) is None:  # withdrawn; gallery not yet reloaded
            log.info("recognised a customer whose consent is withdrawn; no arrival")
            self.withheld += 1
            return
        seen_at = utc_now() - timedelta(seconds=time.monotonic() - frame.grabbed_at)
        sighting = Sighting(recognition.camera_id, seen_at, recognition.face_crop)
        visit_id = str(uuid.UUID(decision.visit_id))
        arrival = build_arrival(self.cfg.branch_id, customer, sighting, visit_id, portraits=self.portraits)
        if not self._queue(arrival):
            return
        self._sent.setdefault(customer.customer_id, []).append((arrival.id, arrival.expires_at))
        self.metrics.arrival_publish.observe(time.monotonic() - frame.grabbed_at)
        self.metrics.arrivals.labels(recognition.camera_id).inc()
        self.arrivals += 1
        self.last_arrival_at = utc_now()
        log.info("arrival queued", extra={
            "event_id": arrival.id, "visit_id": visit_id, "camera": recognition.camera_id,
            "score": round(recognition.score, 3), "frames": recognition.frames,
            "frame_to_publish_ms": round((time.monotonic() - frame.grabbed_at) * 1000, 1)})
        log.debug("arrival %s is customer %s", arrival.id, recognition.customer_id)

    def _queue(self, arrival: Arrival) -> bool:
        """Put the arrival in the outbox; when the outbox cannot take it (disk full, file
        locked) keep it here and retry from housekeeping, so the visit's arrival is not lost."""
        try:
            self.client.publish(arrival)
        except sqlite3.OperationalError as err:
            self.unqueued.append(arrival)
            log.error("arrival %s not queued: outbox write failed (%s); %d waiting, will retry",
                      arrival.id, err, len(self.unqueued))
            return False
        return True

    def _retry_unqueued(self) -> None:
        assert self.store is not None
        while self.unqueued:
            arrival = self.unqueued[0]
            if self.store.active_consent(arrival.customer.customer_id) is None:
                self.unqueued.pop(0)  # consent withdrawn while it waited: never sent
                self.withheld += 1
                log.info("parked arrival %s dropped: consent withdrawn", arrival.id)
                continue
            try:
                self.client.publish(arrival)
            except sqlite3.OperationalError:
                return  # still failing; logged when it was parked
            self.unqueued.pop(0)
            self._sent.setdefault(arrival.customer.customer_id, []).append((arrival.id, arrival.expires_at))
            self.arrivals += 1
            self.metrics.arrivals.labels(arrival.camera_id).inc()
            log.info("arrival queued after a retry", extra={"event_id": arrival.id})

    def _note_end(self, camera: Camera) -> None:
        if camera.health.state != "ended" or camera.name in self._ended:
            return
        self._ended.add(camera.name)
        assert self.pipeline is not None
        self.pipeline.end_camera(camera.name)
        log.info("camera %s: source ended", camera.name)
        if len(self._ended) == len(self.cameras):
            self.sources_ended.set()

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if now - self._housekept < HOUSEKEEPING_S:
            return
        self._housekept = now
        assert self.pipeline is not None
        self.visits.touch(self.pipeline.present(), self._latest_ts)
        self.visits.expire(self._latest_ts)
        if now - self._gallery_checked >= self.cfg.daemon.gallery_check_s:
            self._gallery_checked = now
            self._reload_gallery_if_changed()
            self._apply_erasures()
            self._prune_sent()
        self._retry_unqueued()
        if now - self._audit_checked >= self.cfg.daemon.status_interval_s:
            self._audit_checked = now
            self._publish_audit_head()

    def _reload_gallery_if_changed(self) -> None:
        assert self.store is not None
        assert self.pipeline is not None
        generation = self.store.gallery_generation()
        if generation == self._generation:
            return
        gallery = load_gallery(self.store, self.engine, self.cfg)
        self.pipeline.swap_gallery(gallery)
        self._generation = generation
        log.info("gallery reloaded", extra={"templates": len(gallery), "generation": generation})

    # --- erasure, before anything is sent and whenever one is recorded --------------

    def _prepare_outbox(self, store: Store) -> None:
        """Before the sender starts: the store learns where this outbox is, and nothing waiting
        there for a customer who withdrew consent (erased while the daemon was down, by a
        command that did not reach this outbox) is ever sent.  Then the erasures not yet
        retracted are (a PAD may still show those customers' arrivals)."""
        try:
            remember_outbox(store, self.client.config.outbox_path)
        except StoreError as err:  # a busy store must not stop the daemon; erase then finds it by config
            log.warning("could not record the outbox's path in the store: %s", err)
        dropped = forget_withdrawn(self.client.outbox, store)
        if dropped:
            log.info("dropped %d waiting arrivals of customers who withdrew consent", dropped)
        mark = store.meta_value(RETRACTED_THROUGH_KEY)
        self._erasure_mark = int(mark) if mark and mark.isdigit() else 0
        self._apply_erasures(store)

    def _apply_erasures(self, store: Store | None = None) -> None:
        store = store or self.store
        assert store is not None
        for erasure_id, customer_id, erased_at in store.erasures_since(self._erasure_mark):
            if parse_time(erased_at) + ARRIVAL_TTL > utc_now():  # else every arrival has expired
                self._forget(customer_id)
                if not self._retract(customer_id, parse_time(erased_at)):
                    return  # the outbox cannot take it now; tried again at the next check
            self.visits.visits.pop(customer_id, None)
            self.visits.last_arrival.pop(customer_id, None)
            self._erasure_mark = erasure_id
            try:
                store.set_meta_value(RETRACTED_THROUGH_KEY, str(erasure_id))
            except StoreError as err:  # busy: after a restart the retraction is sent again (harmless)
                log.warning("could not record the retracted erasure: %s", err)

    def _prune_sent(self) -> None:
        """Arrivals a retraction would name are remembered only until they expire."""
        now = utc_now()
        live = {cid: [(i, until) for i, until in sent if until > now] for cid, sent in self._sent.items()}
        self._sent = {cid: sent for cid, sent in live.items() if sent}

    def _forget(self, customer_id: str) -> None:
        """Nothing about an erased customer stays: no visit, no parked or waiting arrival."""
        self.visits.visits.pop(customer_id, None)
        self.visits.last_arrival.pop(customer_id, None)
        parked = len(self.unqueued)
        self.unqueued = [a for a in self.unqueued if a.customer.customer_id != customer_id]
        dropped = forget_customer(self.client.outbox, customer_id) + parked - len(self.unqueued)
        if dropped:
            log.info("erasure: %d waiting arrivals dropped", dropped)

    def _retract(self, customer_id: str, erased_at: datetime) -> bool:
        """Publish a retraction of the customer's arrivals; False when the outbox cannot take it."""
        now = utc_now()
        sent = [(i, until) for i, until in self._sent.pop(customer_id, []) if until > now]
        if not re.fullmatch(ID_PATTERN, customer_id):
            return True  # an id no arrival can carry: nothing was sent
        retraction = Retraction(branch_id=self.cfg.branch_id, expires_at=erased_at + ARRIVAL_TTL,
                                customer_id=customer_id, erased_at=erased_at,
                                arrival_ids=[i for i, _ in sent][-100:])
        if not self._publish(retraction):
            return False
        self.retractions += 1
        log.info("retraction queued", extra={"event_id": retraction.id, "arrivals": len(sent)})
        return True

    def _publish(self, message: Message) -> bool:
        try:
            self.client.publish(message)
        except (sqlite3.OperationalError, EncodeError) as err:
            log.error("%s %s not queued: %s", message.SCHEMA, message.id, err)
            return False
        return True

    def _publish_audit_head(self) -> None:
        """The audit log's newest entry, for head office (``audit verify --expect-head``)."""
        assert self.store is not None
        head = self.store.audit_head()
        if head is None or not head.mac or self._audit_published == (head.seq, head.hash):
            return
        message = AuditHead(branch_id=self.cfg.branch_id, device_id=self.client.identity.device_id,
                            seq=head.seq, hash=head.hash, mac=head.mac, key_id=head.key_id,
                            entry_time=parse_time(head.time))
        if self._publish(message):
            self._audit_published = (head.seq, head.hash)


class EdgeDaemon:
    """Cameras -> pipeline -> visits -> arrivals -> MQTT; ``run()`` until SIGTERM/SIGINT."""

    def __init__(self, cfg: EdgeConfig, engine: FaceEngine, open_store: Callable[[], Store],
                 client: BranchClient, *, opener: Opener = open_source,
                 exit_when_sources_end: bool = False, portraits: PortraitBuilder | None = None,
                 services: Sequence[Service] = ()) -> None:
        self.cfg, self.client = cfg, client
        self.services = list(services)
        self.stop_event = threading.Event()
        self.version = package_version()
        self.exit_when_sources_end = exit_when_sources_end
        self.cameras = open_cameras(cfg.cameras, self.stop_event, time.monotonic(), opener)
        lobby = [c for c in self.cameras if c.cam.role == "lobby"]
        self.metrics = DaemonMetrics()
        self.worker = PipelineWorker(cfg, engine, open_store, client, cameras=lobby,
                                     stop=self.stop_event, portraits=portraits, metrics=self.metrics)
        self.metrics.watch(self._pipeline_counts, lambda: len(client.outbox))
        self.metrics.watch_cameras(lambda: [c.snapshot() for c in self.cameras])
        if client.receiver is not None:  # outcomes, authorization requests: rejections by reason
            self.metrics.watch_receiver(client.receiver.stats)
        self.metrics_server: MetricsServer | None = None
        self.status_thread = threading.Thread(target=self._publish_status, name="status", daemon=True)
        self._started = False
        self.final_status: DeviceStatus | None = None

    # --- life cycle -----------------------------------------------------------

    def start(self, ready_timeout: float = 60.0) -> None:
        """Start every thread; raise the worker's error if it cannot start (bad store, key)."""
        self.worker.start()
        self.worker.ready.wait(ready_timeout)
        if self.worker.error is not None:
            self.worker.join(JOIN_S)
            raise self.worker.error
        self._started = True
        self.client.update_status(self.status())
        self.client.start()
        for service in self.services:
            service.start(self.stop_event)
        for camera in self.cameras:
            camera.start()
        self.status_thread.start()
        self._start_metrics()
        log.info("daemon started", extra={"cameras": [c.name for c in self.cameras],
                                          "version": self.version})

    def stop(self) -> None:
        """Set the one stop event and wait for every thread; publish ``stopped``."""
        self.stop_event.set()
        if not self._started:
            return
        self._started = False
        self.worker.join(JOIN_S)
        for camera in self.cameras:
            camera.join(JOIN_S)
        self.status_thread.join(JOIN_S)
        if self.metrics_server is not None:
            self.metrics_server.stop(JOIN_S)
            self.metrics_server = None
        for service in self.services:
            service.stop(JOIN_S)
        self.final_status = dataclasses.replace(self.status(), state="stopped")
        self.client.update_status(self.final_status)
        self.client.stop()
        log.info("daemon stopped", extra={"arrivals": self.worker.arrivals})

    def _start_metrics(self) -> None:
        """A metrics port that cannot be bound is logged, not fatal: recognition goes on."""
        if not self.cfg.metrics.enabled:
            return
        try:
            self.metrics_server = MetricsServer.start(self.cfg.metrics, self.metrics.registry)
        except OSError as err:
            log.error("metrics endpoint not started: %s:%s: %s", self.cfg.metrics.bind,
                      self.cfg.metrics.port, err.strerror or err)

    def _pipeline_counts(self) -> dict[str, int]:
        pipeline = self.worker.pipeline
        return pipeline.stats() if pipeline is not None else {}

    def counter_frames(self, count: int = 3, within_s: float = 1.5) -> Callable[[], list[Any]] | None:
        """The best recent frames of the counter camera, for authorization requests that
        ask for it; None when no camera has ``role = "counter"``."""
        counter = next((c for c in self.cameras if c.cam.role == "counter"), None)
        if counter is None:
            return None
        return lambda: recent_frames(counter.slot, count, within_s)

    def threads(self) -> list[threading.Thread]:
        """Every thread this daemon started (the client's own threads aside)."""
        own = [self.worker, self.status_thread]
        own += [self.metrics_server.thread] if self.metrics_server is not None else []
        return own + [t for camera in self.cameras for t in camera.threads()]

    def run(self, max_seconds: float | None = None) -> int:
        """Run until SIGTERM/SIGINT, or ``max_seconds``, or (if asked) every source has ended."""
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        try:
            self.start()
            deadline = time.monotonic() + max_seconds if max_seconds else None
            while not self.stop_event.wait(0.2):
                if self.exit_when_sources_end and self.sources_done():
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 1 if self.worker.error is not None else 0

    def _on_signal(self, signum: int, frame: Any) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        self.stop_event.set()

    # --- status -----------------------------------------------------------------

    def sources_done(self) -> bool:
        """Every camera's file ended and its last frame was analysed (stop() then drains
        the outbox for a moment; what stays there is sent on the next start)."""
        return self.worker.sources_ended.is_set()

    def status(self) -> DeviceStatus:
        return device_status(self.cfg.branch_id, self.client.identity.device_id, self.version,
                             self.cameras, analysed_fps=self.worker.fps.rate(),
                             last_arrival_at=self.worker.last_arrival_at,
                             outbox_depth=len(self.client.outbox))

    def _publish_status(self) -> None:
        while not self.stop_event.wait(self.cfg.daemon.status_interval_s):
            self.client.update_status(self.status())
