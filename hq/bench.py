"""``branch-hq bench fleet``: N simulated branches behind a central Mosquitto on loopback.

Each simulated branch is one :class:`~mqtt.client.BranchClient` (not a daemon) logged in as
its bridge user, with what a branch's fleet agent does in memory: it takes its gallery package
(chunks, signature checked, decrypted with its own X25519 key, version order kept), applies
head office's erasures once per erasure id and acknowledges them, publishes its retained
status and some RM outcomes.  Head office runs its service (packages, erasures, re-sends) and,
with PostgreSQL, the collector.  Measured and printed as JSON:

- packages: time until every branch applied its package;
- erasures: per (erasure, branch), issue -> acknowledgement recorded at head office:
  p50/p95/max, confirmed, lost (never confirmed), applied twice, duplicate deliveries;
- outcomes: published, in PostgreSQL, lost, duplicated;
- throughput: messages through the central broker per second during the erasure phase,
  collector rows per second; memory: resident sizes of Mosquitto and this process.

TLS is off on this loopback broker (the bench measures the contract, not TLS handshakes);
passwords and the ACL are on.
"""

from __future__ import annotations

import argparse
import base64
import getpass
import hashlib
import json
import multiprocessing
import os
import socket
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from hq.central import write_central_broker
from hq.collector import Collector
from hq.config import HqConfig
from hq.errors import HqError
from hq.keys import init_keys, load_data_key, load_signing_key
from hq.packages import build_package
from hq.pgserver import TempPostgres
from hq.registry import Registry
from hq.service import HqService, hq_client
from mqtt.client import BranchClient, Identity
from mqtt.config import MqttConfig
from mqtt.dedup import SeenIds
from mqtt.files import create_private
from mqtt.messages import Erasure, ErasureAck, GalleryAck, GalleryChunk, Outcome
from mqtt.package import EmbeddingContract, PackageError, load_public_key, open_package, public_pem
from mqtt.provision.acl import bridge_user
from mqtt.receiver import Delivery, Receiver
from mqtt.topics import BranchTopics

CONTRACT = EmbeddingContract("default", "b" * 64, (112, 112), "RGB", 127.5, 127.5, 128)


class SimBranch:
    """A branch's fleet agent, in memory, over one MQTT client."""

    def __init__(self, branch_id: str, cfg: MqttConfig, hq_key: Ed25519PublicKey) -> None:
        self.branch_id, self.hq_key = branch_id, hq_key
        self.key = X25519PrivateKey.generate()
        self.customers: set[str] = set()
        self.version = 0
        self.applied: dict[str, ErasureAck] = {}
        self.repeats = 0  # erasure messages for an erasure already applied (head office's re-sends)
        self.chunks: dict[str, dict[int, bytes]] = {}
        self.lock = threading.Lock()
        self.receiver = Receiver(SeenIds(":memory:"), handler=self.handle)
        topics = BranchTopics(branch_id)
        self.client = BranchClient(cfg, Identity(branch_id, "pad-1", "rm"), receiver=self.receiver,
                                   subscriptions=(topics.fleet("erasures"), topics.fleet("gallery")))

    def handle(self, delivery: Delivery) -> None:
        message = delivery.message
        with self.lock:
            if isinstance(message, Erasure):
                ack = self.applied.get(message.erasure_id)
                self.repeats += ack is not None
                if ack is None:
                    removed = int(message.customer_id in self.customers)
                    self.customers.discard(message.customer_id)
                    ack = ErasureAck(branch_id=self.branch_id, erasure_id=message.erasure_id,
                                     customer_id=message.customer_id, applied_at=datetime.now(UTC),
                                     result="erased" if removed else "not_enrolled",
                                     templates_removed=removed)
                    self.applied[message.erasure_id] = ack
                self.client.publish(ErasureAck(**{**ack.__dict__, "id": str(uuid.uuid4())}))
            elif isinstance(message, GalleryChunk):
                self._chunk(message)

    def _chunk(self, chunk: GalleryChunk) -> None:
        pieces = self.chunks.setdefault(chunk.package_sha256, {})
        pieces[chunk.index] = base64.b64decode(chunk.data_b64)
        if len(pieces) < chunk.chunk_count:
            return
        data = b"".join(pieces[i] for i in range(chunk.chunk_count))
        state, reason = "applied", ""
        try:
            if hashlib.sha256(data).hexdigest() != chunk.package_sha256:
                raise PackageError("digest", "package digest mismatch")
            header, payload = open_package(data, verify_key=self.hq_key, recipient_key=self.key)
            if header.branch_id != self.branch_id or header.base_version != self.version:
                raise PackageError("order", "another branch's package, or out of order")
            self.customers |= {c.customer_id for c in payload.customers}
            self.version = header.version
        except PackageError as err:
            state, reason = "refused", err.reason
        self.client.publish(GalleryAck(branch_id=self.branch_id, package_sha256=chunk.package_sha256,
                                       package_version=chunk.package_version, state=state,  # type: ignore[arg-type]
                                       gallery_version=self.version, reason=reason))


def _rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def _wait(predicate: Any, timeout: float, step: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def _login(port: int, user: str, secret: Path, **extra: Any) -> MqttConfig:
    return MqttConfig(host="127.0.0.1", port=port, device_id=user, username=user, password_file=secret,
                      outbox_path=Path(":memory:"), seen_ids_path=Path(":memory:"), keepalive_s=60,
                      reconnect_min_s=0.5, reconnect_max_s=5.0, **extra)


@dataclass(frozen=True)
class WorkerSpec:
    ids: list[str]
    port: int
    secrets: str
    hq_pem: bytes
    timeout_s: float
    batch: int = 50


def _worker(conn: Connection, spec: WorkerSpec) -> None:
    """One process of simulated branches (the GIL and paho's thread per client are per process)."""
    hq_key = load_public_key(spec.hq_pem, Ed25519PublicKey)
    secrets = Path(spec.secrets)
    sims = [SimBranch(b, _login(spec.port, bridge_user(b), secrets / f"{bridge_user(b)}.password"), hq_key)
            for b in spec.ids]
    batch, timeout_s = spec.batch, spec.timeout_s
    conn.send({s.branch_id: public_pem(s.key.public_key()) for s in sims})
    while True:
        command, argument = conn.recv()
        if command == "connect":
            for first in range(0, len(sims), batch):  # in batches: no thundering herd on the broker
                group = sims[first:first + batch]
                for sim in group:
                    sim.client.start()
                _wait(lambda g=group: all(s.client.connected for s in g), timeout_s, 0.05)
            conn.send(sum(s.client.connected for s in sims))
        elif command == "outcomes":
            for sim in sims:
                for _ in range(int(argument)):
                    sim.client.publish(Outcome(branch_id=sim.branch_id, arrival_id=str(uuid.uuid4()),
                                               visit_id=str(uuid.uuid4()), customer_id="C0000", rm_id="RM-01",
                                               device_id="pad-1", result="interested"))
            conn.send(True)
        elif command == "stats":
            conn.send({"connected": sum(s.client.connected for s in sims),
                       "repeated_erasure_messages": sum(s.repeats for s in sims),
                       "duplicate_deliveries": sum(s.receiver.stats().get("duplicates", 0) for s in sims),
                       "accepted": sum(s.receiver.stats().get("accepted", 0) for s in sims),
                       "gallery_versions": dict(Counter(s.version for s in sims)),
                       "rss_kb": _rss_kb(os.getpid()), "threads": threading.active_count()})
        elif command == "stop":
            stoppers = [threading.Thread(target=s.client.stop, kwargs={"drain_s": 0}) for s in sims]
            for t in stoppers:
                t.start()
            for t in stoppers:
                t.join(30)
            conn.send(True)
            return


class Workers:
    """The simulated branches, spread over a few processes."""

    def __init__(self, ids: list[str], port: int, secrets: Path, hq_pem: bytes, *, processes: int,
                 timeout_s: float) -> None:
        context = multiprocessing.get_context("spawn")
        self.pipes: list[Connection] = []
        self.procs: list[Any] = []
        for n in range(processes):
            mine = ids[n::processes]
            if not mine:
                continue
            parent, child = context.Pipe()
            spec = WorkerSpec(mine, port, str(secrets), hq_pem, timeout_s)
            proc = context.Process(target=_worker, args=(child, spec), daemon=True)
            proc.start()
            self.pipes.append(parent)
            self.procs.append(proc)
        self.keys: dict[str, bytes] = {}
        for pipe in self.pipes:
            self.keys.update(pipe.recv())

    def ask(self, command: str, argument: Any = None) -> list[Any]:
        for pipe in self.pipes:
            pipe.send((command, argument))
        return [pipe.recv() for pipe in self.pipes]

    def stats(self) -> dict[str, Any]:
        parts = self.ask("stats")
        versions: Counter[str] = Counter()
        for part in parts:
            versions.update({str(k): v for k, v in part["gallery_versions"].items()})
        out = {k: sum(p[k] for p in parts) for k in ("connected", "repeated_erasure_messages",
                                                     "duplicate_deliveries", "accepted", "rss_kb", "threads")}
        out["gallery_versions"] = dict(versions)
        return out

    def stop(self) -> None:
        try:
            self.ask("stop")
        finally:
            for proc in self.procs:
                proc.join(30)
                if proc.is_alive():
                    proc.kill()


class FleetBench:
    def __init__(self, branches: int, erasures: int, outcomes: int, workdir: Path, *, database: bool,
                 timeout_s: float, processes: int | None = None) -> None:
        self.n, self.n_erasures, self.n_outcomes = branches, erasures, outcomes
        self.dir, self.database, self.timeout_s = workdir, database, timeout_s
        self.processes = processes or max(1, min(8, -(-branches // 125)))
        self.result: dict[str, Any] = {"branches": branches, "erasures_issued": erasures,
                                       "outcomes_per_branch": outcomes, "branch_processes": self.processes}

    def run(self) -> dict[str, Any]:
        ids = [f"b{n:05d}" for n in range(self.n)]
        central = write_central_broker(self.dir / "central", port=_free_port(), branches=ids, iterations=1000,
                                       broker_user=_current_user(), persistence=False)
        for user, password in central.passwords.items():
            secret = self.dir / "secrets" / f"{user}.password"
            create_private(secret)
            secret.write_text(password, encoding="utf-8")
        init_keys(self.dir / "hq-signing.key", self.dir / "hq-data.key", self.dir / "hq-signing.pub.pem")
        self.signing = load_signing_key(self.dir / "hq-signing.key")
        # the branch processes start before this one has threads of its own
        workers = Workers(ids, central.port, self.dir / "secrets", public_pem(self.signing.public_key()),
                          processes=self.processes, timeout_s=self.timeout_s)
        log = (self.dir / "mosquitto.log").open("wb")
        binary = "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else "mosquitto"
        broker = subprocess.Popen([binary, "-c", str(central.conf)], stdout=log, stderr=subprocess.STDOUT)
        pg = TempPostgres() if self.database else None
        try:
            if pg is not None:
                pg.start()
            _wait(lambda: _listening(central.port), 10, 0.05)
            registry, service = self._head_office(central)
            self._register(registry, workers)
            self._connect(workers)
            collector = self._collector(central, pg) if pg is not None else None
            self._packages(registry, service)
            workers.ask("outcomes", self.n_outcomes)
            self._erasures(registry, service, workers, broker.pid)
            if collector is not None and pg is not None:
                self._collected(collector, pg)
            stats = workers.stats()
            self.result["branches_side"] = stats
            self.result["memory_kb"] = {"mosquitto": _rss_kb(broker.pid),
                                        "head_office_process": _rss_kb(os.getpid()),
                                        "branch_processes": stats["rss_kb"],
                                        "postgres": _rss_kb(pg.pid() or 0) if pg is not None else None}
            self.result["hq_service"] = dict(service.counts)
            service.client.stop(drain_s=0)
            if collector is not None:
                collector.stop()
            registry.close()
        finally:
            workers.stop()
            broker.terminate()
            broker.wait(30)
            log.close()
            if pg is not None:
                pg.remove()
        return self.result

    def _head_office(self, central: Any) -> tuple[Registry, HqService]:
        registry = Registry(self.dir / "hq.db", load_data_key(self.dir / "hq-data.key"))
        client = hq_client(_login(central.port, "hq-app", self.dir / "secrets" / "hq-app.password",
                                  max_inflight=1000))
        client.start()
        if not client.wait_connected(30):
            raise HqError("head office could not connect to the central broker")
        return registry, HqService(registry, client, resend_s=30.0)

    def _register(self, registry: Registry, workers: Workers) -> None:
        """Every branch's key; a few customers each branch serves (random 128-d templates)."""
        rng = np.random.default_rng(7)
        customers = [f"C{n:04d}" for n in range(max(3, self.n_erasures + 2))]
        for cid in customers:
            v = rng.normal(size=CONTRACT.dimension).astype("<f4")
            registry.enrol(cid, display_name=f"Customer {cid}", tier="private", assigned_rm="RM-01",
                           consent_channel="kyc", consent_time="2026-01-05T10:00:00+08:00",
                           model_pack=CONTRACT.model_pack, recognizer_sha256=CONTRACT.recognizer_sha256,
                           templates=[(hashlib.sha256(cid.encode()).hexdigest(),
                                       (v / np.linalg.norm(v)).astype("<f4").tobytes())])
        for branch, pem in workers.keys.items():
            registry.add_branch(branch, pem)
            registry.assign(branch, customers)

    def _connect(self, workers: Workers) -> None:
        started = time.monotonic()
        connected = sum(workers.ask("connect"))
        self.result["connect_s"] = round(time.monotonic() - started, 2)
        self.result["connected"] = connected
        if connected < self.n:
            raise HqError(f"only {connected} of {self.n} branches connected")

    def _collector(self, central: Any, pg: TempPostgres) -> Collector:
        collector = Collector(pg.dsn, _login(central.port, "hq-collector",
                                             self.dir / "secrets" / "hq-collector.password"),
                              self.dir / "collector-spool.db")
        collector.start()
        return collector

    def _packages(self, registry: Registry, service: HqService) -> None:
        started = time.monotonic()
        for branch in registry.branches():
            build_package(registry, branch, CONTRACT, self.signing, self.dir / "packages")
        built = time.monotonic()

        def applied() -> bool:
            service.tick()
            return all(p.state == "applied" for p in registry.packages())

        ok = _wait(applied, self.timeout_s, 0.1)
        states = Counter(p.state for p in registry.packages())
        self.result["packages"] = {"build_s": round(built - started, 2),
                                   "delivered_s": round(time.monotonic() - built, 2),
                                   "states": dict(states), "all_applied": ok}

    def _erasures(self, registry: Registry, service: HqService, workers: Workers, broker_pid: int) -> None:
        before = workers.stats()["accepted"]
        cpu_before = _cpu_s(broker_pid)
        started = time.monotonic()
        issued = [registry.issue_erasure(f"C{n:04d}", "consent withdrawn") for n in range(self.n_erasures)]

        def confirmed() -> bool:
            service.tick()
            return all(e["complete"] for e in registry.erasure_report())

        complete = _wait(confirmed, self.timeout_s, 0.05)
        elapsed = time.monotonic() - started
        latencies = []
        for e in registry.erasure_report():
            t0 = datetime.fromisoformat(e["issued_at"])
            latencies += [(datetime.fromisoformat(c["acked_at"]) - t0).total_seconds()
                          for c in e["confirmations"]]
        expected = self.n * len(issued)
        stats = workers.stats()
        sent, acks = service.counts["erasures_sent"], service.counts["erasure_acks"]
        self.result["erasures"] = {
            "complete": complete, "expected_confirmations": expected, "confirmed": len(latencies),
            "lost": expected - len(latencies),
            "repeated_erasure_messages": stats["repeated_erasure_messages"],
            "duplicate_deliveries": stats["duplicate_deliveries"],
            "resent": service.counts["erasures_resent"],
            "confirm_s": {"p50": round(_percentile(latencies, 0.5), 3),
                          "p95": round(_percentile(latencies, 0.95), 3),
                          "max": round(max(latencies, default=0.0), 3),
                          "mean": round(statistics.fmean(latencies), 3) if latencies else 0.0},
            "all_confirmed_s": round(elapsed, 3),
        }
        messages = sent + (stats["accepted"] - before) + acks
        self.result["throughput"] = {
            "erasure_phase_messages": messages,
            "broker_messages_per_s": round(messages / elapsed, 1) if elapsed else 0.0,
            "broker_cpu_s": round(_cpu_s(broker_pid) - cpu_before, 2)}

    def _collected(self, collector: Collector, pg: TempPostgres) -> None:
        expected = self.n * self.n_outcomes
        started = time.monotonic()

        def count() -> tuple[int, int]:
            with psycopg.connect(pg.dsn) as conn:
                row = conn.execute("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM outcomes").fetchone()
            return (int(row[0]), int(row[1])) if row else (0, 0)

        _wait(lambda: count()[0] >= expected, self.timeout_s, 0.5)
        rows, distinct = count()
        stats = collector.stats()
        self.result["outcomes"] = {"published": expected, "in_database": rows, "lost": expected - distinct,
                                   "duplicated": rows - distinct,
                                   "device_status_rows": stats.get("device_status", 0)}
        kinds = ("outcomes", "device_status", "duplicates", "stale")
        written = sum(v for k, v in stats.items() if k in kinds)
        self.result["throughput"]["collector_rows_written"] = written
        self.result["throughput"]["collector_wait_s"] = round(time.monotonic() - started, 2)


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _current_user() -> str:
    return getpass.getuser()


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("bench", help="benchmarks: `bench fleet` (simulated branches, central broker)")
    inner = parser.add_subparsers(dest="bench_command", required=True, metavar="BENCH")
    fleet = inner.add_parser("fleet", help="N simulated branches: packages, erasures, outcomes")
    fleet.add_argument("--branches", type=int, default=100, help="simulated branches")
    fleet.add_argument("--erasures", type=int, default=3, help="erasures issued (each to every branch)")
    fleet.add_argument("--outcomes", type=int, default=5, help="RM outcomes published per branch")
    fleet.add_argument("--no-db", action="store_true", help="skip PostgreSQL and the collector")
    fleet.add_argument("--timeout", type=float, default=300.0, help="give up on a phase after this long")
    fleet.add_argument("--json", action="store_true", help="print the figures as JSON")
    fleet.set_defaults(func=run)


def run(args: argparse.Namespace, cfg: HqConfig) -> int:
    if args.branches < 1:
        raise HqError("--branches must be at least 1")
    with tempfile.TemporaryDirectory(prefix="hq-bench-") as tmp:
        workdir = Path(tmp)
        os.chmod(workdir, 0o755)  # the broker may run as another user
        result = FleetBench(args.branches, args.erasures, args.outcomes, workdir, database=not args.no_db,
                            timeout_s=args.timeout).run()
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        e = result["erasures"]
        print(f"{result['branches']} branches: erasures confirmed {e['confirmed']}/"
              f"{e['expected_confirmations']}, p50 {e['confirm_s']['p50']} s, p95 {e['confirm_s']['p95']} s, "
              f"max {e['confirm_s']['max']} s; lost {e['lost']}")
    ok = result["erasures"]["lost"] == 0
    if "outcomes" in result:
        ok = ok and result["outcomes"]["lost"] == 0 and result["outcomes"]["duplicated"] == 0
    return 0 if ok else 1
