"""Retention: live captures leave the outbox and the PAD journal on time, old audit
entries are pruned with the hash chain still verifiable, the daemon's job runs on
its own, and ``branch-edge purge`` applies the policy on demand.  A fake clock
(``now``) stands in for the days and hours."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge import cli
from edge.config import RetentionConfig, StoreConfig
from edge.lobby.arrivals import Sighting, build_arrival
from edge.store.audit import AUDIT_CHECKPOINT_KEY
from edge.store.crypto import generate_key_file
from edge.store.customers import Customer
from edge.store.database import Store, open_configured
from edge.store.retention import RetentionJob, forget_customer, prune_audit
from mqtt.codec import encode
from mqtt.messages import Outcome, utc_now
from mqtt.outbox import Outbox
from mqtt.receiver import Delivery
from ui.state.journal import Journal

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
FACE = np.random.default_rng(3).integers(0, 255, (96, 96, 3), dtype=np.uint8)


def arrival(customer_id: str, seen_at: datetime, with_face: bool = True, ttl: timedelta | None = None):
    customer = Customer(customer_id, "Ms Example", "private", "RM-01", "", "")
    message = build_arrival("b1", customer, Sighting("lobby-1", seen_at, FACE if with_face else None))
    if ttl is not None:  # an arrival whose expiry lies beyond the capture limit
        message = type(message)(**{**vars(message), "expires_at": seen_at + ttl})
    return type(message)(**{**vars(message), "sent_at": seen_at})


def outcome(sent_at: datetime) -> Outcome:
    ids = "00000000-0000-4000-8000-000000000001"
    return Outcome(branch_id="b1", arrival_id=ids, visit_id=ids, customer_id="C1", rm_id="RM-01",
                   device_id="rm-1", result="contacted", sent_at=sent_at)


def put(outbox: Outbox, message) -> None:
    expires = message.expires_at.timestamp() if hasattr(message, "expires_at") else None
    outbox.put(message.id, "t", encode(message), expires_at=expires)


def ids_in(outbox: Outbox) -> set[str]:
    return {p.message_id for p in outbox.pending(limit=1000)}


@pytest.fixture
def store_cfg(tmp_path: Path) -> StoreConfig:
    generate_key_file(tmp_path / "k.key")
    cfg = StoreConfig(path=tmp_path / "edge.db", key_file=tmp_path / "k.key")
    with open_configured(cfg) as store:
        for n in range(5):
            store.audit("test", "something", f"C{n}", {"n": n})
    return cfg


def opener(cfg: StoreConfig):
    return lambda: open_configured(cfg, create=False)


def test_outbox_keeps_live_captures_no_longer_than_the_limit(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    day = timedelta(hours=24)
    fresh = arrival("C1", NOW - timedelta(minutes=5))                    # face, 5 min old, unexpired
    old_face = arrival("C2", NOW - day - timedelta(minutes=1), ttl=2 * day)  # face, 24h01 old
    expired = arrival("C3", NOW - timedelta(minutes=30), with_face=False)   # no face, but expired
    old_outcome = outcome(NOW - 3 * day)                                  # no face, never expires
    for message in (fresh, old_face, expired, old_outcome):
        put(outbox, message)
    job = RetentionJob(RetentionConfig(), None, outbox)

    dry = job.run_once(NOW, dry_run=True)
    assert dry.captures_removed == 2 and len(outbox) == 4

    report = job.run_once(NOW)
    assert report.captures_removed == 2
    assert ids_in(outbox) == {fresh.id, old_outcome.id}  # outcomes are never lost to retention
    # 20 minutes on, the fresh arrival has expired (15 min) and goes too.
    assert job.run_once(NOW + timedelta(minutes=20)).captures_removed == 1
    assert ids_in(outbox) == {old_outcome.id}


def test_a_shorter_limit_removes_images_sooner(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    face = arrival("C1", NOW - timedelta(hours=2), ttl=timedelta(days=1))
    put(outbox, face)
    assert RetentionJob(RetentionConfig(live_captures_h=3), None, outbox).run_once(NOW).captures_removed == 0
    assert RetentionJob(RetentionConfig(live_captures_h=1), None, outbox).run_once(NOW).captures_removed == 1
    assert len(outbox) == 0


def test_withdrawal_removes_the_customers_waiting_arrivals_only(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    mine, theirs = arrival("C1", NOW), arrival("C2", NOW)
    for message in (mine, arrival("C1", NOW), theirs, outcome(NOW)):
        put(outbox, message)
    assert forget_customer(outbox, "C1") == 2
    assert theirs.id in ids_in(outbox) and mine.id not in ids_in(outbox) and len(outbox) == 2


def test_pad_journal_deletes_arrivals_once_expired(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.db")
    live = arrival("C1", utc_now())
    journal.record(Delivery("t", live))
    journal.record(Delivery("t", arrival("C2", utc_now() - timedelta(hours=1))))  # already expired
    assert [d.message.id for d in journal.replay()] == [live.id]
    assert journal.purge(live.expires_at.timestamp()) == 1
    assert journal.replay() == []
    journal.close()


def test_audit_older_than_policy_is_pruned_and_the_chain_still_verifies(store_cfg: StoreConfig) -> None:
    later = utc_now() + timedelta(days=1826)  # every entry so far is past the 1825-day policy
    job = RetentionJob(RetentionConfig(audit_days=1825), opener(store_cfg), None)
    assert job.run_once(utc_now()).audit_removed == 0  # nothing is old yet
    dry = job.run_once(later, dry_run=True)
    with open_configured(store_cfg, create=False) as store:
        total = len(store.audit_entries())
    assert dry.audit_removed == total - 1  # the newest entry stays: the chain continues from it

    report = job.run_once(later)
    with open_configured(store_cfg, create=False) as store:
        entries = store.audit_entries()
        assert report.audit_removed == total - 1 and report.audit_checkpoint_seq == total - 1
        assert [e["seq"] for e in entries] == [total, total + 1]
        pruned = entries[-1]
        assert pruned["action"] == "audit_pruned" and pruned["details"]["through_seq"] == total - 1
        assert store.verify_audit() is None
        store.audit("test", "after", "C9", {})
        assert store.verify_audit() is None
        with pytest.raises(Exception, match="append-only"), store.transaction() as c:  # trigger is back
            c.execute("DELETE FROM audit WHERE seq = ?", (total,))


def test_tampering_after_a_prune_is_still_detected(store_cfg: StoreConfig) -> None:
    RetentionJob(RetentionConfig(), opener(store_cfg), None).run_once(utc_now() + timedelta(days=2000))
    with open_configured(store_cfg, create=False) as store:
        first = store.audit_entries()[0]["seq"]
        with store.transaction() as c:
            c.execute("DROP TRIGGER audit_no_update")
            c.execute("UPDATE audit SET details = '{\"n\":99}' WHERE seq = ?", (first,))
        assert store.verify_audit() == first


def test_audit_days_zero_keeps_the_audit_forever(store_cfg: StoreConfig) -> None:
    with open_configured(store_cfg, create=False) as store:
        assert prune_audit(store, utc_now() - timedelta(days=1), dry_run=True) == 0
    report = RetentionJob(RetentionConfig(audit_days=0), opener(store_cfg), None).run_once(
        utc_now() + timedelta(days=10_000))
    assert report.audit_removed == 0 and report.audit_checkpoint_seq == 0


def test_the_job_runs_on_its_own_until_the_daemon_stops(tmp_path: Path, store_cfg: StoreConfig) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    job = RetentionJob(RetentionConfig(interval_s=1.0), opener(store_cfg), outbox)
    stop = threading.Event()
    job.start(stop)  # as EdgeDaemon.start does with its services
    put(outbox, arrival("C1", utc_now() - timedelta(hours=1)))  # expired: the next run removes it
    deadline = utc_now() + timedelta(seconds=10)
    while len(outbox) and utc_now() < deadline:
        stop.wait(0.1)
    stop.set()
    job.stop()
    assert len(outbox) == 0 and job.runs >= 2
    assert job._thread is not None and not job._thread.is_alive()


def write_config(tmp_path: Path, store_cfg: StoreConfig, outbox: Path) -> Path:
    path = tmp_path / "edge.toml"
    path.write_text(f'[store]\npath = "{store_cfg.path}"\nkey_file = "{store_cfg.key_file}"\n'
                    f'[mqtt]\noutbox_path = "{outbox}"\n[retention]\nlive_captures_h = 1.0\n',
                    encoding="utf-8")
    return path


def test_purge_command_dry_run_then_for_real(tmp_path: Path, store_cfg: StoreConfig, capsys) -> None:
    outbox = Outbox(tmp_path / "outbox.db")
    put(outbox, arrival("C1", utc_now() - timedelta(hours=2), ttl=timedelta(days=1)))
    put(outbox, outcome(utc_now() - timedelta(hours=2)))
    outbox.close()
    config = str(write_config(tmp_path, store_cfg, tmp_path / "outbox.db"))
    assert cli.main(["purge", "--config", config, "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["dry_run"] is True and dry["captures_removed"] == 1 and dry["audit_removed"] == 0
    assert cli.main(["purge", "--config", config]) == 0
    assert "removed 1 live captures" in capsys.readouterr().out
    reopened = Outbox(tmp_path / "outbox.db")
    assert len(reopened) == 1  # the outcome stays
    reopened.close()


def test_purge_command_without_a_store_says_so(tmp_path: Path, store_cfg: StoreConfig, capsys) -> None:
    config = str(write_config(tmp_path, store_cfg, tmp_path / "no-outbox.db"))
    assert cli.main(["purge", "--config", config, "--db", str(tmp_path / "missing.db")]) == 2
    err = capsys.readouterr().err
    assert "missing.db" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "no-outbox.db").exists()  # a purge creates nothing


def test_retention_keys_are_bounded() -> None:
    from edge.config import parse_config
    from edge.core.errors import ConfigError

    with pytest.raises(ConfigError, match=r"retention\.live_captures_h"):
        parse_config({"retention": {"live_captures_h": 0}})
    with pytest.raises(ConfigError, match=r"retention\.audit_days"):
        parse_config({"retention": {"audit_days": -1}})
    assert parse_config({}).retention.live_captures_h == 24.0


def test_store_checkpoint_round_trip(store_cfg: StoreConfig) -> None:
    with open_configured(store_cfg, create=False) as store:
        assert isinstance(store, Store)
        assert prune_audit(store, utc_now() + timedelta(days=1)) == 4
        assert store.verify_audit() is None


def test_deleting_old_entries_without_the_purge_is_detected(store_cfg: StoreConfig) -> None:
    """Someone with the file deletes the oldest entries and writes a checkpoint by hand."""
    with open_configured(store_cfg, create=False) as store, store.transaction() as c:
        (digest,) = c.execute("SELECT hash FROM audit WHERE seq = 2").fetchone()
        c.execute("DROP TRIGGER audit_no_delete")
        c.execute("DELETE FROM audit WHERE seq <= 2")
        forged = json.dumps({"seq": 2, "hash": digest})
        c.execute("INSERT INTO meta VALUES (?, ?)", (AUDIT_CHECKPOINT_KEY, forged))
    with open_configured(store_cfg, create=False) as store:
        assert store.verify_audit() == 2


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3000), st.integers(1, 3000), st.booleans()), max_size=6),
       st.integers(30, 2880))
def test_a_row_goes_exactly_when_expired_or_its_image_is_too_old(rows, limit_min) -> None:
    """rows: (age in minutes, time to live in minutes, carries a face); the limit in minutes."""
    outbox = Outbox(":memory:")
    keep = set()
    for age, ttl, face in rows:
        message = arrival("C1", NOW - timedelta(minutes=age), with_face=face, ttl=timedelta(minutes=ttl))
        put(outbox, message)
        if ttl > age and not (face and age >= limit_min):
            keep.add(message.id)
    RetentionJob(RetentionConfig(live_captures_h=limit_min / 60), None, outbox).run_once(NOW)
    assert ids_in(outbox) == keep
