"""The audit log's head leaves the branch for head office, and a truncated log is caught
against it: the real daemon, two real Mosquitto instances joined by the provisioned bridge,
and ``branch-edge audit verify --expect-head`` with what head office received."""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
from pathlib import Path

import pytest

from edge import cli
from edge.lobby.daemon import EdgeDaemon
from edge.store.database import open_configured
from mqtt.codec import to_dict
from mqtt.messages import AuditHead, Message
from mqtt.provision import pki
from mqtt.provision.run import BrokerOptions, CentralLink, current_user, provision
from tests.daemon_fixtures import edge_client, edge_config, store_opener
from tests.integration.test_mqtt_bridge import central_broker, hq_client
from tests.mqtt_fixtures import BRANCH_DEVICES, MosquittoBroker, free_port, wait_until


@pytest.fixture(autouse=True)
def _only_our_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMANDS", ("audit",))


def verify(cfg, head: AuditHead | None = None) -> tuple[int, dict]:
    out = io.StringIO()
    extra = ["--expect-head", json.dumps(to_dict(head))] if head is not None else []
    with contextlib.redirect_stdout(out):
        code = cli.main(["audit", "verify", "--db", str(cfg.store.path),
                         "--key-file", str(cfg.store.key_file), "--json", *extra])
    return code, json.loads(out.getvalue())


def test_head_office_receives_the_audit_head_and_catches_a_truncation(tmp_path: Path, engine) -> None:
    tls_port, hq_port, branch_port = free_port(), free_port(), free_port()
    hq_ca = pki.make_ca("Head office CA")
    pki.write_pair(hq_ca, tmp_path / "hq-ca.crt", tmp_path / "hq-ca.key")
    prov = provision("b1", BRANCH_DEVICES, tmp_path / "pki",
                     BrokerOptions(port=branch_port, bind="127.0.0.1", broker_user=current_user()),
                     CentralLink("127.0.0.1", tls_port, tmp_path / "hq-ca.crt"))
    central = central_broker(hq_ca, tmp_path, tmp_path / "pki", tls_port, hq_port)
    branch = MosquittoBroker(prov.broker_conf, branch_port, tmp_path / "branch.log")
    cfg = edge_config(tmp_path, prov, [])
    with open_configured(cfg.store, create=False) as store:
        for i in range(3):
            store.audit("test", "test_event", f"C{i}", {"i": i})
    central.start()
    branch.start()
    hq = hq_client(tmp_path, hq_port)
    received: list[Message] = []

    def heads() -> list[AuditHead]:
        assert hq.receiver is not None
        while not hq.receiver.queue.empty():
            received.append(hq.receiver.queue.get_nowait().message)
        return [m for m in received if isinstance(m, AuditHead)]

    daemon = EdgeDaemon(cfg, engine, store_opener(cfg), edge_client(cfg))
    try:
        hq.start()
        assert hq.wait_connected(10)
        daemon.start()
        assert wait_until(lambda: any(h.seq == 3 for h in heads()), 30), received
        with open_configured(cfg.store, create=False) as store:  # the branch goes on working
            for i in range(3, 5):
                store.audit("test", "test_event", f"C{i}", {"i": i})
        assert wait_until(lambda: any(h.seq == 5 for h in heads()), 30), received
    finally:
        daemon.stop()
        hq.stop(drain_s=0.2)
        branch.stop()
        central.stop()
    latest = max(heads(), key=lambda h: h.seq)
    assert (latest.branch_id, latest.device_id) == ("b1", "edge-1")
    assert verify(cfg, latest)[0] == 0
    # Someone with write access to the file cuts off the newest entries.
    with sqlite3.connect(cfg.store.path) as conn:
        conn.execute("DROP TRIGGER audit_no_delete")
        conn.execute("DELETE FROM audit WHERE seq > 3")
    code, result = verify(cfg)
    assert (code, result["intact"]) == (0, True)  # a prefix of the chain is a valid chain...
    code, result = verify(cfg, latest)
    assert (code, result["expected_head_found"]) == (1, False)  # ...but not the one head office saw
    assert "truncated or rolled back" in result["reason"]
