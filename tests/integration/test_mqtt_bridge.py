"""The provisioned bridge: two real Mosquitto instances, branch and head office."""

from __future__ import annotations

import uuid
from pathlib import Path

from mqtt.client import BranchClient, Identity
from mqtt.config import MqttConfig
from mqtt.dedup import SeenIds
from mqtt.messages import Notice, Outcome
from mqtt.provision import pki
from mqtt.provision.run import BrokerOptions, CentralLink, current_user, provision
from mqtt.receiver import Receiver
from mqtt.topics import BranchTopics
from tests.mqtt_fixtures import BRANCH_DEVICES, MosquittoBroker, arrival, free_port, make_client, wait_until

T = BranchTopics("b1")


def central_broker(
    ca: pki.KeyPair, tmp: Path, branch_out: Path, tls_port: int, hq_port: int
) -> MosquittoBroker:
    """Head office as a bank would set it up: our bridge's entries added to its files."""
    server = pki.issue(ca, "hq", server_names=["127.0.0.1"])
    pki.write_pair(server, tmp / "hq.crt", tmp / "hq.key")
    hq = branch_out / "central"
    conf = tmp / "central.conf"
    conf.write_text(
        f"user {current_user()}\nper_listener_settings true\npersistence false\n"
        f"listener {tls_port} 127.0.0.1\ncafile {hq / 'branch-b1-ca.crt'}\n"
        f"certfile {tmp / 'hq.crt'}\nkeyfile {tmp / 'hq.key'}\nrequire_certificate true\n"
        f"allow_anonymous false\npassword_file {hq / 'passwd-entry'}\nacl_file {hq / 'acl-entry'}\n"
        # the head-office application side, plain loopback for the test
        f"listener {hq_port} 127.0.0.1\nallow_anonymous true\n"
    )
    return MosquittoBroker(conf, hq_port, tmp / "central.log")


def hq_client(tmp: Path, port: int) -> BranchClient:
    cfg = MqttConfig(host="127.0.0.1", port=port, device_id="hq-app", outbox_path=tmp / "hq.db",
                     reconnect_min_s=0.1, reconnect_max_s=1.0)
    receiver = Receiver(SeenIds(":memory:"))
    return BranchClient(cfg, Identity("b1", "hq-app", "central"), receiver=receiver,
                        subscriptions=(T.everything,))


def test_bridge_forwards_outcomes_and_status_not_arrivals_and_brings_notices(tmp_path):
    tls_port, hq_port, branch_port = free_port(), free_port(), free_port()
    central_ca = tmp_path / "hq-ca.crt"
    branch_out = tmp_path / "pki"
    hq_ca = pki.make_ca("Head office CA")
    pki.write_pair(hq_ca, central_ca, tmp_path / "hq-ca.key")
    prov = provision(
        "b1", BRANCH_DEVICES, branch_out,
        BrokerOptions(port=branch_port, bind="127.0.0.1", broker_user=current_user()),
        CentralLink("127.0.0.1", tls_port, central_ca),
    )
    central = central_broker(hq_ca, tmp_path, branch_out, tls_port, hq_port)
    central.start()
    branch = MosquittoBroker(prov.broker_conf, branch_port, tmp_path / "branch.log")
    branch.start()
    clients: list[BranchClient] = []
    try:
        hq = hq_client(tmp_path, hq_port)
        edge = make_client(prov, "edge-1", tmp_path / "s", (T.notices,))
        rm = make_client(prov, "rm-1", tmp_path / "s")
        clients += [hq, edge, rm]
        for client in clients:
            client.start()
            assert client.wait_connected(10)
        seen = []

        def hq_got(schema: str) -> bool:
            assert hq.receiver is not None
            while not hq.receiver.queue.empty():
                seen.append(hq.receiver.queue.get_nowait().message)
            return any(schema == m.SCHEMA for m in seen)

        assert wait_until(lambda: hq_got("device_status"), 15), "bridge did not come up"
        edge.publish(arrival("b1"))
        assert wait_until(lambda: len(edge.outbox) == 0, 5)
        outcome = Outcome(branch_id="b1", arrival_id=_uuid(), visit_id=_uuid(), customer_id="c-1",
                          rm_id="rm-1", device_id="rm-1", result="interested")
        rm.publish(outcome)
        assert wait_until(lambda: hq_got("outcome"), 10)
        assert outcome in seen
        assert not any(m.SCHEMA == "arrival" for m in seen), "an arrival (face thumbnail) left the branch"
        notice = Notice(branch_id="b1", kind="gallery", package_version="2024.06.1",
                        url="https://hq.example/gallery/b1/2024.06.1", sha256="0" * 64)
        hq.publish(notice)
        assert wait_until(lambda: edge.receiver.queue.qsize() >= 1, 10), edge.stats()
        assert edge.receiver.queue.get_nowait().message == notice
    finally:
        for client in clients:
            client.stop(drain_s=0.2)
        branch.stop()
        central.stop()


def _uuid() -> str:
    return str(uuid.uuid4())
