"""Head office in tests: a central Mosquitto (hq.central), head office's MQTT settings, and
simulated branches: a real keyed store, the fleet agent and a client logged in to the central
broker as the branch's bridge user (what the bridge would carry, without a branch broker)."""

from __future__ import annotations

import queue
from pathlib import Path

import numpy as np

from edge.config import EdgeConfig, parse_config
from edge.fleet.agent import FleetAgent, fleet_subscriptions
from edge.fleet.keys import generate_branch_key, load_fleet_keys
from edge.store.crypto import generate_key_file
from edge.store.database import Store, open_configured
from hq.central import CentralBroker, TlsListener, write_central_broker
from hq.keys import init_keys, load_data_key, load_signing_key
from hq.registry import Registry
from mqtt.client import BranchClient, Identity
from mqtt.config import MqttConfig
from mqtt.dedup import SeenIds
from mqtt.files import create_private
from mqtt.messages import Erasure, GalleryChunk
from mqtt.package import EmbeddingContract
from mqtt.provision.acl import bridge_user
from mqtt.provision.run import current_user
from mqtt.receiver import Delivery, Receiver
from tests.mqtt_fixtures import MosquittoBroker, free_port

# a made-up contract for tests that need no real model (the recognizer digest is not checked here)
TEST_CONTRACT = EmbeddingContract("default", "c" * 64, (112, 112), "RGB", 127.5, 127.5, 128)


def start_central(tmp: Path, branches: list[str], *, tls: TlsListener | None = None,
                  bridge_lines: dict[str, str] | None = None) -> tuple[MosquittoBroker, CentralBroker]:
    central = write_central_broker(tmp / "central", port=free_port(), branches=branches,
                                   broker_user=current_user(), iterations=1000, tls=tls,
                                   bridge_passwd_lines=bridge_lines)
    broker = MosquittoBroker(central.conf, central.port, tmp / "central" / "mosquitto.log")
    broker.start()
    return broker, central


def login(tmp: Path, central: CentralBroker, user: str, name: str, **overrides: object) -> MqttConfig:
    (tmp / "state").mkdir(parents=True, exist_ok=True)
    secret = tmp / "secrets" / f"{name}.password"
    create_private(secret)
    secret.write_text(central.passwords[user], encoding="utf-8")
    values: dict[str, object] = {
        "host": "127.0.0.1", "port": central.port, "device_id": name, "username": user,
        "password_file": secret, "reconnect_min_s": 0.1, "reconnect_max_s": 1.0, "keepalive_s": 5,
        "outbox_path": tmp / "state" / f"{name}-outbox.db",
        "seen_ids_path": tmp / "state" / f"{name}-seen.db",
    }
    values.update(overrides)
    return MqttConfig.model_validate(values)


class HeadOffice:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        init_keys(tmp / "hq-signing.key", tmp / "hq-data.key", tmp / "hq-signing.pub.pem")
        self.signing = load_signing_key(tmp / "hq-signing.key")
        self.public_key = tmp / "hq-signing.pub.pem"
        self.registry = Registry(tmp / "hq.db", load_data_key(tmp / "hq-data.key"))

    def enrol_random(self, customer_id: str, contract: EmbeddingContract, templates: int = 1,
                     seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        vectors = []
        for n in range(templates):
            v = rng.normal(size=contract.dimension).astype("<f4")
            vectors.append((f"{seed:032x}{n:032x}", (v / np.linalg.norm(v)).astype("<f4").tobytes()))
        self.registry.enrol(customer_id, display_name=f"Customer {customer_id}", tier="private",
                            assigned_rm="RM-01", consent_channel="kyc-head-office",
                            consent_time="2026-01-05T10:00:00+08:00", model_pack=contract.model_pack,
                            recognizer_sha256=contract.recognizer_sha256, templates=vectors)


class SimBranch:
    """One branch: its store, keys and fleet agent, online through ``client``."""

    def __init__(self, tmp: Path, branch_id: str, hq: HeadOffice, contract: EmbeddingContract) -> None:
        self.branch_id, self.tmp = branch_id, tmp
        tmp.mkdir(parents=True, exist_ok=True)
        generate_key_file(tmp / "store.key")
        generate_branch_key(tmp / "branch.key", tmp / "branch.pub.pem")
        self.cfg: EdgeConfig = parse_config({
            "branch_id": branch_id,
            "store": {"path": str(tmp / "edge.db"), "key_file": str(tmp / "store.key")},
            "mqtt": {"outbox_path": str(tmp / "edge-outbox.db")},
            "fleet": {"enabled": True, "hq_public_key": str(hq.public_key),
                      "branch_key": str(tmp / "branch.key"), "state_dir": str(tmp / "fleet")},
        })
        with open_configured(self.cfg.store):
            pass
        self.contract = contract
        hq.registry.add_branch(branch_id, (tmp / "branch.pub.pem").read_bytes())
        self.inbox: queue.Queue[Delivery] = queue.Queue()
        self.client: BranchClient | None = None
        self.agent: FleetAgent | None = None

    def store(self) -> Store:
        return open_configured(self.cfg.store, create=False)

    def connect(self, central: CentralBroker) -> None:
        user = bridge_user(self.branch_id)
        mqtt = login(self.tmp, central, user, user)

        def route(delivery: Delivery) -> None:
            if isinstance(delivery.message, Erasure | GalleryChunk):
                self.inbox.put(delivery)

        self.client = BranchClient(mqtt, Identity(self.branch_id, user, "edge"),
                                   receiver=Receiver(SeenIds(mqtt.seen_ids_path), handler=route),
                                   subscriptions=fleet_subscriptions(self.branch_id))
        self.agent = FleetAgent(self.cfg, self.store, self.client, contract=self.contract,
                                keys=load_fleet_keys(self.cfg.fleet), inbox=self.inbox)
        self.client.start()
        assert self.client.wait_connected(10)
        self.agent.start()

    def disconnect(self) -> None:
        if self.agent is not None:
            self.agent.stop()
        if self.client is not None:
            self.client.stop(drain_s=5.0)
        self.agent = self.client = None
