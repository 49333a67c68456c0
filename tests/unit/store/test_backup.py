"""`branch-edge backup` / `restore`: consistent online copies that stay encrypted, and a
restore that only lands once the copy opens with the key and its audit chain verifies.
Also: a stolen database or backup file without the key yields no face data."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main
from edge.store.backup import backup_store
from edge.store.crypto import KeyRing
from edge.store.database import Store
from tests.keys_fixtures import ACTOR, PACK, Enrolled, new_key, populate, raw_bytes, real_jpegs


@pytest.fixture
def branch(tmp_path: Path, data_dir: Path) -> tuple[Path, Path, bytes, Enrolled]:
    key_path, key = new_key(tmp_path, "store.key")
    db = tmp_path / "branch.db"
    with Store.open(db, KeyRing(key)) as store:
        enrolled = populate(store, real_jpegs(data_dir, 10), customers=10, per_customer=2)
    return db, key_path, key, enrolled


def face_patterns(enrolled: Enrolled) -> list[bytes]:
    """Byte strings any plaintext face data would contain: JPEG headers and bodies, and
    runs of 4 float32 values of every template (little-endian, as stored before sealing)."""
    patterns = []
    for jpeg in enrolled.photos.values():
        patterns += [jpeg[:24], jpeg[len(jpeg) // 2 : len(jpeg) // 2 + 24]]
    for vectors in enrolled.vectors.values():
        for vector in vectors:
            raw = vector.astype("<f4").tobytes()
            patterns += [raw[i : i + 16] for i in range(0, len(raw), 512)]
    return patterns


def test_stolen_database_and_backup_hold_no_face_data_and_no_key(
        branch: tuple[Path, Path, bytes, Enrolled], tmp_path: Path) -> None:
    db, _, key, enrolled = branch
    backup_store(db, tmp_path / "copy.bak")
    patterns = face_patterns(enrolled)
    assert len(patterns) == 2 * 20 + 4 * 20
    for stolen in (raw_bytes(db), (tmp_path / "copy.bak").read_bytes()):
        assert b"JFIF" not in stolen and b"Exif" not in stolen
        assert not [p for p in patterns if p in stolen]
        assert key not in stolen and key.hex().encode() not in stolen
    # The check is not vacuous: the same patterns are found in the plaintexts.
    plain = b"".join(enrolled.photos.values())
    assert all(p in plain for p in patterns[:40])


def test_backup_is_consistent_while_the_store_is_written(
        branch: tuple[Path, Path, bytes, Enrolled], tmp_path: Path) -> None:
    db, _, key, _ = branch
    stop = threading.Event()

    def writer() -> None:
        with Store.open(db, KeyRing(key), create=False) as store:
            i = 0
            while not stop.is_set():
                store.audit(ACTOR, "busy", f"W{i}", {"i": i})
                i += 1

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        reports = [backup_store(db, tmp_path / f"b{n}.bak") for n in range(3)]
    finally:
        stop.set()
        thread.join(10)
    # backup_store itself ran the integrity check and walked the chain of each copy.
    assert reports[0].audit_entries <= reports[1].audit_entries <= reports[2].audit_entries
    for report in reports:
        assert (report.templates, report.photos) == (20, 20)
        assert stat.S_IMODE(os.stat(report.path).st_mode) == 0o600
        assert not Path(report.path + "-wal").exists()


def test_restore_refuses_to_overwrite_then_restores_and_verifies(
        branch: tuple[Path, Path, bytes, Enrolled], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    db, key_path, key, enrolled = branch
    bak = tmp_path / "branch.bak"
    assert main(["backup", "--db", str(db), "--out", str(bak), "--json"]) == 0
    made = json.loads(capsys.readouterr().out)
    assert (made["templates"], made["photos"]) == (20, 20)
    assert main(["backup", "--db", str(db), "--out", str(bak)]) == 2  # never overwrites
    capsys.readouterr()

    with Store.open(db, KeyRing(key), create=False) as store:  # a change after the backup
        store.erase_customer("C0000", ACTOR)
    restore = ["restore", "--backup", str(bak), "--db", str(db), "--key-file", str(key_path)]
    assert main(restore) == 2
    assert "without --force" in capsys.readouterr().err
    Path(f"{db}-wal").write_bytes(b"stale wal of the replaced database")
    assert main([*restore, "--force", "--json"]) == 0
    restored = json.loads(capsys.readouterr().out)
    assert (restored["templates"], restored["replaced_existing"]) == (20, True)
    assert not Path(f"{db}-wal").exists() or b"stale" not in Path(f"{db}-wal").read_bytes()
    with Store.open(db, KeyRing(key), create=False) as store:
        ids, matrix = store.load_templates(PACK)
        assert ids.count("C0000") == 2
        assert np.array_equal(matrix[:2], np.stack(enrolled.vectors["C0000"]))
        assert store.verify_audit() is None
        assert store.audit_entries("store")[-1]["action"] == "store_restored"


def test_restore_refuses_a_wrong_key_or_a_tampered_backup_and_changes_nothing(
        branch: tuple[Path, Path, bytes, Enrolled], tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    db, key_path, _, _ = branch
    bak = tmp_path / "branch.bak"
    backup_store(db, bak)
    target = tmp_path / "new-pc.db"
    other_key, _ = new_key(tmp_path, "other.key")
    assert main(["restore", "--backup", str(bak), "--db", str(target),
                 "--key-file", str(other_key)]) == 2
    assert "was encrypted with key id" in capsys.readouterr().err
    conn = sqlite3.connect(bak, isolation_level=None)
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    conn.close()
    assert main(["restore", "--backup", str(bak), "--db", str(target),
                 "--key-file", str(key_path)]) == 2
    assert "audit log broken at entry 2" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir() if "new-pc" in p.name) == []
