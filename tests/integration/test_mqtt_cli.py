"""``branch-edge provision`` and ``branch-edge mqtt schemas``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from edge.commands import mqtt as mqtt_command
from edge.commands import provision as provision_command
from edge.core.errors import BranchEdgeError
from mqtt import jsonschema
from mqtt.provision import passwd

DEVICES = """
[[devices]]
id = "edge-01"
role = "edge"

[[devices]]
id = "pad-rm-01"
role = "rm"

[[devices]]
id = "counter-03"
role = "teller"
"""


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    provision_command.register(sub)
    mqtt_command.register(sub)
    args = parser.parse_args(argv)
    return int(args.func(args))


def test_provision_writes_broker_and_device_files(tmp_path, capsys):
    devices = tmp_path / "devices.toml"
    devices.write_text(DEVICES)
    out = tmp_path / "out"
    assert run("provision", "--branch", "sh-001", "--devices", str(devices), "--out", str(out), "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in report["devices"]] == ["edge-01", "pad-rm-01", "counter-03"]
    assert "devices/counter-03/client.key" in report["files"]
    lines = (out / "broker/passwd").read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == ["edge-01", "pad-rm-01", "counter-03"]
    password = (out / "devices/pad-rm-01/password").read_text()
    assert passwd.verify_line(lines[1], password)
    assert not passwd.verify_line(lines[0], password)
    acl = (out / "broker/acl").read_text()
    assert "user counter-03\ntopic write bank/v1/branch/sh-001/status/counter-03" in acl
    assert "topic read bank/v1/branch/sh-001/auth/responses/counter-03" in acl
    assert not any(line.startswith("pattern") for line in acl.splitlines())
    ca_before = (out / "ca.crt").read_bytes()
    assert run("provision", "--branch", "sh-001", "--devices", str(devices), "--out", str(out)) == 0
    assert (out / "ca.crt").read_bytes() == ca_before, "re-provisioning must keep the CA"
    assert "mosquitto -c" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("devices", "message"),
    [
        ('[[devices]]\nid = "pad"\nrole = "rm"\n', "no device with role 'edge'"),
        ('[[devices]]\nid = "e"\nrole = "edge"\n[[devices]]\nid = "e"\nrole = "rm"\n', "duplicate"),
        ('[[devices]]\nid = "e/1"\nrole = "edge"\n', "must match"),
        ('[[devices]]\nid = "e"\nrole = "cashier"\n', "not one of"),
        ("devices = 3", "at least one"),
        ("[[devices]\n", "not valid TOML"),
    ],
)
def test_provision_reports_bad_devices_files(tmp_path, devices, message):
    path = tmp_path / "devices.toml"
    path.write_text(devices)
    with pytest.raises(BranchEdgeError, match=message):
        run("provision", "--branch", "b1", "--devices", str(path), "--out", str(tmp_path / "o"))
    assert not (tmp_path / "o" / "broker" / "mosquitto.conf").exists()


def test_provision_rejects_bad_branch_and_central(tmp_path):
    devices = tmp_path / "devices.toml"
    devices.write_text(DEVICES)
    base = ("provision", "--devices", str(devices), "--out", str(tmp_path / "o"))
    with pytest.raises(BranchEdgeError, match="branch id"):
        run(*base, "--branch", "b 1")
    with pytest.raises(BranchEdgeError, match="HOST:PORT"):
        run(*base, "--branch", "b1", "--central", "hq", "--central-ca", str(devices))
    with pytest.raises(BranchEdgeError, match="central-ca"):
        run(*base, "--branch", "b1", "--central", "hq:8883")


def test_schemas_command_writes_the_shipped_schemas(tmp_path: Path):
    assert run("mqtt", "schemas", "--out", str(tmp_path)) == 0
    for shipped in jsonschema.SCHEMA_DIR.glob("*.json"):
        assert (tmp_path / shipped.name).read_text() == shipped.read_text()


def test_bench_mqtt_reports_latency_and_no_loss(capsys):
    import json

    from edge.cli import main

    assert main(["bench", "mqtt", "--pads", "3", "--rate", "20", "--seconds", "1", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["lost"] == 0
    assert result["deliveries_received"] == result["deliveries_expected"] == 3 * result["arrivals_published"]
    assert result["arrival_payload_bytes"] > 15_000, "arrivals carry a realistic thumbnail"
    latency = result["latency_ms"]
    assert 0 < latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
