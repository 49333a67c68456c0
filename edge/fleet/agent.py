"""The fleet agent: a service of the edge daemon that answers head office.

It takes the deliveries the daemon's receiver routes to it (``erasure`` and
``gallery_chunk`` messages from head office, over the bridge), on its own thread with its own
store connection:

- an erasure is applied (:func:`edge.fleet.erasure.apply_erasure`) and acknowledged;
- gallery chunks are kept until the package is whole (:class:`edge.fleet.chunks.Assembler`),
  then the package is imported (:func:`edge.fleet.importer.import_package`) and the result
  acknowledged: applied, refused (why), or, when the last chunk came and pieces are missing,
  which ones (head office sends those again);
- after every change, and at start, the branch's fleet state (retained) says which model
  pack and gallery version it runs and the last erasure it applied;
- every ``[fleet] counts_interval_s``, today's and yesterday's arrival counts and the
  purchase links not sent yet (:mod:`edge.fleet.reports`), for head office's data platform.

Whatever one message raises is counted and logged once; the agent goes on with the next.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Literal

from edge.commands.erase import outboxes_of
from edge.config import EdgeConfig
from edge.crm.records import CrmStore
from edge.fleet.chunks import Assembler, ChunkError
from edge.fleet.erasure import apply_erasure, last_erasure
from edge.fleet.importer import RefusalError, applied_version_of, gallery_version, import_package
from edge.fleet.keys import FleetKeys
from edge.fleet.reports import CURSOR_KEY, daily_counts, purchase_links
from edge.store.database import Store
from edge.store.retention import known_outboxes
from mqtt.client import BranchClient
from mqtt.messages import Erasure, FleetState, GalleryAck, GalleryChunk, Message
from mqtt.package import EmbeddingContract
from mqtt.receiver import Delivery
from mqtt.topics import BranchTopics

log = logging.getLogger(__name__)

AckState = Literal["applied", "incomplete", "refused"]


class FleetAgent:
    def __init__(self, cfg: EdgeConfig, open_store: Callable[[], Store], client: BranchClient, *,
                 contract: EmbeddingContract, keys: FleetKeys, inbox: queue.Queue[Delivery]) -> None:
        self.cfg, self.open_store, self.client = cfg, open_store, client
        self.contract, self.keys, self.inbox = contract, keys, inbox
        self.assembler = Assembler(cfg.fleet.state_dir)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # --- life cycle (edge.lobby.daemon.Service) ---------------------------------------------

    def start(self, stop: threading.Event | None = None) -> None:
        if stop is not None:
            self._stop = stop
        self._thread = threading.Thread(target=self._run, name="fleet", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        try:
            with self.open_store() as store:
                self._publish_state(store)
                reported = float("-inf")
                while not self._stop.is_set():
                    if time.monotonic() - reported >= self.cfg.fleet.counts_interval_s:
                        reported = time.monotonic()
                        self.report(store)
                    try:
                        delivery = self.inbox.get(timeout=0.2)
                    except queue.Empty:
                        continue
                    self.handle(store, delivery)
        except Exception:  # the store cannot be opened: the daemon goes on without the agent
            log.exception("fleet agent stopped")

    # --- counts and purchase links for head office's data platform ------------------------

    def report(self, store: Store, today: date | None = None) -> None:
        """Today's and yesterday's counts, and the purchase links not sent yet.  Never raises
        (a CRM that cannot be read now is read at the next interval)."""
        today = today or datetime.now().astimezone().date()
        try:
            with CrmStore.open(self.cfg.crm.path or self.cfg.store.path) as crm:
                for day in (today - timedelta(days=1), today):
                    self._publish(daily_counts(crm, self.cfg.branch_id, day))
                self._send_purchase_links(store, crm)
        except Exception as err:  # a locked or missing CRM costs this round only
            self._count("report_errors")
            log.warning("fleet: counts not reported this time: %s", type(err).__name__)

    def _send_purchase_links(self, store: Store, crm: CrmStore) -> None:
        mark = store.meta_value(CURSOR_KEY)
        through = int(mark) if mark and mark.isdigit() else 0
        while batch := purchase_links(crm, self.cfg.branch_id, through):
            for rowid, link in batch:
                if link is not None:
                    self._publish(link)
                    self._count("purchase_links")
                else:
                    self._count("purchase_links_unsendable")
                through = rowid
            store.set_meta_value(CURSOR_KEY, str(through))  # after the outbox holds them

    # --- one message ------------------------------------------------------------------------

    def handle(self, store: Store, delivery: Delivery) -> None:
        """Apply one delivery; never raises."""
        message = delivery.message
        try:
            if isinstance(message, Erasure):
                self._publish(apply_erasure(store, message, lambda: self._outboxes(store)))
                self._count("erasures")
                self._publish_state(store)
            elif isinstance(message, GalleryChunk):
                self._on_chunk(store, message)
            else:
                self._count("rejected.unexpected")
        except Exception as err:  # one message must cost one message, not the agent
            self._count("rejected.internal_error")
            log.error("fleet: %s %s failed (%s); dropped", message.SCHEMA, message.id, type(err).__name__)

    def _on_chunk(self, store: Store, chunk: GalleryChunk) -> None:
        sha = chunk.package_sha256
        applied = applied_version_of(store, sha)
        if applied is not None:
            self._ack(store, chunk, "applied")
            return
        if chunk.package_version <= gallery_version(store):
            self._ack(store, chunk, "refused", "replay", f"package version {chunk.package_version} is not "
                      f"newer than version {gallery_version(store)} applied here (no rollback, no replay)")
            return
        try:
            whole = self.assembler.add(chunk)
        except ChunkError as err:
            self._count(f"rejected.{err.reason}")
            log.warning("fleet: gallery chunk dropped: %s", err)
            return
        self._count("chunks")
        if whole is None:
            if chunk.index == chunk.chunk_count - 1:
                self._ack(store, chunk, "incomplete", missing=self.assembler.missing(sha)[:1000])
            return
        try:
            result = import_package(whole, store, branch_id=self.cfg.branch_id, contract=self.contract,
                                    keys=self.keys, outboxes=lambda: self._outboxes(store))
        except RefusalError as err:
            self._count(f"refused.{err.reason}")
            log.warning("fleet: gallery package refused: %s", err)
            self._ack(store, chunk, "refused", err.reason, str(err))
        else:
            self._count("packages")
            log.info("fleet: gallery package applied", extra={
                "version": result.version, "templates": result.templates_added,
                "skipped": len(result.skipped)})
            self._ack(store, chunk, "applied")
            self._publish_state(store)
        finally:
            self.assembler.discard(sha)

    def _ack(self, store: Store, chunk: GalleryChunk, state: AckState, reason: str = "", error: str = "", *,
             missing: list[int] | None = None) -> None:
        self._publish(GalleryAck(branch_id=self.cfg.branch_id, package_sha256=chunk.package_sha256,
                                 package_version=chunk.package_version, state=state,
                                 gallery_version=gallery_version(store), missing=missing or [],
                                 reason=reason[:64], error=error[:300]))

    def _publish_state(self, store: Store) -> None:
        last = last_erasure(store)
        ids, _ = store.load_templates(self.contract.model_pack)
        self._publish(FleetState(branch_id=self.cfg.branch_id, model_pack=self.contract.model_pack[:64],
                                 recognizer_sha256=self.contract.recognizer_sha256,
                                 gallery_version=gallery_version(store), templates=len(ids),
                                 last_erasure_id=last[0] if last else None,
                                 last_erasure_at=last[1] if last else None))

    def _publish(self, message: Message) -> None:
        self.client.publish(message)

    def _outboxes(self, store: Store) -> list[Path]:
        return outboxes_of(self.cfg, known_outboxes(store))

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def stats(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)


def fleet_subscriptions(branch_id: str) -> tuple[str, ...]:
    topics = BranchTopics(branch_id)
    return topics.fleet("erasures"), topics.fleet("gallery")
