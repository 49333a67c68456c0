"""Enrolment and erasure over the real models and real photos, through the CLI.

Customers are real LFW identities whose photos each show one clear face;
the bad inputs (blurry, tiny, truncated, text, no face) are made in tmp_path
from a real photo.  Each test builds its own small folder of photos.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge import cli
from edge.config import EdgeConfig
from edge.core.errors import EngineError
from edge.enrol.enrolment import enrol_folder
from edge.store.crypto import KEY_BYTES, KeyRing, generate_key_file
from edge.store.database import Store

# Identities whose photos pass the quality gate and match each other (checked once).
CLEAN = ("Aicha_El_Ouafi", "Bill_Callahan", "Christopher_Reeve", "Helen_Clark")


@pytest.fixture(autouse=True)
def _only_our_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real entry point, without depending on other sub-commands being importable.
    monkeypatch.setattr(cli, "COMMANDS", ("enrol", "erase", "keys"))


@pytest.fixture(autouse=True)
def _models_env(monkeypatch: pytest.MonkeyPatch, models_dir: Path) -> None:
    monkeypatch.setenv("BRANCH_EDGE_MODELS", str(models_dir))


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "edge.key"
    generate_key_file(path)
    return path


def query(db: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql).fetchall()


def raw_db(db: Path) -> bytes:
    wal = db.with_name(db.name + "-wal")
    return db.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def photos_of(data_dir: Path, name: str) -> list[Path]:
    return sorted((data_dir / "faces" / name).iterdir())


def customer_folder(root: Path, cid: str, photos: list[Path]) -> Path:
    folder = root / cid
    folder.mkdir(parents=True, exist_ok=True)
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    return folder


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict | str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, (json.loads(out) if "--json" in argv and code != 2 else out), err


def enrol(capsys, db: Path, key: Path, photos: Path, *extra: str) -> tuple[int, dict, str]:
    # Folders of photos without names: the name rule has its own tests (test_enrol_names.py).
    code, report, err = run_cli(capsys, "enrol", "--db", str(db), "--key-file", str(key),
                                "--photos", str(photos), "--json", "--allow-unnamed", *extra)
    return code, report, err  # type: ignore[return-value]


def reasons_by_photo(report: dict) -> dict[str, str | None]:
    return {Path(p["photo"]).name: p["reason"] or p["status"] for p in report["photos"]}


def write_bad_inputs(folder: Path, source: Path, data_dir: Path) -> None:
    image = cv2.imread(str(source))
    cv2.imwrite(str(folder / "blurry.jpg"), cv2.GaussianBlur(image, (0, 0), 4))
    cv2.imwrite(str(folder / "tiny.jpg"), cv2.resize(image, (40, 40)))
    cv2.imwrite(str(folder / "wall.jpg"), np.full((240, 240, 3), 128, np.uint8))
    data = source.read_bytes()
    (folder / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (folder / "notes.jpg").write_text("customer said hello\n")
    shutil.copy(data_dir / "scenes" / "two_people.jpg", folder / "group.jpg")


def test_each_bad_photo_is_rejected_with_its_reason(tmp_path: Path, key_file: Path,
                                                     data_dir: Path, capsys) -> None:
    good = photos_of(data_dir, CLEAN[0])
    folder = customer_folder(tmp_path / "photos", "C001", good)
    write_bad_inputs(folder, good[0], data_dir)
    shutil.copy(data_dir / "faces/Alejandro_Toledo/Alejandro_Toledo_0018.jpg", folder / "turned.jpg")
    code, report, err = enrol(capsys, tmp_path / "b.db", key_file, tmp_path / "photos",
                              "--consent-channel", "paper-form")
    assert code == 1
    assert "Traceback" not in err
    expected = {"blurry.jpg": "blurry", "tiny.jpg": "too_small", "wall.jpg": "no_face",
                "truncated.jpg": "corrupt", "notes.jpg": "not_an_image",
                "group.jpg": "several_faces", "turned.jpg": "extreme_pose"}
    expected |= {p.name: "accepted" for p in good}
    assert reasons_by_photo(report) == expected
    assert report["totals"]["accepted"] == len(good)
    assert all(p["message"] for p in report["photos"] if p["status"] == "rejected")


def test_review_off_only_checks_decoding_and_faces(tmp_path: Path, key_file: Path,
                                                   data_dir: Path, capsys) -> None:
    good = photos_of(data_dir, CLEAN[0])[:1]
    folder = customer_folder(tmp_path / "photos", "C001", good)
    write_bad_inputs(folder, good[0], data_dir)
    code, report, _ = enrol(capsys, tmp_path / "b.db", key_file, tmp_path / "photos",
                            "--consent-channel", "paper-form", "--review", "off")
    assert code == 1
    got = reasons_by_photo(report)
    assert {got[n] for n in ("blurry.jpg", "tiny.jpg", "group.jpg")} == {"accepted"}
    assert (got["wall.jpg"], got["truncated.jpg"], got["notes.jpg"]) == (
        "no_face", "corrupt", "not_an_image")


def test_rerun_is_idempotent(tmp_path: Path, key_file: Path, data_dir: Path, capsys) -> None:
    for cid, name in zip(("C001", "C002"), CLEAN[:2], strict=True):
        customer_folder(tmp_path / "photos", cid, photos_of(data_dir, name))
    db, photos = tmp_path / "b.db", tmp_path / "photos"
    code, first, _ = enrol(capsys, db, key_file, photos, "--consent-channel", "paper-form")
    assert (code, first["totals"]["rejected"]) == (0, 0)
    code, second, _ = enrol(capsys, db, key_file, photos)
    assert code == 0
    assert second["totals"]["already_enrolled"] == first["totals"]["accepted"] > 0
    assert second["totals"]["accepted"] == 0
    rows = query(db, "SELECT COUNT(*), COUNT(DISTINCT source_sha256) FROM templates")
    assert rows == [(first["totals"]["accepted"],) * 2]


@pytest.mark.parametrize("case", [("strict", "closer_to_other_customer"),
                                  ("standard", "inconsistent")])
def test_photo_of_another_person_in_a_folder_is_caught(tmp_path: Path, key_file: Path,
                                                       data_dir: Path, capsys,
                                                       case: tuple[str, str]) -> None:
    review, reason = case
    a_photos, b_photos = photos_of(data_dir, CLEAN[2]), photos_of(data_dir, CLEAN[3])
    misfiled = b_photos.pop()
    customer_folder(tmp_path / "photos", "A", [*a_photos, misfiled])
    customer_folder(tmp_path / "photos", "B", b_photos)
    code, report, _ = enrol(capsys, tmp_path / "b.db", key_file, tmp_path / "photos",
                            "--consent-channel", "kiosk", "--review", review)
    assert code == 1
    rejected = {(p["customer_id"], Path(p["photo"]).name): p["reason"]
                for p in report["photos"] if p["status"] == "rejected"}
    assert rejected == {("A", misfiled.name): reason}
    if review == "strict":
        message = next(p["message"] for p in report["photos"] if p["reason"] == reason)
        assert "customer B" in message


def test_strict_review_catches_a_second_enrolment_of_an_enrolled_person(
        tmp_path: Path, key_file: Path, data_dir: Path, capsys) -> None:
    photos = photos_of(data_dir, CLEAN[1])
    db = tmp_path / "b.db"
    customer_folder(tmp_path / "first", "C001", photos[:-1])
    assert enrol(capsys, db, key_file, tmp_path / "first", "--consent-channel", "app")[0] == 0
    customer_folder(tmp_path / "second", "C999", photos[-1:])
    _, report, _ = enrol(capsys, db, key_file, tmp_path / "second", "--consent-channel", "app",
                         "--review", "strict")
    assert reasons_by_photo(report) == {photos[-1].name: "closer_to_other_customer"}


def test_customers_without_consent_are_refused(tmp_path: Path, key_file: Path,
                                               data_dir: Path, capsys) -> None:
    customer_folder(tmp_path / "photos", "C001", photos_of(data_dir, CLEAN[0]))
    code, report, _ = enrol(capsys, tmp_path / "b.db", key_file, tmp_path / "photos")
    assert code == 1
    assert report["reasons"] == {"no_consent": len(photos_of(data_dir, CLEAN[0]))}
    assert report["customers"][0]["refused"] == "no_consent"
    assert query(tmp_path / "b.db", "SELECT COUNT(*) FROM templates") == [(0,)]


def write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    columns = list(rows[0])
    path.write_text("\n".join([",".join(columns)] + [",".join(r[c] for c in columns) for r in rows]))
    return path


def test_csv_mapping_records_profile_and_consent_without_logging_names(
        tmp_path: Path, key_file: Path, data_dir: Path, capsys,
        caplog: pytest.LogCaptureFixture) -> None:
    photos = tmp_path / "photos"
    rows = []
    for cid, name, consent in (("C001", CLEAN[0], True), ("C002", CLEAN[1], False)):
        for photo in customer_folder(photos, name, photos_of(data_dir, name)).iterdir():
            rows.append({"customer_id": cid, "photo": f"{name}/{photo.name}",
                         "display_name": f"Test Person {cid}", "tier": "gold",
                         "assigned_rm": "rm-01", "consent_channel": "paper-form" if consent else "",
                         "consent_time": "2025-03-01T09:30:00+08:00" if consent else ""})
    csv_path = write_csv(tmp_path / "customers.csv", rows)
    caplog.set_level(logging.INFO)
    code, report, _ = enrol(capsys, tmp_path / "b.db", key_file, photos, "--customers", str(csv_path))
    assert code == 1
    assert report["customers"] == [
        {"customer_id": "C001", "accepted": 3, "already_enrolled": 0, "rejected": 0, "refused": None},
        {"customer_id": "C002", "accepted": 0, "already_enrolled": 0, "rejected": 3,
         "refused": "no_consent"}]
    with Store.open(tmp_path / "b.db", KeyRing(_key(key_file))) as store:
        customer = store.get_customer("C001")
        consent = store.active_consent("C001")
    assert customer is not None
    assert (customer.display_name, customer.tier, customer.assigned_rm) == (
        "Test Person C001", "gold", "rm-01")
    assert consent is not None
    assert (consent.channel, consent.granted_at) == ("paper-form", "2025-03-01T01:30:00.000+00:00")
    logged = " ".join(r.getMessage() for r in caplog.records if r.levelno >= logging.INFO)
    assert "C001" in logged or "enrolment" in logged
    assert "Test Person" not in logged


def _key(path: Path) -> bytes:
    return bytes.fromhex(path.read_text().strip())


@pytest.mark.parametrize(("content", "message"), [
    ("customer_id,photo,consent_chanel\nC1,a.jpg,x\n", "unknown column(s) consent_chanel"),
    ("customer_id,display_name\nC1,x\n", "missing column(s) photo"),
    ("customer_id,photo\nC1,../../etc/passwd\n", "is outside"),
    ("customer_id,photo,tier\nC1,a.jpg,gold\nC1,b.jpg,silver\n", ":3: tier of C1 differs from line 2"),
    ("customer_id,photo,consent_channel,consent_time\nC1,a.jpg,form,yesterday\n", "ISO 8601"),
    ("customer_id,photo,consent_channel\nC1,a.jpg,form\n", "go together"),
])
def test_bad_csv_is_refused_as_a_whole(tmp_path: Path, key_file: Path, capsys,
                                       content: str, message: str) -> None:
    (tmp_path / "photos").mkdir()
    (tmp_path / "c.csv").write_text(content)
    code, _, err = enrol(capsys, tmp_path / "b.db", key_file, tmp_path / "photos",
                         "--customers", str(tmp_path / "c.csv"))
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_erase_leaves_nothing_behind_and_needs_new_consent(tmp_path: Path, key_file: Path,
                                                           data_dir: Path, capsys) -> None:
    photos, db = tmp_path / "photos", tmp_path / "b.db"
    customer_folder(photos, "C001", photos_of(data_dir, CLEAN[0]))
    customer_folder(photos, "C002", photos_of(data_dir, CLEAN[1]))
    assert enrol(capsys, db, key_file, photos, "--consent-channel", "paper-form")[0] == 0
    blobs = [bytes(b) for (b,) in query(
        db, "SELECT embedding FROM templates WHERE customer_id='C001' UNION ALL "
        "SELECT ciphertext FROM photos WHERE customer_id='C001'")]
    assert len(blobs) == 6
    assert all(blob[-32:] in raw_db(db) for blob in blobs)  # the check below can fail

    code, erasure, _ = run_cli(capsys, "erase", "--db", str(db), "--key-file", str(key_file),
                               "--customer", "C001", "--json")
    assert code == 0
    assert (erasure["templates_removed"], erasure["photos_removed"]) == (3, 3)
    assert not any(blob[-32:] in raw_db(db) for blob in blobs)
    with Store.open(db, KeyRing(_key(key_file))) as store:
        assert set(store.load_templates("default")[0]) == {"C002"}
        details = json.dumps(store.audit_entries("C001"))
    assert "customer_erased" in details
    assert "embedding" not in details
    _, again, _ = enrol(capsys, db, key_file, photos)
    assert {p["reason"] for p in again["photos"] if p["customer_id"] == "C001"} == {"no_consent"}
    _, renewed, _ = enrol(capsys, db, key_file, photos, "--consent-channel", "app")
    assert renewed["customers"][0] == {"customer_id": "C001", "accepted": 3,
                                       "already_enrolled": 0, "rejected": 0, "refused": None}


def test_erase_unknown_customer_and_wrong_key_exit_2(tmp_path: Path, key_file: Path,
                                                     capsys) -> None:
    db = tmp_path / "b.db"
    with Store.open(db, KeyRing(_key(key_file))):
        pass
    code, _, err = run_cli(capsys, "erase", "--db", str(db), "--key-file", str(key_file),
                           "--customer", "C404")
    assert (code, err.strip()) == (2, "branch-edge erase: error: unknown customer id 'C404'")
    other = tmp_path / "other.key"
    generate_key_file(other)
    code, _, err = run_cli(capsys, "erase", "--db", str(db), "--key-file", str(other),
                           "--customer", "C404")
    assert code == 2
    assert f"key id {KeyRing(_key(key_file)).primary_id}" in err
    code, _, err = run_cli(capsys, "erase", "--db", str(tmp_path / "none.db"),
                           "--key-file", str(key_file), "--customer", "C1")
    assert (code, "does not exist" in err) == (2, True)


def test_liveness_required_rejects_a_spoof(tmp_path: Path, data_dir: Path, engine,
                                           edge_config: EdgeConfig) -> None:
    folder = customer_folder(tmp_path / "photos", "C001", [
        data_dir / "liveness/live_image_T1.jpg", data_dir / "liveness/spoof_image_F1.jpg"])
    assert len(list(folder.iterdir())) == 2
    cfg = edge_config.model_copy(update={"enrol": edge_config.enrol.model_copy(
        update={"require_liveness": True})})
    results = {}
    for review in ("standard", "off"):
        with Store.open(tmp_path / f"{review}.db", KeyRing(os.urandom(KEY_BYTES))) as store:
            report = enrol_folder(store, engine, cfg, tmp_path / "photos", review=review,
                                  consent_channel="kiosk", allow_unnamed=True)
            results[review] = reasons_by_photo(report.to_dict())
    assert results["standard"] == {"live_image_T1.jpg": "accepted",
                                   "spoof_image_F1.jpg": "low_liveness"}
    assert results["off"]["spoof_image_F1.jpg"] == "accepted"  # off: decoding and faces only


def test_library_api_feeds_the_gallery(tmp_path: Path, data_dir: Path, engine,
                                       edge_config: EdgeConfig) -> None:
    for cid, name in zip(("C001", "C002"), CLEAN[:2], strict=True):
        customer_folder(tmp_path / "photos", cid, photos_of(data_dir, name))
    with Store.open(tmp_path / "b.db", KeyRing(os.urandom(KEY_BYTES))) as store:
        report = enrol_folder(store, engine, edge_config, tmp_path / "photos",
                              consent_channel="kiosk", progress=False, allow_unnamed=True)
        ids, matrix = store.load_templates(engine.pack_id, dim=engine.embedding_size)
    assert report.all_accepted
    assert sorted(set(ids)) == ["C001", "C002"]
    assert matrix.shape == (len(ids), engine.embedding_size)
    assert matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-4)
    same = matrix[np.array(ids) == "C001"] @ matrix[np.array(ids) == "C001"].T
    cross = matrix[np.array(ids) == "C001"] @ matrix[np.array(ids) == "C002"].T
    assert same.min() > cross.max()


def test_missing_liveness_model_is_a_clear_error(tmp_path: Path, engine,
                                                 edge_config: EdgeConfig,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "photos").mkdir()
    monkeypatch.setattr(engine, "live", None)
    cfg = edge_config.model_copy(update={"enrol": edge_config.enrol.model_copy(
        update={"require_liveness": True})})
    with (Store.open(tmp_path / "b.db", KeyRing(os.urandom(KEY_BYTES))) as store,
          pytest.raises(EngineError, match="no liveness model")):
        enrol_folder(store, engine, cfg, tmp_path / "photos")


def test_missing_photos_folder_is_a_clear_error(tmp_path: Path, key_file: Path, capsys) -> None:
    code, _, err = enrol(capsys, tmp_path / "b.db", key_file, tmp_path / "nope")
    assert code == 2
    assert "does not exist or is not a folder" in err


def test_template_limit_keeps_the_best_photos(tmp_path: Path, data_dir: Path, engine,
                                              edge_config: EdgeConfig) -> None:
    photos = photos_of(data_dir, CLEAN[2])  # 4 photos
    customer_folder(tmp_path / "photos", "C001", photos)
    cfg = edge_config.model_copy(update={"enrol": edge_config.enrol.model_copy(
        update={"max_templates_per_customer": 2})})
    with Store.open(tmp_path / "b.db", KeyRing(os.urandom(KEY_BYTES))) as store:
        report = enrol_folder(store, engine, cfg, tmp_path / "photos", consent_channel="kiosk",
                              allow_unnamed=True)
        assert store.count_templates("C001", engine.pack_id) == 2
    scores = {p.name: engine.analyze(cv2.imread(str(p)))[0].quality.score() for p in photos}
    best_two = sorted(scores, key=scores.__getitem__, reverse=True)[:2]
    got = reasons_by_photo(report.to_dict())
    assert sorted(n for n, r in got.items() if r == "accepted") == sorted(best_two)
    assert sorted(r for r in got.values() if r != "accepted") == ["template_limit"] * 2
