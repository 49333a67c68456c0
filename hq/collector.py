"""The outcome and fleet collector: the central broker in, the data platform's PostgreSQL out.

It subscribes (persistent session, QoS 1) to what the branch bridges bring in: RM outcomes,
device status, each branch's fleet state, daily arrival counts and purchase links.  Each
message the receiver accepts is first written to a local spool (SQLite, synchronous) before
the broker gets its acknowledgement; a writer thread moves the spool into PostgreSQL in
batches, one transaction each, and deletes a batch from the spool only after the commit.  So:

- the collector stopped or killed: the broker keeps its messages (persistent session) and
  the spool keeps what was acknowledged but not yet written;
- PostgreSQL down or restarting: the writer retries with back-off; the spool grows;
- a message delivered twice (a resend, a batch written but not yet deleted when the
  collector died): events are keyed by their event id (``ON CONFLICT DO NOTHING``), state
  (status, fleet state, counts) by what it describes with the newest ``sent_at`` winning.

What is written is only what the data platform may hold (docs/hq.md): no customer ids, no
names, no notes, no faces, no embeddings.  Outcomes keep the visit, RM, device, result and
products; the customer id and the RM's free-text note are dropped here.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg

from hq.config import HqConfig
from hq.errors import HqError
from mqtt.client import BranchClient, Identity
from mqtt.codec import decode, encode
from mqtt.config import MqttConfig
from mqtt.dedup import SeenIds
from mqtt.files import create_private
from mqtt.messages import ArrivalCounts, DeviceStatus, FleetState, Message, Outcome, PurchaseLink
from mqtt.receiver import Delivery, Receiver
from mqtt.topics import every_branch, split_topic

log = logging.getLogger(__name__)

HOME = "hq"
UNLIMITED = 1e12  # messages per second
SUBSCRIPTIONS = ("outcomes/+", "status/+", "fleet/state", "fleet/counts", "fleet/purchases")

SCHEMA = """
CREATE TABLE IF NOT EXISTS outcomes (
    event_id uuid PRIMARY KEY, branch_id text NOT NULL, visit_id uuid NOT NULL, arrival_id uuid NOT NULL,
    rm_id text NOT NULL, device_id text NOT NULL, result text NOT NULL, product_ids text[] NOT NULL,
    follow_up_on date, sent_at timestamptz NOT NULL, received_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS purchase_links (
    event_id uuid PRIMARY KEY, branch_id text NOT NULL, visit_id text NOT NULL, rm_id text NOT NULL,
    product_id text NOT NULL, segment text NOT NULL, shown_on date NOT NULL, purchased_on date NOT NULL,
    amount numeric(18, 2) NOT NULL, sent_at timestamptz NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS arrival_counts (
    branch_id text NOT NULL, day date NOT NULL, arrivals integer NOT NULL, event_id uuid NOT NULL,
    sent_at timestamptz NOT NULL, PRIMARY KEY (branch_id, day)
);
CREATE TABLE IF NOT EXISTS shown_counts (
    branch_id text NOT NULL, day date NOT NULL, rm_id text NOT NULL, product_id text NOT NULL,
    segment text NOT NULL, shown integer NOT NULL, PRIMARY KEY (branch_id, day, rm_id, product_id, segment)
);
CREATE TABLE IF NOT EXISTS device_status (
    branch_id text NOT NULL, device_id text NOT NULL, role text NOT NULL, state text NOT NULL,
    version text NOT NULL, outbox_depth integer NOT NULL, analysed_fps real NOT NULL,
    last_arrival_at timestamptz, sent_at timestamptz NOT NULL, PRIMARY KEY (branch_id, device_id)
);
CREATE TABLE IF NOT EXISTS fleet_state (
    branch_id text PRIMARY KEY, model_pack text NOT NULL, recognizer_sha256 text NOT NULL,
    gallery_version integer NOT NULL, templates integer NOT NULL, last_erasure_id text,
    last_erasure_at timestamptz, sent_at timestamptz NOT NULL
);
"""


def ensure_schema(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(20261202)")  # two collectors starting at once
        for statement in SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)


# --- the spool ---------------------------------------------------------------------------------


class Spool:
    """Accepted messages not yet in PostgreSQL (thread-safe, durable, 0600)."""

    def __init__(self, path: Path | str) -> None:
        create_private(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute("CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
                         "topic TEXT NOT NULL, payload BLOB NOT NULL)")

    def put(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self._db.execute("INSERT INTO spool (topic, payload) VALUES (?, ?)", (topic, payload))

    def batch(self, limit: int) -> list[tuple[int, str, bytes]]:
        with self._lock:
            rows = self._db.execute("SELECT seq, topic, payload FROM spool ORDER BY seq LIMIT ?", (limit,))
            return [(int(r[0]), str(r[1]), bytes(r[2])) for r in rows.fetchall()]

    def remove_through(self, seq: int) -> None:
        with self._lock:
            self._db.execute("DELETE FROM spool WHERE seq <= ?", (seq,))

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM spool").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


# --- writing one batch ---------------------------------------------------------------------------


def write_batch(conn: psycopg.Connection[Any], messages: Iterable[tuple[str, Message]]) -> Counter[str]:
    """Write ``(branch, message)`` pairs in one transaction; counts of rows written by kind."""
    written: Counter[str] = Counter()
    with conn.transaction():
        for branch, message in messages:
            written[_write(conn, branch, message)] += 1
    return written


def _write(conn: psycopg.Connection[Any], branch: str, m: Message) -> str:
    if isinstance(m, Outcome):
        cur = conn.execute(
            "INSERT INTO outcomes (event_id, branch_id, visit_id, arrival_id, rm_id, device_id, result, "
            "product_ids, follow_up_on, sent_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (event_id) DO NOTHING",
            (m.id, branch, m.visit_id, m.arrival_id, m.rm_id, m.device_id, m.result, m.product_ids,
             m.follow_up_on, m.sent_at))
        return "outcomes" if cur.rowcount else "duplicates"
    if isinstance(m, PurchaseLink):
        cur = conn.execute(
            "INSERT INTO purchase_links (event_id, branch_id, visit_id, rm_id, product_id, segment, "
            "shown_on, purchased_on, amount, sent_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (event_id) DO NOTHING",
            (m.id, branch, m.visit_id, m.rm_id, m.product_id, m.segment, m.shown_on, m.purchased_on,
             round(m.amount, 2), m.sent_at))
        return "purchase_links" if cur.rowcount else "duplicates"
    if isinstance(m, ArrivalCounts):
        return _write_counts(conn, branch, m)
    if isinstance(m, DeviceStatus):
        cur = conn.execute(
            "INSERT INTO device_status VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (branch_id, device_id) DO UPDATE SET role = excluded.role, state = excluded.state, "
            "version = excluded.version, outbox_depth = excluded.outbox_depth, "
            "analysed_fps = excluded.analysed_fps, last_arrival_at = excluded.last_arrival_at, "
            "sent_at = excluded.sent_at WHERE device_status.sent_at < excluded.sent_at",
            (branch, m.device_id, m.role, m.state, m.version, m.outbox_depth, m.analysed_fps,
             m.last_arrival_at, m.sent_at))
        return "device_status" if cur.rowcount else "stale"
    if isinstance(m, FleetState):
        cur = conn.execute(
            "INSERT INTO fleet_state VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (branch_id) DO UPDATE SET model_pack = excluded.model_pack, "
            "recognizer_sha256 = excluded.recognizer_sha256, gallery_version = excluded.gallery_version, "
            "templates = excluded.templates, last_erasure_id = excluded.last_erasure_id, "
            "last_erasure_at = excluded.last_erasure_at, sent_at = excluded.sent_at "
            "WHERE fleet_state.sent_at < excluded.sent_at",
            (branch, m.model_pack, m.recognizer_sha256, m.gallery_version, m.templates, m.last_erasure_id,
             m.last_erasure_at, m.sent_at))
        return "fleet_state" if cur.rowcount else "stale"
    return "ignored"


def _write_counts(conn: psycopg.Connection[Any], branch: str, m: ArrivalCounts) -> str:
    cur = conn.execute(
        "INSERT INTO arrival_counts VALUES (%s, %s, %s, %s, %s) ON CONFLICT (branch_id, day) DO UPDATE "
        "SET arrivals = excluded.arrivals, event_id = excluded.event_id, sent_at = excluded.sent_at "
        "WHERE arrival_counts.sent_at < excluded.sent_at", (branch, m.day, m.arrivals, m.id, m.sent_at))
    if not cur.rowcount:
        return "stale"
    conn.execute("DELETE FROM shown_counts WHERE branch_id = %s AND day = %s", (branch, m.day))
    with conn.cursor() as c:
        c.executemany("INSERT INTO shown_counts VALUES (%s, %s, %s, %s, %s, %s)",
                      [(branch, m.day, s.rm_id, s.product_id, s.segment, s.shown) for s in m.shown])
    return "arrival_counts"


# --- the collector ---------------------------------------------------------------------------------


class Collector:
    def __init__(self, dsn: str, mqtt: MqttConfig, spool_path: Path | str, *, batch: int = 500) -> None:
        self.dsn, self.batch = dsn, batch
        self.spool = Spool(spool_path)
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        # De-duplication by event id happens in PostgreSQL: an in-memory seen-set only spares
        # the work (a persistent one could drop a message acknowledged-as-seen but not spooled).
        # No per-device rate limit here: device ids repeat across branches (every branch has
        # its rm-1), and what a receiver drops is lost; each branch's edge limits its devices.
        receiver = Receiver(SeenIds(":memory:"), handler=self._accept,
                            max_payload_bytes=mqtt.max_payload_bytes, rate_per_s=UNLIMITED, burst=2**31)
        self.client = BranchClient(mqtt, Identity(HOME, mqtt.device_id, "central"), receiver=receiver,
                                   subscriptions=tuple(every_branch(leaf) for leaf in SUBSCRIPTIONS))
        self._writer = threading.Thread(target=self._run_writer, name="collector-writer", daemon=True)

    def _accept(self, delivery: Delivery) -> None:
        """Network thread: the message is in the spool before the broker is acknowledged."""
        self.spool.put(delivery.topic, encode(delivery.message))

    def start(self) -> None:
        self._writer.start()
        self.client.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.client.stop(drain_s=0.5)
        self._stop.set()
        self._writer.join(timeout)
        self.spool.close()

    def _run_writer(self) -> None:
        conn: psycopg.Connection[Any] | None = None
        backoff = 0.2
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.dsn, connect_timeout=3)
                    ensure_schema(conn)
                    backoff = 0.2
                if not self.drain(conn):
                    self._stop.wait(0.1)
            except psycopg.OperationalError as err:  # the database is down or restarting
                self._count("db_unavailable")
                log.warning("collector: PostgreSQL unavailable (%s); retrying in %.1f s",
                            str(err).splitlines()[0][:200] if str(err) else type(err).__name__, backoff)
                if conn is not None:
                    conn.close()
                conn = None
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 5.0)
            except Exception:  # anything else: keep the spool, try again
                self._count("writer_errors")
                log.exception("collector: writing failed; retrying")
                self._stop.wait(1.0)
        if conn is not None:
            conn.close()

    def drain(self, conn: psycopg.Connection[Any]) -> int:
        """Write one batch from the spool; how many messages it held."""
        rows = self.spool.batch(self.batch)
        if not rows:
            return 0
        messages = []
        for _, topic, payload in rows:
            try:
                branch, _ = split_topic(topic)
                messages.append((branch, decode(payload)))
            except Exception:  # it was checked before it was spooled: count, never block the spool
                self._count("undecodable")
        written = write_batch(conn, messages)
        self.spool.remove_through(rows[-1][0])
        with self._lock:
            self.counts.update(written)
        return len(rows)

    def _count(self, key: str) -> None:
        with self._lock:
            self.counts[key] += 1

    def stats(self) -> dict[str, Any]:
        with self._lock:
            out: dict[str, Any] = dict(self.counts)
        out["spooled"] = len(self.spool)
        out["client"] = self.client.stats()
        return out


# --- command line ------------------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("collect", help="collect outcomes, counts and fleet status into PostgreSQL")
    parser.add_argument("--spool", type=Path, default=Path("collector-spool.db"),
                        help="local spool of messages not yet in PostgreSQL")
    parser.add_argument("--seconds", type=float, help="stop after this many seconds")
    parser.add_argument("--json", action="store_true", help="print the counts as JSON on exit")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, cfg: HqConfig) -> int:
    if not cfg.postgres.dsn:
        raise HqError("[postgres] dsn is not set")
    collector = Collector(cfg.postgres.dsn, cfg.mqtt, args.spool)
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    collector.start()
    started = time.monotonic()
    try:
        while not stop.wait(0.5):
            if args.seconds and time.monotonic() - started >= args.seconds:
                break
    finally:
        collector.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if args.json:
        print(json.dumps(collector.stats(), indent=2, default=str))
    return 0
