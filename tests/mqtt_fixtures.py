"""Real Mosquitto brokers for tests, started on free loopback ports with provisioned configs.

Reuse from other test modules::

    from tests.mqtt_fixtures import mosquitto_broker, provisioned_branch  # noqa: F401

    def test_x(provisioned_branch, mosquitto_broker):
        broker = mosquitto_broker(provisioned_branch)    # started, TLS, ACL
        cfg = client_config(provisioned_branch, "edge-1", tmp_path)

Run as a program (``python -m tests.mqtt_fixtures publish ...``) it is the
publisher process that the no-loss test kills with SIGKILL.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from mqtt.client import BranchClient, Identity
from mqtt.config import MqttConfig
from mqtt.messages import Arrival, CustomerCard, Portrait, Recommendation, utc_now
from mqtt.provision import Device, provision
from mqtt.provision.run import BrokerOptions, ProvisionResult, current_user
from mqtt.receiver import Delivery, make_receiver

BRANCH_DEVICES = [
    Device("edge-1", "edge"),
    Device("rm-1", "rm"),  # RM "rm-1", as the arrivals' assigned_rm says
    Device("rm-2", "rm"),
    Device("teller-1", "teller", "t-7"),
    Device("sup-1", "supervisor", "s-1"),
]
RUN_NAMESPACE = uuid.UUID("6f1c3c0e-2f4e-4b43-9d57-0c2f1d7a8b11")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mosquitto_binary() -> str:
    # Debian installs it in /usr/sbin, which is not on every user's PATH.
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        pytest.fail("mosquitto is not installed (`make test` installs it: SYSTEM_DEPS in the Makefile)")
    return found


def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return predicate()


class MosquittoBroker:
    """One ``mosquitto -c CONF`` process; stop/start keep its persistence folder."""

    def __init__(self, conf: Path, port: int, log: Path) -> None:
        self.conf, self.port, self.log = conf, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10) -> None:
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [mosquitto_binary(), "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        if not wait_until(self._listening, timeout):
            self.stop()
            raise RuntimeError(f"mosquitto did not start; log:\n{self.log.read_text()[-2000:]}")

    def _listening(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"mosquitto exited; log:\n{self.log.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return True
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves its persistence file, like ``systemctl stop``."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()


def provision_branch(out: Path, branch: str, devices: list[Device], port: int) -> ProvisionResult:
    options = BrokerOptions(port=port, bind="127.0.0.1", broker_user=current_user())
    return provision(branch, devices, out, options)


def client_config(prov: ProvisionResult, device_id: str, state_dir: Path, **overrides: object) -> MqttConfig:
    """The device's provisioned ``[mqtt]`` settings with fast reconnects and private SQLite files.

    Without the provisioned roster unless asked (``roster_file=roster_of(prov, device)``): most
    tests name RMs freely; the identity tests check the names against it."""
    folder = prov.device_dir(device_id)
    state_dir.mkdir(parents=True, exist_ok=True)
    port = int(overrides.pop("port", _conf_port(prov)))
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "device_id": device_id,
        "ca_file": folder / "ca.crt",
        "cert_file": folder / "client.crt",
        "key_file": folder / "client.key",
        "password_file": folder / "password",
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 1.0,
        "keepalive_s": 5,
        "outbox_path": state_dir / f"{device_id}-outbox.db",
        "seen_ids_path": state_dir / f"{device_id}-seen.db",
    }
    values.update(overrides)
    return MqttConfig.model_validate(values)


def roster_of(prov: ProvisionResult, device_id: str) -> Path:
    return prov.device_dir(device_id) / "roster.json"


def _conf_port(prov: ProvisionResult) -> int:
    for line in prov.broker_conf.read_text().splitlines():
        if line.startswith("listener "):
            return int(line.split()[1])
    raise ValueError("no listener in broker config")


def role_of(prov: ProvisionResult, device_id: str) -> str:
    return next(d.role for d in prov.devices if d.id == device_id)


def make_client(
    prov: ProvisionResult,
    device_id: str,
    state_dir: Path,
    subscriptions: tuple[str, ...] = (),
    handler: Callable[[Delivery], None] | None = None,
    **overrides: object,
) -> BranchClient:
    cfg = client_config(prov, device_id, state_dir, **overrides)
    receiver = make_receiver(cfg, handler)
    identity = Identity(prov.branch_id, device_id, role_of(prov, device_id))  # type: ignore[arg-type]
    return BranchClient(cfg, identity, receiver=receiver, subscriptions=subscriptions)


def arrival(branch: str, seq: int | None = None, thumbnail: str | None = None) -> Arrival:
    now = utc_now()
    message_id = str(uuid.uuid5(RUN_NAMESPACE, f"{branch}-{seq}")) if seq is not None else str(uuid.uuid4())
    return Arrival(
        id=message_id,
        branch_id=branch,
        expires_at=now + timedelta(minutes=30),
        visit_id=str(uuid.uuid4()),
        camera_id="lobby-1",
        seen_at=now,
        customer=CustomerCard(
            customer_id=f"c-{seq or 0}",
            display_name="Customer",
            tier="gold",
            masked_id_number="1101**********1234",
            masked_account="****5678",
        ),
        assigned_rm="rm-1",
        thumbnail_jpeg_b64=thumbnail,
        portrait=Portrait(segment="affluent", aum_band="1M-5M", risk_level="R3"),
        recommendations=[Recommendation(product_id="td-3y", name="3-year deposit", reason="maturing")],
        talking_points=["deposit matures next week"],
    )


@pytest.fixture
def mosquitto_broker(tmp_path: Path) -> Iterator[Callable[[ProvisionResult], MosquittoBroker]]:
    """Factory: start Mosquitto with a provisioned branch's config; stopped at teardown."""
    mosquitto_binary()
    started: list[MosquittoBroker] = []

    def start(prov: ProvisionResult) -> MosquittoBroker:
        log = tmp_path / f"mosquitto-{len(started)}.log"
        broker = MosquittoBroker(prov.broker_conf, _conf_port(prov), log)
        broker.start()
        started.append(broker)
        return broker

    yield start
    for broker in started:
        broker.stop()


@pytest.fixture
def provisioned_branch(tmp_path: Path) -> ProvisionResult:
    """Branch ``b1`` (edge-1, rm-1, rm-2, teller-1, sup-1) provisioned for a free loopback port."""
    return provision_branch(tmp_path / "pki-b1", "b1", BRANCH_DEVICES, free_port())


def load_provisioned(out: Path) -> ProvisionResult:
    manifest = json.loads((out / "manifest.json").read_text())
    devices = [Device(d["id"], d["role"], d.get("staff_id", "")) for d in manifest["devices"]]
    return ProvisionResult(out, manifest["branch_id"], devices, Path(manifest["broker_conf"]))


def raw_connect(
    port: int,
    ca_file: Path,
    cert: tuple[Path, Path] | None,
    username: str | None = None,
    password: str | None = None,
) -> int:
    """Send one MQTT 3.1.1 CONNECT over TLS without paho; return the CONNACK code.

    Raises:
        ssl.SSLError / OSError: the TLS handshake or the connection failed.
    """
    ctx = ssl.create_default_context(cafile=str(ca_file))
    if cert is not None:
        ctx.load_cert_chain(str(cert[0]), str(cert[1]))
    flags = 0x02 | (0x80 if username is not None else 0) | (0x40 if password is not None else 0)
    body = b"\x00\x04MQTT\x04" + bytes([flags]) + b"\x00\x0a" + _utf8(f"raw-{uuid.uuid4().hex[:8]}")
    body += _utf8(username) if username is not None else b""
    body += _utf8(password) if password is not None else b""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock, ctx.wrap_socket(
        sock, server_hostname="localhost"
    ) as tls:
        tls.sendall(bytes([0x10, len(body)]) + body)
        reply = tls.recv(4)
    if len(reply) < 4 or reply[0] != 0x20:
        raise ConnectionError(f"no CONNACK (got {reply!r})")
    return reply[3]


def _utf8(text: str) -> bytes:
    data = text.encode()
    return len(data).to_bytes(2, "big") + data


# --- the publisher process of the no-loss test ---------------------------------


def _publisher_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--pki", type=Path, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--first", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--rate", type=float, default=400.0, help="arrivals per second")
    args = parser.parse_args(argv)
    prov = load_provisioned(args.pki)
    client = make_client(prov, "edge-1", args.state, port=args.port)
    client.start()
    period = 1.0 / args.rate
    for seq in range(args.first, args.first + args.count):
        client.publish(arrival(prov.branch_id, seq))
        print(f"stored {seq}", flush=True)
        time.sleep(period)
    drained = wait_until(lambda: len(client.outbox) == 0, 60, 0.05)
    print(f"drained {drained}", flush=True)
    client.stop()
    return 0 if drained else 1


def _hold_main(argv: list[str]) -> int:
    """Connect as a device and stay connected until killed (the Last Will test)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--pki", type=Path, required=True)
    parser.add_argument("--state", type=Path, required=True)
    parser.add_argument("--device", required=True)
    args = parser.parse_args(argv)
    client = make_client(load_provisioned(args.pki), args.device, args.state)
    client.start()
    print(f"connected {client.wait_connected(10)}", flush=True)
    while True:
        time.sleep(1)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "publish":
        sys.exit(_publisher_main(sys.argv[2:]))
    if len(sys.argv) > 1 and sys.argv[1] == "hold":
        sys.exit(_hold_main(sys.argv[2:]))
    sys.exit(f"usage: {os.path.basename(sys.argv[0])} publish --pki DIR ...")
