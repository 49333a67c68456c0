"""`branch-edge audit verify`: the hash chain catches an edited and a deleted entry."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from edge.cli import main
from edge.store.crypto import KeyRing
from edge.store.database import Store
from tests.keys_fixtures import ACTOR, new_key

ENTRIES = 6


@pytest.fixture
def audited_db(tmp_path: Path) -> Path:
    _, key = new_key(tmp_path, "store.key")
    db = tmp_path / "branch.db"
    with Store.open(db, KeyRing(key)) as store:
        for i in range(ENTRIES):
            store.audit(ACTOR, "test_event", f"C{i:03d}", {"i": i})
    return db


def tamper(db: Path, sql: str) -> None:
    """What someone with write access to the file can do: drop the guard, change a row."""
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("DROP TRIGGER IF EXISTS audit_no_update")
    conn.execute("DROP TRIGGER IF EXISTS audit_no_delete")
    conn.execute(sql)
    conn.close()


def verify(db: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict]:
    code = main(["audit", "verify", "--db", str(db), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_intact_log_exits_0_and_names_its_head(audited_db: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, result = verify(audited_db, capsys)
    assert code == 0
    assert (result["intact"], result["entries"], result["head_seq"]) == (True, ENTRIES, ENTRIES)
    assert len(result["head_hash"]) == 64
    assert main(["audit", "verify", "--db", str(audited_db)]) == 0
    assert "intact: 6 entries" in capsys.readouterr().out


def test_edited_details_are_found_at_their_entry(audited_db: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    tamper(audited_db, """UPDATE audit SET details = '{"i":99}' WHERE seq = 3""")
    code, result = verify(audited_db, capsys)
    assert code == 1
    assert (result["first_broken_seq"], result["reason"]) == (3, "entry 3 was altered")
    assert main(["audit", "verify", "--db", str(audited_db)]) == 1
    assert "TAMPERED: first broken entry 3" in capsys.readouterr().out


def test_deleted_entry_is_found_as_missing(audited_db: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    tamper(audited_db, "DELETE FROM audit WHERE seq = 4")
    code, result = verify(audited_db, capsys)
    assert (code, result["first_broken_seq"], result["reason"]) == (1, 4, "entry 4 is missing")


def test_renumbered_entries_after_a_delete_break_the_link(audited_db: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    # Hiding a deletion by renumbering: the hashes no longer link up.
    tamper(audited_db, "DELETE FROM audit WHERE seq = 2")
    tamper(audited_db, "UPDATE audit SET seq = seq - 1 WHERE seq > 2")
    code, result = verify(audited_db, capsys)
    assert (code, result["first_broken_seq"]) == (1, 2)


def test_not_a_database_is_a_clear_error(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"not sqlite" * 100)
    assert main(["audit", "verify", "--db", str(junk)]) == 2
    assert "not a usable Branch Edge database" in capsys.readouterr().err
    assert main(["audit", "verify", "--db", str(tmp_path / "absent.db")]) == 2
