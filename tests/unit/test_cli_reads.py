"""A command that only reads never creates a file: run where no database exists, each
read-only command of branch-edge stops with one clear error naming the missing file
and leaves the folder as it found it."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.cli import main
from edge.config import EdgeConfig

DEFAULT_DB = EdgeConfig().store.path  # what the commands fall back to without --db or a config

READS = {
    "crm show": ["crm", "show", "C202600001"],
    "report outcomes": ["report", "outcomes", "--from", "2026-01-01", "--to", "2026-01-31"],
    "evaluate-recommender": ["evaluate-recommender"],
    "audit verify": ["audit", "verify"],
    "purge --dry-run": ["purge", "--dry-run"],
    "backup": ["backup", "--out", "copy.db"],
}


@pytest.fixture
def empty_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cwd"
    folder.mkdir()
    monkeypatch.chdir(folder)
    monkeypatch.setenv("BRANCH_EDGE_KEY", "11" * 32)  # a key, so only the missing file can fail
    return folder


@pytest.mark.parametrize("argv", READS.values(), ids=READS.keys())
def test_a_read_on_a_missing_database_creates_nothing(argv: list[str], empty_folder: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert str(DEFAULT_DB) in err, err
    assert "Traceback" not in err
    assert sorted(p.name for p in empty_folder.iterdir()) == []


def test_crm_show_names_the_missing_file_instead_of_a_missing_customer(
        empty_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["crm", "show", "C202600001", "--db", "elsewhere.db"]) == 2
    err = capsys.readouterr().err
    assert "no CRM database at elsewhere.db" in err
    assert "not in the CRM" not in err
    assert not (empty_folder / "elsewhere.db").exists()


def test_crm_show_on_an_existing_crm_names_it_when_the_customer_is_unknown(
        empty_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.crm.records import CrmStore

    CrmStore.open(empty_folder / "crm.db").close()  # an empty CRM, as after a failed import
    assert main(["crm", "show", "C1", "--db", "crm.db"]) == 2
    assert "customer C1 is not in the CRM at crm.db" in capsys.readouterr().err
