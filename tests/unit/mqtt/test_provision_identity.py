"""What `branch-edge provision` writes for identity and revocation, and the MQTT layer's files:
no broker needed (tests/e2e/test_security.py and tests/integration/test_mqtt_identity.py run
the same files in a real Mosquitto)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509

from mqtt.client import BranchClient, Identity, MqttError
from mqtt.config import MqttConfig
from mqtt.dedup import SeenIds
from mqtt.files import SecretFileError
from mqtt.outbox import Outbox
from mqtt.provision import Device, ProvisionError
from mqtt.provision.devices import parse_devices
from mqtt.provision.run import BrokerOptions, provision
from mqtt.roster import Roster

DEVICES = [Device("edge-1", "edge"), Device("rm-1", "rm", "RM-01"), Device("rm-2", "rm", "RM-02")]


def serial(path: Path) -> int:
    return x509.load_pem_x509_certificate(path.read_bytes()).serial_number


def revoked_serials(out: Path) -> set[int]:
    crl = x509.load_pem_x509_crl((out / "broker" / "crl.pem").read_bytes())
    return {entry.serial_number for entry in crl}


def test_the_broker_takes_identity_from_the_certificate_and_checks_revocations(tmp_path: Path) -> None:
    result = provision("b1", DEVICES, tmp_path / "pki", BrokerOptions(port=1))
    conf = result.broker_conf.read_text()
    for line in ("require_certificate true", "use_identity_as_username true", "use_username_as_clientid true",
                 f"crlfile {tmp_path / 'pki' / 'broker' / 'crl.pem'}", "allow_anonymous false"):
        assert line in conf.splitlines(), line
    acl = (tmp_path / "pki" / "broker" / "acl").read_text()
    block = acl.split("user rm-1\n")[1].split("\n\n")[0]
    writes = sorted(line.split()[-1].removeprefix("bank/v1/branch/b1/") for line in block.splitlines()
                    if line.startswith("topic write"))
    assert writes == ["claims/rm-1", "outcomes/rm-1", "status/rm-1"]  # only under its own id
    assert not [line for line in acl.splitlines() if line.startswith("pattern")]
    assert revoked_serials(tmp_path / "pki") == set()


def test_the_roster_binds_each_device_to_its_staff_member(tmp_path: Path) -> None:
    result = provision("b1", DEVICES, tmp_path / "pki", BrokerOptions(port=1))
    roster = Roster.load(result.device_dir("rm-1") / "roster.json")
    assert roster == Roster.load(tmp_path / "pki" / "roster.json")
    assert [(m.device_id, m.role, m.staff_id) for m in roster.members.values()] == [
        ("edge-1", "edge", "edge-1"), ("rm-1", "rm", "RM-01"), ("rm-2", "rm", "RM-02")]
    toml = (result.device_dir("rm-1") / "mqtt.toml").read_text()
    assert f'roster_file = "{result.device_dir("rm-1") / "roster.json"}"' in toml
    manifest = json.loads((tmp_path / "pki" / "manifest.json").read_text())
    assert manifest["devices"][1] == {"id": "rm-1", "role": "rm", "staff_id": "RM-01"}


def test_reprovisioning_removes_and_revokes_what_it_revokes(tmp_path: Path) -> None:
    out = tmp_path / "pki"
    first = provision("b1", DEVICES, out, BrokerOptions(port=1))
    old = {d.id: serial(first.device_dir(d.id) / "client.crt") for d in DEVICES}
    second = provision("b1", DEVICES[:2], out, BrokerOptions(port=1))
    assert second.removed == ["rm-2"]
    assert not (out / "devices" / "rm-2").exists()  # certificate, key and password deleted
    manifest = (out / "manifest.json").read_text()
    assert "rm-2" not in manifest and "rm-2" not in (out / "roster.json").read_text()
    for name in ("passwd", "acl"):
        assert "rm-2" not in (out / "broker" / name).read_text()
    current = {d.id: serial(second.device_dir(d.id) / "client.crt") for d in DEVICES[:2]}
    assert revoked_serials(out) == set(old.values())  # removed and replaced certificates alike
    assert not revoked_serials(out) & set(current.values())
    third = provision("b1", DEVICES[:2], out, BrokerOptions(port=1))
    assert revoked_serials(out) == set(old.values()) | set(current.values())  # the list keeps growing
    assert third.removed == [] and third.revoked_certificates == 5


def test_devices_file_takes_an_optional_staff_id() -> None:
    devices = parse_devices({"devices": [{"id": "e", "role": "edge"},
                                         {"id": "p", "role": "rm", "staff_id": "RM-7"}]}, "t")
    assert [(d.id, d.staff) for d in devices] == [("e", "e"), ("p", "RM-7")]
    for bad in ({"id": "p", "role": "rm", "staff_id": "a/b"}, {"id": "p", "role": "rm", "boss": "x"}):
        with pytest.raises(ProvisionError):
            parse_devices({"devices": [{"id": "e", "role": "edge"}, bad]}, "t")


# --- files -------------------------------------------------------------------------------------


def test_outbox_and_seen_ids_are_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        state = tmp_path / "state" / "deeper"
        Outbox(state / "outbox.db").close()
        seen = SeenIds(state / "seen.db")
        seen.first_time("x")
        seen.close()
    finally:
        os.umask(old)
    for path in (state / "outbox.db", state / "seen.db", state / "seen.db-wal"):
        if path.exists():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for folder in (state, state.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_an_existing_world_readable_outbox_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    Outbox(path).close()
    os.chmod(path, 0o644)
    Outbox(path).close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_group_or_world_readable_password_and_key_files_are_refused(tmp_path: Path) -> None:
    result = provision("b1", DEVICES, tmp_path / "pki", BrokerOptions(port=1))
    folder = result.device_dir("rm-1")
    values = {"host": "127.0.0.1", "device_id": "rm-1", "ca_file": folder / "ca.crt",
              "cert_file": folder / "client.crt", "key_file": folder / "client.key",
              "password_file": folder / "password", "outbox_path": tmp_path / "o.db"}
    cfg = MqttConfig.model_validate(values)
    BranchClient(cfg, Identity("b1", "rm-1", "rm")).outbox.close()  # 0600 as provisioned: fine
    for name, what in (("password", "password file"), ("client.key", "private key")):
        os.chmod(folder / name, 0o644)
        with pytest.raises(MqttError, match=f"{what}.*0644.*chmod 600"):
            BranchClient(cfg, Identity("b1", "rm-1", "rm"))
        os.chmod(folder / name, 0o600)
    os.chmod(folder / "password", 0o640)
    with pytest.raises(SecretFileError, match="group/others"):
        cfg.read_password()
