"""End to end: a customer enrolled only at head office arrives at a running branch.

The real ``branch-edge run`` daemon (fleet enabled) watches a looping synthetic lobby video
with two consenting customers: one enrolled at the branch, one only at head office.  Head
office (its own enrolment station run as a program, the package built and signed there) sends
the package through a real central Mosquitto and the branch's bridged Mosquitto; the running
daemon imports it and, without a restart, the head-office customer's arrival reaches the RM's
tablet beside the local customer's.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edge.config import parse_config
from edge.enrol.enrolment import enrol_folder
from edge.fleet.keys import generate_branch_key
from edge.store.crypto import generate_key_file
from edge.store.database import open_configured
from edge.tools.synth import SynthSpec, generate_lobby, write_consenting_customers
from hq.central import TlsListener
from hq.contract import pack_contract
from hq.enrol import embed_photos, enrol_templates
from hq.packages import build_package
from hq.service import HqService, hq_client
from mqtt.provision import pki
from mqtt.provision.run import BrokerOptions, CentralLink, current_user, provision
from mqtt.topics import BranchTopics
from tests.daemon_fixtures import write_toml
from tests.hq_fixtures import HeadOffice, login, start_central
from tests.mqtt_fixtures import (
    BRANCH_DEVICES,
    MosquittoBroker,
    client_config,
    free_port,
    make_client,
    wait_until,
)

BRANCH_EDGE = str(Path(sys.executable).parent / "branch-edge")


@pytest.fixture(scope="module")
def lobby(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("hq-lobby")
    # the lobby of tests/e2e/test_daemon_e2e.py, where every enrolled customer is recognised
    truth = generate_lobby(data_dir / "faces", out / "lobby.mp4", out / "truth.json", enrolled=3, strangers=2,
                           spec=SynthSpec(seconds=12.0, fps=10.0), seed=7,
                           background_video=data_dir / "video" / "royal_opera_house_walk_1080p.mp4")
    with write_consenting_customers(truth, out / "all.csv").open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    people = sorted({row[0] for row in rows[1:]})
    split = {}
    for name, chosen in (("hq", people[:1]), ("local", people[1:])):
        path = out / f"{name}.csv"
        with path.open("w", newline="", encoding="utf-8") as f:
            csv.writer(f).writerows([rows[0], *[r for r in rows[1:] if r[0] in chosen]])
        split[name] = (chosen, path)
    return out / "lobby.mp4", split


@pytest.fixture
def brokers(tmp_path):
    """Central (TLS for the bridge, a password listener for head office) and branch b1's
    provisioned Mosquitto bridged to it."""
    hq_ca = pki.make_ca("Head office CA")
    pki.write_pair(hq_ca, tmp_path / "hq-ca.crt", tmp_path / "hq-ca.key")
    pki.write_pair(pki.issue(hq_ca, "central", server_names=["127.0.0.1"]), tmp_path / "c.crt",
                   tmp_path / "c.key")
    tls_port, branch_port = free_port(), free_port()
    prov = provision("b1", BRANCH_DEVICES, tmp_path / "pki",
                     BrokerOptions(port=branch_port, bind="127.0.0.1", broker_user=current_user()),
                     CentralLink("127.0.0.1", tls_port, tmp_path / "hq-ca.crt"))
    side = prov.out / "central"
    tls = TlsListener(tls_port, side / "branch-b1-ca.crt", tmp_path / "c.crt", tmp_path / "c.key")
    central_broker, central = start_central(tmp_path, [], tls=tls,
                                            bridge_lines={"b1": (side / "passwd-entry").read_text()})
    branch_broker = MosquittoBroker(prov.broker_conf, branch_port, tmp_path / "branch.log")
    branch_broker.start()
    yield prov, central
    branch_broker.stop()
    central_broker.stop()


def branch_config(tmp_path: Path, prov, video: Path, hq: HeadOffice):
    generate_key_file(tmp_path / "store.key")
    generate_branch_key(tmp_path / "branch.key", tmp_path / "branch.pub.pem")
    hq.registry.add_branch("b1", (tmp_path / "branch.pub.pem").read_bytes())
    camera = {"name": "lobby-1", "source": str(video), "pace": "fast", "analyse_fps": 10.0, "loop": True}
    cfg = parse_config({
        "branch_id": "b1",
        "store": {"path": str(tmp_path / "edge.db"), "key_file": str(tmp_path / "store.key")},
        "mqtt": client_config(prov, "edge-1", tmp_path / "edge-state").model_dump(mode="json"),
        "cameras": [camera],
        "daemon": {"status_interval_s": 1.0, "gallery_check_s": 0.2},
        "visits": {"absence_s": 3.0, "cooldown_s": 0.0},
        "metrics": {"enabled": False},
        "fleet": {"enabled": True, "hq_public_key": str(hq.public_key),
                  "branch_key": str(tmp_path / "branch.key"), "state_dir": str(tmp_path / "fleet")},
    })
    with open_configured(cfg.store):
        pass
    return cfg


class Pad:
    """The RM's tablet: the customers whose arrivals it got, in order."""

    def __init__(self, prov, tmp_path: Path) -> None:
        self.client = make_client(prov, "rm-1", tmp_path / "rm", subscriptions=(BranchTopics("b1").arrivals,))
        self.client.start()
        self.seen: list[str] = []

    def arrived(self, customer: str) -> bool:
        receiver = self.client.receiver
        assert receiver is not None
        while not receiver.queue.empty():
            self.seen.append(receiver.queue.get_nowait().message.customer.customer_id)
        return customer in self.seen


@pytest.fixture
def shared(data_dir, models_dir):
    return data_dir, models_dir


def test_head_office_customer_arrives_at_the_running_branch(tmp_path, brokers, lobby, shared, engine):
    data_dir, models_dir = shared
    prov, central = brokers
    video, split = lobby
    ([hq_customer], hq_csv), (local_customers, local_csv) = split["hq"], split["local"]
    hq = HeadOffice(tmp_path / "hq")
    contract = pack_contract("default", models_dir)
    templates = embed_photos(data_dir / "faces", customers_csv=hq_csv, models_dir=models_dir,
                             program=BRANCH_EDGE)
    assert enrol_templates(hq.registry, templates, contract).enrolled == [hq_customer]
    cfg = branch_config(tmp_path, prov, video, hq)
    hq.registry.assign("b1", [hq_customer])
    with open_configured(cfg.store, create=False) as store:  # the branch enrols the others itself
        local = enrol_folder(store, engine, cfg, data_dir / "faces", customers_csv=local_csv, actor="t")
    assert local.count("accepted") >= 2
    pad = Pad(prov, tmp_path)
    client = hq_client(login(tmp_path, central, "hq-app", "hq-app", outbox_path=":memory:"))
    client.start()
    config = write_toml(cfg, tmp_path / "edge.toml")
    command = [sys.executable, "-m", "edge.cli", "run", "--config", str(config), "--models", str(models_dir),
               "--seconds", "150"]
    daemon = subprocess.Popen(command, env={**os.environ, "PYTHONPATH": os.getcwd()},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert pad.client.wait_connected(10) and client.wait_connected(10)
        assert wait_until(lambda: all(pad.arrived(c) for c in local_customers), 60), pad.seen
        assert hq_customer not in pad.seen
        # head office ships the package while the daemon runs
        assert build_package(hq.registry, "b1", contract, hq.signing, hq.tmp / "packages") is not None
        service = HqService(hq.registry, client, resend_s=2.0)

        def applied() -> bool:
            service.tick()
            return hq.registry.packages("b1")[0].state == "applied"

        assert wait_until(applied, 60, step=0.2), hq.registry.packages("b1")
        assert wait_until(lambda: pad.arrived(hq_customer), 60), pad.seen
        assert daemon.poll() is None  # the same process: no restart
    finally:
        daemon.terminate()
        _, errors = daemon.communicate(timeout=60)
        pad.client.stop()
        client.stop()
        hq.registry.close()
    assert daemon.returncode == 0, errors[-3000:]
