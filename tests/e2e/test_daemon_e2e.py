"""End to end with the real models and a real Mosquitto: a synthetic lobby video
with ground truth goes through the daemon (capture -> pipeline -> visits ->
arrivals -> outbox -> broker) to a subscribed RM client.  Enrolled customers
arrive exactly once each, strangers never; an erasure takes effect while the
daemon runs."""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import pytest

from edge.config import EdgeConfig, parse_config
from edge.enrol.enrolment import enrol_folder
from edge.lobby.daemon import EdgeDaemon
from edge.store.database import open_configured
from edge.tools.synth import SynthSpec, generate_lobby, write_consenting_customers
from mqtt.messages import Arrival, utc_now
from mqtt.topics import BranchTopics
from tests.daemon_fixtures import edge_client, edge_config, store_opener
from tests.mqtt_fixtures import arrival as sample_arrival
from tests.mqtt_fixtures import make_client, wait_until


@pytest.fixture(scope="module")
def lobby(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("daemon-lobby")
    truth = generate_lobby(data_dir / "faces", out / "lobby.mp4", out / "truth.json", enrolled=3, strangers=2,
                           spec=SynthSpec(seconds=12.0, fps=10.0), seed=7,
                           background_video=data_dir / "video" / "royal_opera_house_walk_1080p.mp4")
    return out / "lobby.mp4", truth, customers_csv(truth, out / "customers.csv")


def customers_csv(truth, path: Path) -> Path:
    """The video's enrolled people as customers with a recorded consent, a tier and an RM."""
    return write_consenting_customers(truth, path)


def enrolled_branch(tmp_path: Path, prov, engine, lobby, data_dir: Path, **sections) -> EdgeConfig:
    video, truth, customers = lobby
    camera = {"name": "lobby-1", "source": str(video), "pace": "fast", "analyse_fps": 10.0,
              "loop": bool(sections.pop("loop", False))}
    cfg = edge_config(tmp_path, prov, [camera], **sections)
    with open_configured(cfg.store, create=False) as store:
        report = enrol_folder(store, engine, cfg, data_dir / "faces", customers_csv=customers, actor="test")
    enrolled = {p["customer_id"] for p in truth["people"] if p["enrolled"]}
    assert {row["customer_id"] for row in report.per_customer() if row["accepted"]} == enrolled
    return cfg


@pytest.fixture
def running_broker(provisioned_branch, mosquitto_broker, data_dir: Path) -> Path:
    """Mosquitto for the provisioned branch; returns the data folder (for the photos)."""
    mosquitto_broker(provisioned_branch)
    return data_dir


class Subscriber:
    """An RM PAD: collects arrivals with their receive time."""

    def __init__(self, prov, tmp_path: Path) -> None:
        self.received: list[tuple[Arrival, float]] = []
        topic = BranchTopics(prov.branch_id).arrivals
        self.client = make_client(prov, "rm-1", tmp_path / "rm", subscriptions=(topic,))
        self.client.start()
        assert self.client.wait_connected(10)
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._stop = threading.Event()
        self._thread.start()

    def _collect(self) -> None:
        assert self.client.receiver is not None
        while not self._stop.is_set():
            try:
                message = self.client.receiver.queue.get(timeout=0.1).message
            except queue.Empty:
                continue
            if isinstance(message, Arrival):
                self.received.append((message, (utc_now() - message.seen_at).total_seconds()))

    def customers(self) -> list[str]:
        return [a.customer.customer_id for a, _ in self.received]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.client.stop()


def test_each_enrolled_customer_arrives_once_strangers_never(
        tmp_path: Path, provisioned_branch, running_broker, engine, lobby) -> None:
    _, truth, _ = lobby
    data_dir = running_broker
    cfg = enrolled_branch(tmp_path, provisioned_branch, engine, lobby, data_dir)
    pad = Subscriber(provisioned_branch, tmp_path)
    daemon = EdgeDaemon(cfg, engine, store_opener(cfg), edge_client(cfg), exit_when_sources_end=True)
    try:
        assert daemon.run() == 0
        enrolled = {p["customer_id"] for p in truth["people"] if p["enrolled"]}
        assert wait_until(lambda: len(pad.received) >= daemon.worker.arrivals, 10)
    finally:
        pad.close()
    customers = pad.customers()
    assert sorted(customers) == sorted(enrolled)  # each exactly once; strangers never
    assert daemon.worker.arrivals == len(enrolled)
    for arrival, latency_s in pad.received:
        assert arrival.camera_id == "lobby-1"
        assert arrival.branch_id == provisioned_branch.branch_id
        assert arrival.thumbnail_jpeg_b64  # the live face, small
        assert arrival.customer.display_name
        assert latency_s >= 0  # received after it was seen; how soon is bench notify's business
    assert daemon.final_status is not None
    assert daemon.final_status.last_arrival_at is not None
    assert daemon.final_status.cameras[0].state == "ended"


def test_erasure_takes_effect_while_the_daemon_runs(
        tmp_path: Path, provisioned_branch, running_broker, engine, lobby) -> None:
    _, truth, _ = lobby
    data_dir = running_broker
    # Short visits, no cooldown: the looped video brings every customer back each loop.
    cfg = enrolled_branch(tmp_path, provisioned_branch, engine, lobby, data_dir, loop=True,
                          visits={"absence_s": 3.0, "cooldown_s": 0.0})
    enrolled = sorted(p["customer_id"] for p in truth["people"] if p["enrolled"])
    pad = Subscriber(provisioned_branch, tmp_path)
    daemon = EdgeDaemon(cfg, engine, store_opener(cfg), edge_client(cfg))
    daemon.start()
    try:
        assert wait_until(lambda: sorted(set(pad.customers())) == enrolled, 60), pad.customers()
        erased = enrolled[0]
        with open_configured(cfg.store, create=False) as store:
            store.erase_customer(erased, "test", scrub=False)
        assert wait_until(lambda: erased not in daemon.worker.pipeline.gallery.customers, 30)
        # Whatever the daemon sent before the reload arrives before this marker, which goes
        # out on its own connection (MQTT keeps one publisher's order): count from there.
        marker = sample_arrival(provisioned_branch.branch_id, seq=9999)
        daemon.client.publish(marker)
        assert wait_until(lambda: marker.customer.customer_id in pad.customers(), 30)
        after = pad.customers().index(marker.customer.customer_id)
        # Two more loops of the video for the others: the erased customer's walk came by at least once.
        assert wait_until(lambda: all(pad.customers()[after:].count(c) >= 2 for c in enrolled[1:]), 90), \
            pad.customers()
        assert erased not in pad.customers()[after:]
    finally:
        daemon.stop()
        pad.close()


def test_lobby_demo_prints_each_arrival_a_pad_receives(tmp_path: Path, engine, lobby, data_dir: Path) -> None:
    from edge.store.crypto import generate_key_file
    from edge.tools.demo.lobby import run_lobby_demo

    _, _, customers = lobby
    generate_key_file(tmp_path / "demo.key")
    cfg = parse_config({"branch_id": "demo-branch", "daemon": {"gallery_check_s": 0.5},
                        "store": {"path": str(tmp_path / "demo.db"), "key_file": str(tmp_path / "demo.key")}})
    with open_configured(cfg.store) as store:
        enrol_folder(store, engine, cfg, data_dir / "faces", customers_csv=customers, actor="test")
    lines: list[str] = []
    summary = run_lobby_demo(tmp_path / "out", data_dir / "faces", cfg, engine, customers_csv=customers,
                             open_store=store_opener(cfg), visitors=3, strangers=2, seconds=12.0,
                             pace="fast", show=lines.append)
    assert summary["customers_in_video"] == 3
    assert summary["false_arrivals"] == 0
    assert summary["repeated_arrivals"] == 0
    assert summary["customers_recognised"] >= 2
    pad_lines = [line for line in lines if "PAD <- arrival" in line]
    assert len(pad_lines) == summary["arrivals_received"]
    assert all("tier private" in line and "RM RM-01" in line and " ms" in line for line in pad_lines)


def test_branch_edge_run_publishes_arrivals_and_stores_rm_outcomes(
        tmp_path: Path, provisioned_branch, running_broker, engine, lobby) -> None:
    """The real `branch-edge run` process: arrivals reach the RM, whose outcome is
    stored at the edge against the visit (the daemon subscribes to outcomes)."""
    import os
    import subprocess
    import sys

    from edge.crm.records import CrmStore
    from mqtt.messages import Outcome
    from tests.daemon_fixtures import write_toml

    cfg = enrolled_branch(tmp_path, provisioned_branch, engine, lobby, running_broker, loop=True)
    config = write_toml(cfg, tmp_path / "edge.toml")
    pad = Subscriber(provisioned_branch, tmp_path)
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    command = [sys.executable, "-m", "edge.cli", "run", "--config", str(config), "--seconds", "25"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        if not wait_until(lambda: pad.received, 30):
            proc.terminate()
            pytest.fail("no arrival from branch-edge run: " + proc.communicate(timeout=30)[1][-3000:])
        arrival = pad.received[0][0]
        outcome = Outcome(branch_id=arrival.branch_id, arrival_id=arrival.id, visit_id=arrival.visit_id,
                          customer_id=arrival.customer.customer_id, rm_id="RM-01", device_id="rm-1",
                          result="interested", note="call back next week")
        pad.client.publish(outcome)

        def stored() -> bool:
            with CrmStore.open(cfg.store.path) as crm:
                return bool(crm.execute("SELECT result FROM crm_outcomes WHERE message_id = ?",
                                        (outcome.id,)).fetchall())

        assert wait_until(stored, 15), "the daemon did not store the RM's outcome"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
        pad.close()
    assert proc.returncode == 0, err[-2000:]
