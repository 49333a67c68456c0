"""The SQLite store: schema, consent, templates by model pack, erasure, audit chain.

Store mechanics are tested here with random unit vectors standing in for
embeddings; enrolment over the real models and photos is in test_enrol.py.
"""

from __future__ import annotations

import os
import sqlite3
import stat
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.core.errors import StoreError
from edge.store.base import parse_time, utc_now
from edge.store.crypto import KEY_BYTES, KeyRing
from edge.store.database import MIGRATIONS, Store

ACTOR = "test"
NAME = "Zhang Wei-Test"


@pytest.fixture
def keys() -> KeyRing:
    return KeyRing(os.urandom(KEY_BYTES))


@pytest.fixture
def store(tmp_path: Path, keys: KeyRing):  # -> Iterator[Store]
    with Store.open(tmp_path / "branch.db", keys) as opened:
        yield opened


def unit_vectors(n: int, d: int = 128, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def enrol_customer(store: Store, cid: str, vectors: np.ndarray, pack: str = "default") -> None:
    store.upsert_customer(cid, ACTOR, display_name=NAME, tier="gold")
    store.record_consent(cid, "paper-form", utc_now(), ACTOR)
    for i, vector in enumerate(vectors):
        photo = f"fake jpeg of {cid} #{i}".encode()
        photo_id, _ = store.add_photo(cid, photo)
        store.add_template(cid, pack, vector, quality={"blur": 100.0},
                           source_sha256=f"{cid}-{i}".ljust(64, "0"), source_name=f"{i}.jpg",
                           photo_id=photo_id)


def raw_file_bytes(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_new_store_is_private_wal_secure_delete_and_versioned(tmp_path: Path, store: Store) -> None:
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    pragma = store._conn.execute
    assert pragma("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert pragma("PRAGMA secure_delete").fetchone()[0] == 1
    assert pragma("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert pragma("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_wrong_key_is_refused_at_open_naming_the_key_id(tmp_path: Path, keys: KeyRing) -> None:
    Store.open(tmp_path / "b.db", keys).close()
    with pytest.raises(StoreError, match=f"encrypted with key id {keys.primary_id}"):
        Store.open(tmp_path / "b.db", KeyRing(os.urandom(KEY_BYTES)))


def test_not_a_database_and_future_schema_are_clear_errors(tmp_path: Path, keys: KeyRing) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable Branch Edge database"):
        Store.open(junk, keys)
    newer = tmp_path / "newer.db"
    Store.open(newer, keys).close()
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    with pytest.raises(StoreError, match="newer than this program"):
        Store.open(newer, keys)
    with pytest.raises(StoreError, match="does not exist"):
        Store.open(tmp_path / "absent.db", keys, create=False)


def test_customer_upsert_keeps_unchanged_fields_and_audits_without_names(store: Store) -> None:
    store.upsert_customer("C001", ACTOR, display_name=NAME, tier="gold", assigned_rm="rm7")
    updated = store.upsert_customer("C001", ACTOR, tier="platinum")
    assert (updated.display_name, updated.tier, updated.assigned_rm) == (NAME, "platinum", "rm7")
    actions = [(e["action"], e["details"]) for e in store.audit_entries("C001")]
    assert actions == [("customer_created", {"fields": ["assigned_rm", "display_name", "tier"]}),
                       ("customer_updated", {"fields": ["tier"]})]
    assert NAME not in str(store.audit_entries())
    with pytest.raises(StoreError, match="invalid customer id"):
        store.upsert_customer("../etc", ACTOR)


def test_consent_is_idempotent_and_time_checked(store: Store) -> None:
    store.upsert_customer("C001", ACTOR)
    first = store.record_consent("C001", "paper-form", utc_now(), ACTOR)
    again = store.record_consent("C001", "app", utc_now(), ACTOR)
    assert again == first
    store.upsert_customer("C002", ACTOR)
    with pytest.raises(StoreError, match="in the future"):
        store.record_consent("C002", "app", utc_now() + timedelta(days=1), ACTOR)
    with pytest.raises(StoreError, match="channel is empty"):
        store.record_consent("C002", "  ", utc_now(), ACTOR)
    assert store.active_consent("C002") is None


def test_templates_round_trip_per_pack_and_are_idempotent(store: Store) -> None:
    vectors = unit_vectors(3)
    enrol_customer(store, "C001", vectors)
    enrol_customer(store, "C002", unit_vectors(2, seed=1), pack="fast")
    ids, matrix = store.load_templates("default")
    assert ids == ["C001"] * 3
    assert matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix, vectors)
    assert store.load_templates("fast")[0] == ["C002", "C002"]
    assert store.load_templates("buffalo_l", dim=512)[1].shape == (0, 512)
    generation = store.gallery_generation()
    again = store.add_template("C001", "default", vectors[0], quality={},
                               source_sha256="C001-0".ljust(64, "0"), source_name="0.jpg")
    assert again[1] is False
    assert store.gallery_generation() == generation
    with pytest.raises(StoreError, match="another customer"):
        store.add_template("C002", "default", vectors[0], quality={},
                           source_sha256="C001-0".ljust(64, "0"), source_name="x.jpg")
    with pytest.raises(StoreError, match="expected 512"):
        store.load_templates("default", dim=512)


def test_photo_round_trip_and_duplicate_of_other_customer(store: Store) -> None:
    enrol_customer(store, "C001", unit_vectors(1))
    photo_id, created = store.add_photo("C001", b"fake jpeg of C001 #0")
    assert (created, store.load_photo(photo_id)) == (False, b"fake jpeg of C001 #0")
    store.upsert_customer("C002", ACTOR)
    with pytest.raises(StoreError, match="another customer"):
        store.add_photo("C002", b"fake jpeg of C001 #0")


def test_blob_swapped_between_customers_does_not_decrypt(store: Store) -> None:
    enrol_customer(store, "C001", unit_vectors(1))
    enrol_customer(store, "C002", unit_vectors(1, seed=5))
    conn = store._conn
    stolen = conn.execute("SELECT embedding FROM templates WHERE customer_id='C002'").fetchone()[0]
    conn.execute("UPDATE templates SET embedding = ? WHERE customer_id = 'C001'", (stolen,))
    with pytest.raises(StoreError, match="failed authentication"):
        store.load_templates("default")


def test_stolen_database_holds_no_face_data(tmp_path: Path, store: Store) -> None:
    vectors = unit_vectors(4)
    enrol_customer(store, "C001", vectors)
    store.close()
    raw = raw_file_bytes(store.path)
    for vector in vectors:
        assert vector.astype("<f4").tobytes()[:32] not in raw
    assert b"fake jpeg of C001" not in raw
    with sqlite3.connect(store.path) as conn:
        blobs = [bytes(b) for (b,) in conn.execute("SELECT embedding FROM templates")]
    thief = KeyRing(os.urandom(KEY_BYTES))
    with pytest.raises(StoreError, match="key id"):
        thief.decrypt(blobs[0], b"")


def test_erase_removes_everything_in_one_go_and_scrubs_the_file(store: Store) -> None:
    enrol_customer(store, "C001", unit_vectors(3))
    enrol_customer(store, "C002", unit_vectors(2, seed=9))
    conn = store._conn
    blobs = [bytes(b) for (b,) in conn.execute(
        "SELECT embedding FROM templates WHERE customer_id='C001' UNION ALL "
        "SELECT ciphertext FROM photos WHERE customer_id='C001'")]
    assert all(b[-32:] in raw_file_bytes(store.path) for b in blobs)
    generation = store.gallery_generation()
    erasure = store.erase_customer("C001", "officer-1", "withdrawal")
    assert (erasure.templates_removed, erasure.photos_removed, erasure.consents_withdrawn) == (3, 3, 1)
    assert erasure.scrubbed
    assert store.load_templates("default")[0] == ["C002", "C002"]
    assert store.active_consent("C001") is None
    assert store.gallery_generation() > generation
    raw = raw_file_bytes(store.path)
    assert not any(b[-32:] in raw for b in blobs)
    [record] = store.erasures("C001")
    assert (record["templates_removed"], record["actor"]) == (3, "officer-1")
    last = store.audit_entries("C001")[-1]
    assert (last["action"], last["details"]["templates_removed"]) == ("customer_erased", 3)
    with pytest.raises(StoreError, match="predates the withdrawal"):
        store.record_consent("C001", "paper-form", parse_time("2020-01-01T00:00:00Z"), ACTOR)
    with pytest.raises(StoreError, match="unknown customer id 'C404'"):
        store.erase_customer("C404", ACTOR)


def test_erase_is_atomic(store: Store) -> None:
    enrol_customer(store, "C001", unit_vectors(2))
    store._conn.execute("CREATE TRIGGER boom BEFORE INSERT ON erasures "
                        "BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(StoreError, match="disk full; nothing was changed"):
        store.erase_customer("C001", ACTOR)
    assert len(store.load_templates("default")[0]) == 2
    assert store.active_consent("C001") is not None


def test_audit_is_append_only(store: Store) -> None:
    store.upsert_customer("C001", ACTOR)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store._conn.execute("UPDATE audit SET actor = 'mallory'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        store._conn.execute("DELETE FROM audit")


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 8), victim=st.integers(0, 7),
       column=st.sampled_from(["time", "actor", "action", "subject", "details", "prev_hash", "mac"]))
def test_audit_chain_detects_any_edit(tmp_path_factory: pytest.TempPathFactory, n: int,
                                      victim: int, column: str) -> None:
    path = tmp_path_factory.mktemp("audit") / "a.db"
    with Store.open(path, KeyRing(b"a" * KEY_BYTES)) as store:
        for i in range(n):
            store.audit(ACTOR, "test", f"C{i:03d}", {"i": i})
        assert store.verify_audit() is None
        seq = victim % n + 1
        store._conn.execute("DROP TRIGGER audit_no_update")  # what an attacker with file access can do
        store._conn.execute(f"UPDATE audit SET {column} = {column} || 'x' WHERE seq = ?", (seq,))
        assert store.verify_audit() == seq


def test_reader_is_not_blocked_by_a_writer(store: Store, keys: KeyRing) -> None:
    enrol_customer(store, "C001", unit_vectors(1))
    with Store.open(store.path, keys) as reader, store.transaction():
        store.upsert_customer("C002", ACTOR)
        assert reader.load_templates("default")[0] == ["C001"]
        assert reader.get_customer("C002") is None  # WAL: the reader sees the last commit
    assert store.get_customer("C002") is not None
