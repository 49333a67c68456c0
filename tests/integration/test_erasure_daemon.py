"""Erasure against the running daemon: real models, a real Mosquitto, the real CLI, and a
lobby camera the test directs (``tests/lobby_stage.py``).

Each race is staged, not timed: the test erases exactly where the race window is (inside
the daemon's own worker, between a track's acceptance and its arrival), or while the
daemon is down with arrivals waiting in its outbox, and then waits on what the daemon did
(frames analysed, arrivals withheld, retractions queued).
"""

from __future__ import annotations

import contextlib
import io
import json
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge import cli
from edge.config import EdgeConfig
from edge.lobby.daemon import EdgeDaemon
from edge.store.database import open_configured
from mqtt.codec import decode
from mqtt.messages import Arrival, Message, Retraction
from mqtt.outbox import Outbox
from mqtt.topics import BranchTopics
from tests.daemon_fixtures import edge_client, edge_config, store_opener
from tests.lobby_stage import PEOPLE, Stage, enrol_people, stage_camera, walk_in_photo
from tests.mqtt_fixtures import MosquittoBroker, make_client, wait_until

REEVE, CLARK = "C-REEVE", "C-CLARK"
assert {REEVE, CLARK} == set(PEOPLE)
TIMEOUT = 120  # generous: a loaded CI machine analyses slowly; every wait ends on a condition


@pytest.fixture(autouse=True)
def _only_our_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMANDS", ("erase", "audit"))


@pytest.fixture
def branch(tmp_path: Path, provisioned_branch, engine, data_dir: Path) -> EdgeConfig:
    """Two enrolled customers; short visits and no cooldown, so a returning customer arrives again."""
    cfg = edge_config(tmp_path, provisioned_branch, [stage_camera()],
                      visits={"absence_s": 2.0, "cooldown_s": 0.0})
    enrol_people(cfg, engine, data_dir, tmp_path / "enrol")
    return cfg


@pytest.fixture
def stage() -> Stage:
    return Stage()


@pytest.fixture
def daemons(engine) -> Iterator[Any]:
    """Start daemons on the stage; every one is stopped at the end of the test."""
    started: list[EdgeDaemon] = []

    def start(cfg: EdgeConfig, stage: Stage, before_start: Any = None) -> EdgeDaemon:
        daemon = EdgeDaemon(cfg, engine, store_opener(cfg), edge_client(cfg), opener=stage.opener)
        if before_start is not None:
            before_start(daemon)
        daemon.start()
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()


@dataclass
class Lobby:
    """One branch's lobby: its config, the stage, the photos and the provisioned devices."""

    cfg: EdgeConfig
    stage: Stage
    start: Any  # (cfg, stage) -> a started EdgeDaemon, stopped at teardown
    data_dir: Path
    prov: Any
    tmp_path: Path


@pytest.fixture
def lobby(branch: EdgeConfig, daemons, data_dir: Path, provisioned_branch, tmp_path: Path) -> Lobby:
    return Lobby(branch, Stage(), daemons, data_dir, provisioned_branch, tmp_path)


class Pad:
    """An RM tablet's receiving side: arrivals and retractions, as they come."""

    def __init__(self, prov, tmp_path: Path, device: str = "rm-1") -> None:
        topics = BranchTopics(prov.branch_id)
        self.client = make_client(prov, device, tmp_path / device,
                                  subscriptions=(topics.arrivals, topics.retractions))
        self.client.start()
        assert self.client.wait_connected(10)
        self.messages: list[Message] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        assert self.client.receiver is not None
        while not self._stop.is_set():
            with contextlib.suppress(queue.Empty):
                self.messages.append(self.client.receiver.queue.get(timeout=0.1).message)

    def arrivals_of(self, cid: str) -> list[Arrival]:
        return [m for m in self.messages if isinstance(m, Arrival) and m.customer.customer_id == cid]

    def retractions_of(self, cid: str) -> list[Retraction]:
        return [m for m in self.messages if isinstance(m, Retraction) and m.customer_id == cid]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.client.stop()


def waiting(outbox_path: Path) -> list[Message]:
    outbox = Outbox(outbox_path)
    try:
        return [decode(p.payload) for p in outbox.pending(limit=len(outbox) + 1)]
    finally:
        outbox.close()


def waiting_arrivals(outbox_path: Path, cid: str) -> list[Arrival]:
    return [m for m in waiting(outbox_path) if isinstance(m, Arrival) and m.customer.customer_id == cid]


def erase_without_flags(cfg: EdgeConfig, cid: str) -> dict[str, Any]:
    """``branch-edge erase`` as an operator types it at the branch PC: no --config."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["erase", "--db", str(cfg.store.path), "--key-file", str(cfg.store.key_file),
                         "--customer", cid, "--actor", "test:branch-manager", "--json"])
    assert code == 0
    return dict(json.loads(out.getvalue()))


def erase_in_store(cfg: EdgeConfig, cid: str) -> None:
    """An erasure by something that knows nothing of outboxes (another tool, an older CLI)."""
    with open_configured(cfg.store, create=False) as store:
        store.erase_customer(cid, "test:other-tool", scrub=False)


def arrive(daemon: EdgeDaemon, stage: Stage, data_dir: Path, cid: str, count: int = 1) -> None:
    """Bring ``cid`` in front of the camera until the daemon has queued ``count`` arrivals in all."""
    stage.show(walk_in_photo(data_dir, cid))
    assert wait_until(lambda: daemon.worker.arrivals >= count or daemon.worker.error is not None, TIMEOUT), \
        f"no arrival for {cid} (pipeline: {daemon.worker.pipeline.stats() if daemon.worker.pipeline else {}})"
    assert daemon.worker.error is None


def analysed(daemon: EdgeDaemon) -> int:
    return daemon.worker.analysed["lobby-1"]


def let_frames_pass(daemon: EdgeDaemon, frames: int) -> None:
    """A negative check's wait: the daemon analysed ``frames`` more frames of the scene."""
    target = analysed(daemon) + frames
    assert wait_until(lambda: analysed(daemon) >= target, TIMEOUT)


# --- the daemon's own guards ------------------------------------------------------


def test_an_erasure_between_acceptance_and_arrival_withholds_the_arrival(
        branch: EdgeConfig, stage: Stage, daemons, data_dir: Path) -> None:
    """The customer's track is accepted with the gallery of before the erasure; the erasure
    commits (another connection, as ``branch-edge erase`` would) before the worker builds the
    arrival.  The worker's own consent check must withhold it."""
    erased = threading.Event()

    def erase_inside_the_window(daemon: EdgeDaemon) -> None:
        observe = daemon.worker.visits.observe

        def observe_then_erase(recognition):  # runs on the worker thread, right after acceptance
            decision = observe(recognition)
            if decision is not None and recognition.customer_id == REEVE and not erased.is_set():
                erase_in_store(branch, REEVE)
                erased.set()
            return decision

        daemon.worker.visits.observe = observe_then_erase

    daemon = daemons(branch, stage, before_start=erase_inside_the_window)
    stage.show(walk_in_photo(data_dir, REEVE))
    decided = wait_until(lambda: daemon.worker.withheld + daemon.worker.arrivals >= 1, TIMEOUT)
    assert decided and erased.is_set(), "the recognition never came"
    assert (daemon.worker.arrivals, daemon.worker.withheld) == (0, 1)
    assert waiting_arrivals(branch.mqtt.outbox_path, REEVE) == []
    # The erasure is then applied: the customer leaves the gallery and the retraction goes out.
    assert wait_until(lambda: daemon.worker.retractions >= 1, TIMEOUT)
    let_frames_pass(daemon, 20)
    assert daemon.worker.arrivals == 0 and not daemon.worker.visits.in_visit(REEVE)


def test_an_accepted_track_of_an_erased_customer_ends_at_the_gallery_reload(
        branch: EdgeConfig, stage: Stage, daemons, data_dir: Path) -> None:
    """The customer stays in front of the camera through the erasure: the track accepted
    before it no longer counts as the customer (no visit kept alive by it, no arrival)."""
    daemon = daemons(branch, stage)
    arrive(daemon, stage, data_dir, REEVE)
    assert REEVE in daemon.worker.pipeline.present()
    erase_without_flags(branch, REEVE)
    assert wait_until(lambda: daemon.worker.retractions >= 1, TIMEOUT)  # reloaded, then retracted
    assert REEVE not in daemon.worker.pipeline.present()
    let_frames_pass(daemon, 30)  # still standing there, several re-checks later
    assert REEVE not in daemon.worker.pipeline.present()
    assert daemon.worker.arrivals == 1 and not daemon.worker.visits.in_visit(REEVE)


def test_a_customer_still_in_front_of_the_camera_keeps_one_visit(
        branch: EdgeConfig, stage: Stage, daemons, data_dir: Path) -> None:
    """The visit lives on while the accepted track does (``VisitBook.touch``): standing in the
    lobby for longer than ``absence_s`` is still the same visit."""
    daemon = daemons(branch, stage)
    arrive(daemon, stage, data_dir, CLARK)
    first = daemon.worker.visits.visits[CLARK].started
    target = first + 2 * branch.visits.absence_s + 1
    assert wait_until(lambda: daemon.worker._latest_ts >= target, TIMEOUT)
    assert daemon.worker.visits.in_visit(CLARK)
    assert daemon.worker.visits.visits[CLARK].started == first
    # Gone for longer than absence_s: the visit ends; back again, a new arrival.
    stage.show(None)
    assert wait_until(lambda: not daemon.worker.visits.in_visit(CLARK), TIMEOUT)
    arrive(daemon, stage, data_dir, CLARK, count=2)


# --- the outbox: no flag combination skips it --------------------------------------


@pytest.fixture
def broker(provisioned_branch, tmp_path: Path) -> Iterator[MosquittoBroker]:
    """The branch broker, not started: arrivals wait in the daemon's outbox until it is."""
    port = int(next(line for line in provisioned_branch.broker_conf.read_text().splitlines()
                    if line.startswith("listener ")).split()[1])
    broker = MosquittoBroker(provisioned_branch.broker_conf, port, tmp_path / "mosquitto.log")
    yield broker
    broker.stop()


def queue_both_while_the_broker_is_down(lobby: Lobby) -> None:
    daemon = lobby.start(lobby.cfg, lobby.stage)
    arrive(daemon, lobby.stage, lobby.data_dir, REEVE)
    lobby.stage.show(None)
    assert wait_until(lambda: not daemon.worker.pipeline.present(), TIMEOUT)
    arrive(daemon, lobby.stage, lobby.data_dir, CLARK, count=2)
    lobby.stage.show(None)
    daemon.stop()
    assert len(waiting_arrivals(lobby.cfg.mqtt.outbox_path, REEVE)) == 1
    assert len(waiting_arrivals(lobby.cfg.mqtt.outbox_path, CLARK)) == 1


def restart_and_collect(lobby: Lobby, broker: MosquittoBroker) -> Pad:
    """The broker back, a PAD listening, the daemon restarted: wait until the other customer's
    arrival (queued after the erased one's) has reached the PAD."""
    broker.start()
    pad = Pad(lobby.prov, lobby.tmp_path)
    lobby.start(lobby.cfg, lobby.stage)
    assert wait_until(lambda: pad.arrivals_of(CLARK), TIMEOUT), pad.messages
    return pad


def test_erase_without_config_removes_the_waiting_arrivals_and_no_pad_gets_them(
        lobby: Lobby, broker: MosquittoBroker) -> None:
    queue_both_while_the_broker_is_down(lobby)
    report = erase_without_flags(lobby.cfg, REEVE)
    assert report["waiting_arrivals_removed"] == 1  # found through the store, not a flag
    assert waiting_arrivals(lobby.cfg.mqtt.outbox_path, REEVE) == []
    pad = restart_and_collect(lobby, broker)
    try:
        assert pad.arrivals_of(REEVE) == []
        assert wait_until(lambda: pad.retractions_of(REEVE), TIMEOUT)  # in case a PAD had it
    finally:
        pad.close()


def test_the_daemon_drops_waiting_arrivals_of_a_customer_erased_behind_its_back(
        lobby: Lobby, broker: MosquittoBroker) -> None:
    """The erasure reached the store only (no outbox touched): the restarted daemon drops the
    waiting arrival itself before its sender starts."""
    queue_both_while_the_broker_is_down(lobby)
    erase_in_store(lobby.cfg, REEVE)
    assert len(waiting_arrivals(lobby.cfg.mqtt.outbox_path, REEVE)) == 1
    pad = restart_and_collect(lobby, broker)
    try:
        assert pad.arrivals_of(REEVE) == []
        assert waiting_arrivals(lobby.cfg.mqtt.outbox_path, REEVE) == []
    finally:
        pad.close()
