"""`branch-edge keys rotate`: every template and photo re-sealed under the new key, online."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main
from edge.config import StoreConfig
from edge.core.errors import StoreError
from edge.store.crypto import KeyRing, blob_key_id_of, key_id_of, load_key_ring
from edge.store.database import Store
from edge.store.rotation import rotate_store
from tests.keys_fixtures import ACTOR, PACK, Enrolled, new_key, populate, real_jpegs

CUSTOMERS, PER_CUSTOMER = 30, 4
TOTAL = CUSTOMERS * PER_CUSTOMER


@pytest.fixture
def old_store(tmp_path: Path, data_dir: Path):  # -> (db, old key, new key, enrolled)
    _, old = new_key(tmp_path, "old.key")
    _, new = new_key(tmp_path, "new.key")
    db = tmp_path / "branch.db"
    with Store.open(db, KeyRing(old)) as store:
        enrolled = populate(store, real_jpegs(data_dir, 12), CUSTOMERS, PER_CUSTOMER)
        store.set_holder_id_number("C0000", "110101199001011234", ACTOR)
    return db, old, new, enrolled


def expected_matrix(enrolled: Enrolled) -> np.ndarray:
    return np.stack([v for cid in sorted(enrolled.vectors) for v in enrolled.vectors[cid]])


class Reader(threading.Thread):
    """The daemon's side: loads the gallery and a photo in a loop while keys rotate."""

    def __init__(self, db: Path, ring: KeyRing, enrolled: Enrolled) -> None:
        super().__init__(daemon=True)
        self.db, self.ring, self.enrolled = db, ring, enrolled
        self.loads, self.errors, self.stop = 0, [], threading.Event()

    def run(self) -> None:
        expected = expected_matrix(self.enrolled)
        photo_id, jpeg = next(iter(self.enrolled.photos.items()))
        with Store.open(self.db, self.ring, create=False) as store:
            while not self.stop.is_set():
                try:
                    _, matrix = store.load_templates(PACK, dim=expected.shape[1])
                    assert np.array_equal(matrix, expected)
                    assert store.load_photo(photo_id) == jpeg
                    self.loads += 1
                except Exception as err:
                    self.errors.append(err)
                    return


def test_rotation_runs_while_the_daemon_reads_and_leaves_the_old_key_useless(old_store) -> None:
    db, old, new, enrolled = old_store
    reader = Reader(db, KeyRing(new, (old,)), enrolled)
    reader.start()
    loads_at_batch: list[int] = []
    with Store.open(db, KeyRing(new, (old,)), create=False) as store:
        report = rotate_store(store, ACTOR, batch_size=8,
                              on_batch=lambda _t, _n: loads_at_batch.append(reader.loads),
                              pause_s=0.01)
    reader.stop.set()
    reader.join(10)
    assert reader.errors == []
    assert loads_at_batch[-1] > loads_at_batch[0], "the reader made no progress during rotation"
    assert (report.templates_reencrypted, report.photos_reencrypted) == (TOTAL, TOTAL)
    assert report.batches == 2 * TOTAL // 8
    assert (report.previous_key_id, report.new_key_id) == (key_id_of(old), key_id_of(new))
    assert report.holder_ids_need_old_key == 1

    with pytest.raises(StoreError, match=f"encrypted with key id {key_id_of(new)}"):
        Store.open(db, KeyRing(old), create=False)
    with sqlite3.connect(db) as conn:
        blobs = [bytes(b) for (b,) in conn.execute(
            "SELECT embedding FROM templates UNION ALL SELECT ciphertext FROM photos")]
    assert {blob_key_id_of(b) for b in blobs} == {key_id_of(new)}
    with pytest.raises(StoreError, match="load the key with id"):
        KeyRing(old).decrypt(blobs[0], b"")
    with Store.open(db, KeyRing(new), create=False) as store:
        assert np.array_equal(store.load_templates(PACK)[1], expected_matrix(enrolled))
        assert all(store.load_photo(pid) == jpeg for pid, jpeg in enrolled.photos.items())
        with pytest.raises(StoreError, match="needs the key with id"):
            store.holder_id_matches("C0000", "110101199001011234")
        assert store.verify_audit() is None
        audit = json.dumps(store.audit_entries("store"))
    assert "key_rotated" in audit and f'"templates_reencrypted": {TOTAL}' in audit
    assert old.hex() not in audit and new.hex() not in audit


def test_an_interrupted_rotation_is_consistent_and_a_rerun_finishes(old_store) -> None:
    db, old, new, enrolled = old_store
    batches = []

    def interrupt(table: str, rows: int) -> None:
        batches.append(rows)
        if len(batches) == 3:
            raise KeyboardInterrupt

    ring = KeyRing(new, (old,))
    with Store.open(db, ring, create=False) as store, pytest.raises(KeyboardInterrupt):
        rotate_store(store, ACTOR, batch_size=10, on_batch=interrupt)
    with Store.open(db, ring, create=False) as store:
        assert store.rows_under_other_keys()["templates"] == TOTAL - 30
        assert store.key_check_id() == key_id_of(old)  # the store still expects the old key
        assert np.array_equal(store.load_templates(PACK)[1], expected_matrix(enrolled))
        report = rotate_store(store, ACTOR, batch_size=10)
    assert (report.templates_reencrypted, report.photos_reencrypted) == (TOTAL - 30, TOTAL)
    with Store.open(db, KeyRing(new), create=False) as store:
        assert store.rows_under_other_keys() == {"templates": 0, "photos": 0, "holder_ids": 1}


def test_cli_rotates_reports_json_and_a_second_run_has_nothing_to_do(
        tmp_path: Path, old_store, capsys: pytest.CaptureFixture[str]) -> None:
    db, _old, new, _ = old_store
    args = ["keys", "rotate", "--db", str(db), "--new-key", str(tmp_path / "new.key"),
            "--old-key", str(tmp_path / "old.key"), "--batch", "25", "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert (first["templates_reencrypted"], first["photos_reencrypted"]) == (TOTAL, TOTAL)
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert (second["templates_reencrypted"], second["batches"]) == (0, 0)
    assert second["previous_key_id"] == key_id_of(new)
    # Without the old key the command says which key it needs and changes nothing.
    other = tmp_path / "other.key"
    new_key(tmp_path, "other.key")
    assert main(["keys", "rotate", "--db", str(db), "--new-key", str(other),
                 "--old-key", str(tmp_path / "old.key")]) == 2
    assert f"key id {key_id_of(new)}" in capsys.readouterr().err


def test_configured_old_keys_join_the_ring_as_decrypt_only(tmp_path: Path) -> None:
    old_path, old = new_key(tmp_path, "old.key")
    new_path, new = new_key(tmp_path, "new.key")
    ring = load_key_ring(StoreConfig(key_file=new_path, old_key_files=[old_path, new_path]))
    assert (ring.primary, ring.older) == (new, (old,))
    old_path.chmod(0o644)
    with pytest.raises(StoreError, match="chmod 600"):
        load_key_ring(StoreConfig(key_file=new_path, old_key_files=[old_path]))
