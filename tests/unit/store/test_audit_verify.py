"""`branch-edge audit verify` and `audit head`: what someone with write access to the database
file can do to the audit log, and that each of it is found.

The attacker here has the file, SQLite and this module's source, but not the key file: they
can drop the append-only triggers, edit and delete rows, recompute every plain SHA-256 hash of
the chain and forge a retention checkpoint.  The MACs (keyed with the store key) and a head
recorded outside the branch are what find it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from edge.cli import main
from edge.store.audit import GENESIS_HASH
from edge.store.crypto import KeyRing
from edge.store.database import MIGRATIONS, Store
from tests.keys_fixtures import ACTOR, new_key

ENTRIES = 6


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return new_key(tmp_path, "store.key")[0]


@pytest.fixture
def audited_db(tmp_path: Path, key_file: Path) -> Path:
    db = tmp_path / "branch.db"
    with Store.open(db, KeyRing(bytes.fromhex(key_file.read_text().strip()))) as store:
        for i in range(ENTRIES):
            store.audit(ACTOR, "test_event", f"C{i:03d}", {"i": i})
    return db


def sql(db: Path, *statements: str, params: tuple = ()) -> None:
    """What someone with write access to the file can do: drop the guards, change rows."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    for statement in statements:
        conn.execute(statement, params if "?" in statement else ())
    conn.close()


def plain_hash(prev: str, row: tuple) -> str:
    """The chain's hash, recomputed the way an attacker reading the source would."""
    record = json.dumps(list(row), separators=(",", ":"))
    return hashlib.sha256((prev + record).encode("utf-8")).hexdigest()


def rechain(db: Path) -> None:
    """Recompute every plain hash and link from the start (or the checkpoint): the attack that
    made an edited log look intact while the chain was unkeyed."""
    conn = sqlite3.connect(db, isolation_level=None)
    row = conn.execute("SELECT value FROM meta WHERE key = 'audit_checkpoint'").fetchone()
    prev = json.loads(row[0])["hash"] if row else GENESIS_HASH
    query = "SELECT seq, time, actor, action, subject, details FROM audit ORDER BY seq"
    rows = conn.execute(query).fetchall()
    for r in rows:
        digest = plain_hash(prev, r)
        conn.execute("UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?", (prev, digest, r[0]))
        prev = digest
    conn.close()


def verify(db: Path, key: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> tuple[int, dict]:
    code = main(["audit", "verify", "--db", str(db), "--key-file", str(key), "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def head(db: Path, key: Path, capsys: pytest.CaptureFixture[str], out: Path | None = None) -> dict:
    code = main(["audit", "head", "--db", str(db), "--key-file", str(key),
                 *(["--out", str(out)] if out else [])])
    assert code == 0
    return dict(json.loads(capsys.readouterr().out))


def append(db: Path, key: Path, count: int, start: int = 100) -> None:
    with Store.open(db, KeyRing(bytes.fromhex(key.read_text().strip())), create=False) as store:
        for i in range(start, start + count):
            store.audit(ACTOR, "test_event", f"C{i:03d}", {"i": i})


def test_intact_log_exits_0_and_names_its_head(audited_db: Path, key_file: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, result = verify(audited_db, key_file, capsys)
    assert code == 0
    assert (result["intact"], result["entries"], result["head_seq"]) == (True, ENTRIES, ENTRIES)
    assert result["macs_verified"] == ENTRIES and len(result["head_hash"]) == len(result["head_mac"]) == 64
    assert main(["audit", "verify", "--db", str(audited_db), "--key-file", str(key_file)]) == 0
    assert "intact: 6 entries" in capsys.readouterr().out


def test_verify_needs_the_key(audited_db: Path, capsys: pytest.CaptureFixture[str],
                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BRANCH_EDGE_KEY", raising=False)
    assert main(["audit", "verify", "--db", str(audited_db)]) == 2
    assert "no encryption key" in capsys.readouterr().err


def test_edited_details_are_found_at_their_entry(audited_db: Path, key_file: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    sql(audited_db, """UPDATE audit SET details = '{"i":99}' WHERE seq = 3""")
    code, result = verify(audited_db, key_file, capsys)
    assert code == 1
    assert (result["first_broken_seq"], result["reason"]) == (3, "entry 3 was altered")
    assert main(["audit", "verify", "--db", str(audited_db), "--key-file", str(key_file)]) == 1
    assert "TAMPERED: first broken entry 3" in capsys.readouterr().out


def test_an_edit_with_every_plain_hash_recomputed_is_found_by_its_mac(
        audited_db: Path, key_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sql(audited_db, """UPDATE audit SET actor = 'someone-else', details = '{"i":99}' WHERE seq = 3""")
    rechain(audited_db)
    with sqlite3.connect(audited_db) as conn:  # the plain chain is consistent again
        assert conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0] == ENTRIES
    code, result = verify(audited_db, key_file, capsys)
    assert (code, result["intact"], result["first_broken_seq"]) == (1, False, 3)
    assert "MAC does not match" in result["reason"]


def test_the_store_itself_finds_a_rechained_edit(audited_db: Path, key_file: Path) -> None:
    """``Store.verify_audit`` (restore, the tests of other parts) checks the MACs too."""
    sql(audited_db, """UPDATE audit SET subject = 'C999' WHERE seq = 5""")
    rechain(audited_db)
    with Store.open(audited_db, KeyRing(bytes.fromhex(key_file.read_text().strip())), create=False) as store:
        assert store.verify_audit() == 5


def test_deleted_entries_with_a_forged_checkpoint_are_found(
        audited_db: Path, key_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Delete the first entries and make it look like retention did it: a checkpoint in meta
    and an ``audit_pruned`` entry that names it, with every plain hash recomputed."""
    with sqlite3.connect(audited_db) as conn:
        through, digest = conn.execute("SELECT seq, hash FROM audit WHERE seq = 3").fetchone()
        last = conn.execute("SELECT time FROM audit WHERE seq = ?", (ENTRIES,)).fetchone()[0]
    details = json.dumps({"before": last, "checkpoint_hash": digest, "entries": 3, "through_seq": through},
                         sort_keys=True, separators=(",", ":"))
    checkpoint = json.dumps({"seq": through, "hash": digest})
    sql(audited_db, "DELETE FROM audit WHERE seq <= 3",
        "INSERT INTO meta VALUES ('audit_checkpoint', ?)", params=(checkpoint,))
    sql(audited_db, "INSERT INTO audit (seq, time, actor, action, subject, details, prev_hash, hash, "
        "key_id, mac) VALUES (?, ?, 'retention', 'audit_pruned', 'audit', ?, '', '', '', '')",
        params=(ENTRIES + 1, last, details))
    rechain(audited_db)
    code, result = verify(audited_db, key_file, capsys)
    assert (code, result["intact"]) == (1, False)
    assert result["first_broken_seq"] == ENTRIES + 1 and "no MAC" in result["reason"]
    # A MAC copied from another entry does not fit either.
    sql(audited_db, "UPDATE audit SET key_id = (SELECT key_id FROM audit WHERE seq = 4), "
        "mac = (SELECT mac FROM audit WHERE seq = 4) WHERE seq = ?", params=(ENTRIES + 1,))
    code, result = verify(audited_db, key_file, capsys)
    assert (code, result["first_broken_seq"]) == (1, ENTRIES + 1)
    assert "MAC does not match" in result["reason"]


def test_deleted_entry_is_found_as_missing(audited_db: Path, key_file: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    sql(audited_db, "DELETE FROM audit WHERE seq = 4")
    code, result = verify(audited_db, key_file, capsys)
    assert (code, result["first_broken_seq"], result["reason"]) == (1, 4, "entry 4 is missing")


def test_renumbered_entries_after_a_delete_break_the_link(audited_db: Path, key_file: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # Hiding a deletion by renumbering: the hashes no longer link up.
    sql(audited_db, "DELETE FROM audit WHERE seq = 2", "UPDATE audit SET seq = seq - 1 WHERE seq > 2")
    code, result = verify(audited_db, key_file, capsys)
    assert (code, result["first_broken_seq"]) == (1, 2)


def test_truncation_after_a_recorded_head_is_found_only_against_that_head(
        audited_db: Path, key_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    recorded = head(audited_db, key_file, capsys, out=tmp_path / "head.json")
    assert recorded["seq"] == ENTRIES and recorded["key_id"] and len(recorded["mac"]) == 64
    assert json.loads((tmp_path / "head.json").read_text()) == recorded
    append(audited_db, key_file, 2)
    assert verify(audited_db, key_file, capsys, "--expect-head", str(tmp_path / "head.json"))[0] == 0
    later = head(audited_db, key_file, capsys)
    # Remove the newest entries: what is left is a valid prefix, so the chain alone says intact...
    sql(audited_db, f"DELETE FROM audit WHERE seq > {ENTRIES}")
    code, result = verify(audited_db, key_file, capsys)
    assert (code, result["intact"]) == (0, True)
    # ...but not against the head recorded before the deletion.
    code, result = verify(audited_db, key_file, capsys, "--expect-head", json.dumps(later))
    assert (code, result["intact"], result["expected_head_found"]) == (1, False, False)
    assert result["first_broken_seq"] == later["seq"] and "truncated or rolled back" in result["reason"]


def test_a_whole_file_rolled_back_to_an_old_copy_is_found_against_the_head(
        audited_db: Path, key_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    old_copy = tmp_path / "old-copy.db"
    shutil.copy(audited_db, old_copy)
    append(audited_db, key_file, 3)
    recorded = head(audited_db, key_file, capsys)
    shutil.copy(old_copy, audited_db)
    append(audited_db, key_file, 3, start=500)  # life goes on: the same seqs, other entries
    code, result = verify(audited_db, key_file, capsys, "--expect-head", json.dumps(recorded))
    assert (code, result["first_broken_seq"]) == (1, recorded["seq"])
    assert "rewritten" in result["reason"]


def test_head_refuses_a_log_that_does_not_verify(audited_db: Path, key_file: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    sql(audited_db, """UPDATE audit SET details = '{"i":99}' WHERE seq = 2""")
    rechain(audited_db)
    assert main(["audit", "head", "--db", str(audited_db), "--key-file", str(key_file)]) == 2
    assert "broken at entry 2" in capsys.readouterr().err


def test_a_bad_recorded_head_is_a_clear_error(audited_db: Path, key_file: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    for bad in ("{not json", '{"seq": "3"}', str(tmp_path / "absent.json")):
        code = main(["audit", "verify", "--db", str(audited_db), "--key-file", str(key_file),
                     "--expect-head", bad])
        assert code == 2, bad
        assert "recorded head" in capsys.readouterr().err


def test_key_rotation_keeps_verify_green_and_old_heads_valid(
        audited_db: Path, key_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = head(audited_db, key_file, capsys)
    new_file, _ = new_key(tmp_path, "new.key")
    assert main(["keys", "rotate", "--db", str(audited_db), "--new-key", str(new_file),
                 "--old-key", str(key_file), "--json"]) == 0
    capsys.readouterr()
    append(audited_db, new_file, 2)
    both = ("--old-key-file", str(key_file), "--expect-head", json.dumps(before))
    code, result = verify(audited_db, new_file, capsys, *both)
    assert (code, result["macs_verified"]) == (0, result["entries"])
    assert result["macs_covered_by_later_entries"] == 0
    # The old key retired: the new key's MACs cover the old entries (each hash covers its past).
    code, result = verify(audited_db, new_file, capsys, "--expect-head", json.dumps(before))
    assert (code, result["intact"]) == (0, True)
    assert result["macs_covered_by_later_entries"] == ENTRIES  # sealed with the old key
    # An edit of an old-key entry, plain hashes recomputed, is still found with the new key alone.
    sql(audited_db, """UPDATE audit SET details = '{"i":99}' WHERE seq = 2""")
    rechain(audited_db)
    code, result = verify(audited_db, new_file, capsys)
    assert (code, result["intact"]) == (1, False)
    assert "MAC does not match" in result["reason"]


def test_entries_sealed_only_with_a_key_not_loaded_cannot_pass(
        audited_db: Path, key_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other, _ = new_key(tmp_path, "other.key")
    sql(audited_db, "UPDATE audit SET key_id = 'feedbeef' WHERE seq >= 4")  # hide the newest MACs
    code, result = verify(audited_db, key_file, capsys)
    assert (code, result["first_broken_seq"]) == (1, 4)
    assert "feedbeef, which is not loaded" in result["reason"]
    assert main(["audit", "verify", "--db", str(audited_db), "--key-file", str(other)]) == 2  # wrong key
    assert "expects the key with id" in capsys.readouterr().err


def schema_2_store(db: Path, entries: int) -> None:
    """A store as the previous release wrote it: schema version 2, plain-hash audit entries."""
    conn = sqlite3.connect(db, isolation_level=None)
    for script in MIGRATIONS[:2]:
        conn.executescript(script)
    prev = GENESIS_HASH
    for seq in range(1, entries + 1):
        time = f"2026-01-0{seq}T09:00:00.000+00:00"
        row = (seq, time, ACTOR, "test_event", f"C{seq}", json.dumps({"i": seq}))
        digest = plain_hash(prev, row)
        conn.execute("INSERT INTO audit VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (*row, prev, digest))
        prev = digest
    conn.execute("PRAGMA user_version = 2")
    conn.close()


def test_an_unkeyed_log_is_sealed_by_the_migration_and_its_past_stays_checked(
        tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "old.db"
    schema_2_store(db, 4)
    append(db, key_file, 1)  # opening migrates: one MAC'd entry seals the four plain ones
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT seq, action, mac != '' FROM audit ORDER BY seq").fetchall()
    assert [r[2] for r in rows] == [0, 0, 0, 0, 1, 1] and rows[4][1] == "audit_keyed"
    code, result = verify(db, key_file, capsys)
    assert (code, result["unkeyed_entries"], result["macs_verified"]) == (0, 4, 2)
    # The old entries are covered: an edit there, every hash recomputed, breaks the seal's MAC.
    sql(db, """UPDATE audit SET details = '{"i":99}' WHERE seq = 2""")
    rechain(db)
    code, result = verify(db, key_file, capsys)
    assert (code, result["first_broken_seq"]) == (1, 5)
    # Plain entries appended after the seal are forgeries.
    schema_2_store(tmp_path / "fresh.db", 2)
    append(tmp_path / "fresh.db", key_file, 1)
    sql(tmp_path / "fresh.db", "INSERT INTO audit (seq, time, actor, action, subject, details, "
        "prev_hash, hash) VALUES (5, '2026-02-01T09:00:00.000+00:00', 'x', 'y', 'z', '{}', '', '')")
    rechain(tmp_path / "fresh.db")
    code, result = verify(tmp_path / "fresh.db", key_file, capsys)
    assert (code, result["first_broken_seq"]) == (1, 5) and "no MAC" in result["reason"]


def test_a_log_stripped_of_every_mac_is_not_intact(audited_db: Path, key_file: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    sql(audited_db, "UPDATE audit SET key_id = '', mac = ''")
    code, result = verify(audited_db, key_file, capsys)
    assert (code, result["intact"]) == (1, False)
    assert "no entry carries a MAC" in result["reason"]


def test_a_file_downgraded_to_the_unkeyed_format_is_found_against_the_head(
        audited_db: Path, key_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Strip the MAC columns and claim the old schema version: the chain alone looks like an old,
    unkeyed log (reported as such), the recorded head does not."""
    recorded = head(audited_db, key_file, capsys)
    sql(audited_db, "ALTER TABLE audit DROP COLUMN mac", "ALTER TABLE audit DROP COLUMN key_id",
        "PRAGMA user_version = 2")
    code, result = verify(audited_db, key_file, capsys)
    assert (code, result["keyed"], result["unkeyed_entries"]) == (0, False, ENTRIES)
    assert main(["audit", "verify", "--db", str(audited_db), "--key-file", str(key_file)]) == 0
    assert "predates keyed MACs" in capsys.readouterr().out
    code, result = verify(audited_db, key_file, capsys, "--expect-head", json.dumps(recorded))
    assert (code, result["expected_head_found"]) == (1, False)
    assert "older, unkeyed copy" in result["reason"]


def test_not_a_database_is_a_clear_error(tmp_path: Path, key_file: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite" * 100)
    assert main(["audit", "verify", "--db", str(junk), "--key-file", str(key_file)]) == 2
    assert "not a usable Branch Edge database" in capsys.readouterr().err
    assert main(["audit", "verify", "--db", str(tmp_path / "absent.db"), "--key-file", str(key_file)]) == 2
