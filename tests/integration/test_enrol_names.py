"""Never an empty card, at enrolment: a customer without a display name (folder mode, or a CSV
without the column) takes the CRM's name when the CRM knows them, keeps the one already in the
store, and is otherwise refused with ``no_display_name`` (nothing stored) unless
``--allow-unnamed``.  The real command on real photos and models."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from edge import cli
from edge.crm.records import CrmCustomer, CrmStore
from edge.store.crypto import KeyRing, generate_key_file, read_key_file
from edge.store.database import Store

PERSON = "Aicha_El_Ouafi"


@pytest.fixture(autouse=True)
def _only_enrol(monkeypatch: pytest.MonkeyPatch, models_dir: Path) -> None:
    monkeypatch.setattr(cli, "COMMANDS", ("enrol",))
    monkeypatch.setenv("BRANCH_EDGE_MODELS", str(models_dir))


@pytest.fixture
def branch(tmp_path: Path, data_dir: Path) -> tuple[Path, Path, Path]:
    """(database, key file, photos folder with customer C001's photos)."""
    key = tmp_path / "edge.key"
    generate_key_file(key)
    folder = tmp_path / "photos" / "C001"
    folder.mkdir(parents=True)
    for photo in sorted((data_dir / "faces" / PERSON).iterdir())[:2]:
        shutil.copy(photo, folder / photo.name)
    return tmp_path / "branch.db", key, tmp_path / "photos"


def enrol(capsys: pytest.CaptureFixture[str], db: Path, key: Path, photos: Path,
          *extra: str) -> tuple[int, dict[str, Any]]:
    code = cli.main(["enrol", "--db", str(db), "--key-file", str(key), "--photos", str(photos),
                     "--consent-channel", "paper-form", "--json", *extra])
    return code, json.loads(capsys.readouterr().out)


def keys(path: Path) -> KeyRing:
    return KeyRing(read_key_file(path))


def test_without_a_name_anywhere_the_customer_is_refused_with_a_reason(branch, capsys) -> None:  # type: ignore[no-untyped-def]
    db, key, photos = branch
    code, report = enrol(capsys, db, key, photos)
    assert code == 1
    assert report["customers"][0]["refused"] == "no_display_name"
    assert {p["reason"] for p in report["photos"]} == {"no_display_name"}
    assert "--allow-unnamed" in report["photos"][0]["message"]
    with Store.open(db, keys(key)) as store:
        assert store.get_customer("C001") is None, "a refused customer leaves nothing behind"


def test_the_name_comes_from_the_crm(branch, capsys) -> None:  # type: ignore[no-untyped-def]
    db, key, photos = branch
    with Store.open(db, keys(key)):
        pass  # the branch database exists; the CRM tables go into the same file (the default)
    with CrmStore.open(db) as crm:
        crm.upsert("customers", [CrmCustomer("C001", "林晓燕", "贵宾", "rm-1", "", "C3", None, None,
                                             "zh-CN", (), "", "")])
    code, report = enrol(capsys, db, key, photos)
    assert code == 0, report
    with Store.open(db, keys(key)) as store:
        customer = store.get_customer("C001")
        assert customer is not None and customer.display_name == "林晓燕"


def test_allow_unnamed_enrols_without_a_name(branch, capsys) -> None:  # type: ignore[no-untyped-def]
    db, key, photos = branch
    code, report = enrol(capsys, db, key, photos, "--allow-unnamed")
    assert code == 0, report
    with Store.open(db, keys(key)) as store:
        customer = store.get_customer("C001")
        assert customer is not None and customer.display_name == ""


def test_a_name_already_in_the_store_is_kept(branch, capsys) -> None:  # type: ignore[no-untyped-def]
    db, key, photos = branch
    with Store.open(db, keys(key)) as store:
        store.upsert_customer("C001", "test", display_name="周文博")
    code, report = enrol(capsys, db, key, photos)
    assert code == 0, report
    with Store.open(db, keys(key)) as store:
        customer = store.get_customer("C001")
        assert customer is not None and customer.display_name == "周文博"
