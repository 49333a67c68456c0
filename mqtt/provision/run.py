"""``provision``: everything a branch broker and its devices need, written into one folder.

Layout of ``out``::

    ca.crt, ca.key                       branch CA (key 0600; keep it offline after provisioning)
    roster.json                          each device's role and staff member (mqtt.roster)
    broker/mosquitto.conf                TLS listener, identity from the certificate, ACL, persistence
    broker/server.crt, server.key        broker certificate for the given host names / IPs
    broker/passwd, broker/acl            one password entry and one ACL block per device
    broker/crl.pem                       certificates revoked by earlier runs
    broker/conf.d/bridge.conf            bridge to head office (only with a central link)
    broker/data/                         Mosquitto persistence (sessions, queued messages)
    devices/<id>/                        ca.crt, client.crt, client.key, password, roster.json, mqtt.toml
    central/                             what head office adds for this branch's bridge user
    manifest.json                        what was generated (no secrets)

An existing ``ca.key`` is reused, so re-running after editing ``devices.toml``
keeps the CA that devices already trust; device certificates and passwords are
issued afresh.  Re-provisioning removes what it revokes: every certificate it
replaces, and those of devices no longer listed, go on the revocation list
(``broker/crl.pem``, which the broker checks), and a removed device's folder
(certificate, key, password) is deleted and leaves the manifest, the password
file and the ACL.  Restart the broker afterwards (it reads the CRL at start).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from string import Template

from mqtt.codec import DEFAULT_MAX_PAYLOAD
from mqtt.provision import acl, passwd, pki
from mqtt.provision.devices import Device, ProvisionError
from mqtt.roster import Member, Roster
from mqtt.topics import BranchTopics

TEMPLATES = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class CentralLink:
    host: str
    port: int
    ca_file: Path


@dataclass(frozen=True)
class BrokerOptions:
    port: int = 8883
    bind: str = "0.0.0.0"
    server_names: tuple[str, ...] = ("localhost", "127.0.0.1")
    broker_user: str = "mosquitto"
    max_payload: int = DEFAULT_MAX_PAYLOAD


@dataclass
class ProvisionResult:
    out: Path
    branch_id: str
    devices: list[Device]
    broker_conf: Path
    files: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # devices of an earlier run, deleted now
    revoked_certificates: int = 0  # entries of broker/crl.pem

    def device_dir(self, device_id: str) -> Path:
        return self.out / "devices" / device_id

    def to_json(self) -> dict[str, object]:
        return {
            "branch_id": self.branch_id,
            "out": str(self.out),
            "broker_conf": str(self.broker_conf),
            "devices": [{"id": d.id, "role": d.role, "staff_id": d.staff} for d in self.devices],
            "files": self.files,
            "revoked_certificates": self.revoked_certificates,
        }


def current_user() -> str:
    return getpass.getuser()


def _ca(out: Path) -> pki.KeyPair:
    cert_path, key_path = out / "ca.crt", out / "ca.key"
    if key_path.exists():
        try:
            return pki.load_pair(cert_path, key_path)
        except (OSError, ValueError) as err:
            raise ProvisionError(f"cannot reuse the CA in {out}: {err}") from err
    pair = pki.make_ca(f"Branch Edge CA {out.name}")
    pki.write_pair(pair, cert_path, key_path)
    return pair


def provision(
    branch_id: str,
    devices: list[Device],
    out: Path,
    options: BrokerOptions | None = None,
    central: CentralLink | None = None,
) -> ProvisionResult:
    options = options or BrokerOptions()
    BranchTopics(branch_id)  # refuses a branch id that cannot be a topic level
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    ca = _ca(out)
    broker = out / "broker"
    for sub in ("data", "conf.d"):
        (broker / sub).mkdir(parents=True, exist_ok=True)
    revoked, removed = _revoke_previous(out, {d.id for d in devices})
    server = pki.issue(ca, options.server_names[0], server_names=options.server_names)
    pki.write_pair(server, broker / "server.crt", broker / "server.key")
    roster = Roster(branch_id, {d.id: Member(d.id, d.role, d.staff) for d in devices})
    roster.write(out / "roster.json")
    lines = [_device_files(ca, out, d, options, roster) for d in devices]
    pki.write_secret(broker / "passwd", ("\n".join(lines) + "\n").encode())
    (broker / "acl").write_text(acl.branch_acl(branch_id, devices), encoding="utf-8")
    conf = _write_broker_conf(out, branch_id, options)
    bridge = broker / "conf.d" / "bridge.conf"
    if central is not None:
        _write_bridge(ca, out, branch_id, central)
    elif bridge.exists():
        bridge.unlink()
        for name in ("bridge.crt", "bridge.key"):
            (broker / name).unlink(missing_ok=True)
    result = ProvisionResult(out, branch_id, devices, conf, removed=removed)
    result.revoked_certificates = pki.write_crl(ca, revoked, broker / "crl.pem")
    result.files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    result.files = [f for f in result.files if not f.startswith("broker/data/")]
    (out / "manifest.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    return result


def _revoke_previous(out: Path, keep: set[str]) -> tuple[list[pki.Revoked], list[str]]:
    """Revoke every client certificate an earlier run issued (they are all re-issued now) and
    delete the folders of devices no longer listed; returns the CRL entries and those devices."""
    broker = out / "broker"
    revoked = pki.load_revoked(broker / "crl.pem")
    now = dt.datetime.now(dt.UTC)
    certificates = [broker / "bridge.crt"]
    removed = []
    devices_dir = out / "devices"
    if devices_dir.is_dir():
        for folder in sorted(devices_dir.iterdir()):
            certificates.append(folder / "client.crt")
            if folder.is_dir() and folder.name not in keep:
                removed.append(folder.name)
    for path in certificates:
        serial = pki.certificate_serial(path)
        if serial is not None:
            revoked.append(pki.Revoked(serial, now))
    for name in removed:
        shutil.rmtree(devices_dir / name)  # its certificate, key and password go with it
    return revoked, removed


def _device_files(ca: pki.KeyPair, out: Path, device: Device, options: BrokerOptions, roster: Roster) -> str:
    folder = out / "devices" / device.id
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    os.chmod(folder, 0o700)  # its key and password
    pair = pki.issue(ca, device.id)
    pki.write_pair(pair, folder / "client.crt", folder / "client.key")
    shutil.copyfile(out / "ca.crt", folder / "ca.crt")
    roster.write(folder / "roster.json")
    password = passwd.new_password()
    pki.write_secret(folder / "password", password.encode())
    (folder / "mqtt.toml").write_text(_device_toml(folder, device, options), encoding="utf-8")
    return passwd.hash_line(device.id, password)


def _device_toml(folder: Path, device: Device, options: BrokerOptions) -> str:
    host = options.server_names[0]
    return (
        f"# [mqtt] section for device {device.id} (role {device.role})\n"
        "[mqtt]\n"
        f'host = "{host}"\nport = {options.port}\ndevice_id = "{device.id}"\n'
        f'ca_file = "{folder / "ca.crt"}"\ncert_file = "{folder / "client.crt"}"\n'
        f'key_file = "{folder / "client.key"}"\npassword_file = "{folder / "password"}"\n'
        f'roster_file = "{folder / "roster.json"}"\n'
    )


def _write_broker_conf(out: Path, branch_id: str, options: BrokerOptions) -> Path:
    broker = out / "broker"
    template = Template((TEMPLATES / "mosquitto.template.conf").read_text(encoding="utf-8"))
    text = template.substitute(
        branch_id=branch_id,
        broker_user=options.broker_user,
        passwd_file=broker / "passwd",
        acl_file=broker / "acl",
        data_dir=broker / "data",
        max_payload=options.max_payload,
        message_size_limit=options.max_payload * 4,
        port=options.port,
        bind=options.bind,
        ca_file=out / "ca.crt",
        server_cert=broker / "server.crt",
        server_key=broker / "server.key",
        crl_file=broker / "crl.pem",
        conf_dir=broker / "conf.d",
    )
    conf = broker / "mosquitto.conf"
    conf.write_text(text, encoding="utf-8")
    return conf


def _write_bridge(ca: pki.KeyPair, out: Path, branch_id: str, central: CentralLink) -> None:
    user = acl.bridge_user(branch_id)
    broker, hq = out / "broker", out / "central"
    pair = pki.issue(ca, user)
    pki.write_pair(pair, broker / "bridge.crt", broker / "bridge.key")
    password = passwd.new_password()
    template = Template((TEMPLATES / "bridge.template.conf").read_text(encoding="utf-8"))
    text = template.substitute(
        branch_id=branch_id,
        central_host=central.host,
        central_port=central.port,
        bridge_user=user,
        bridge_password=password,
        central_ca=central.ca_file.resolve(),
        bridge_cert=broker / "bridge.crt",
        bridge_key=broker / "bridge.key",
        prefix=BranchTopics(branch_id).prefix,
    )
    pki.write_secret(broker / "conf.d" / "bridge.conf", text.encode())
    hq.mkdir(exist_ok=True)
    (hq / "passwd-entry").write_text(passwd.hash_line(user, password) + "\n", encoding="utf-8")
    (hq / "acl-entry").write_text(acl.central_acl_entry(branch_id), encoding="utf-8")
    shutil.copyfile(out / "ca.crt", hq / f"branch-{branch_id}-ca.crt")
