"""Erasure wins over an enrolment that is already running (real models, real photos, the real CLI).

The race is made deterministic with two events instead of timing: the enrolment runs on its
own thread and stops between analysing the photos and writing them; the test runs
``branch-edge erase`` in the main thread (its own connection, as another process would) and
only then lets the enrolment go on.  Consent is re-checked inside the transaction that writes
the templates, so nothing of the erased customer is written.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import sqlite3
import threading
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from edge import cli
from edge.config import EdgeConfig
from edge.enrol import enrolment
from edge.enrol.enrolment import EnrolReport, enrol_folder
from edge.store.base import utc_now
from edge.store.biometrics import NoConsentError
from edge.store.crypto import KeyRing, generate_key_file, read_key_file
from edge.store.database import Store

ERASED, KEPT = "C-ERASED", "C-KEPT"
PHOTOS = {ERASED: "Aicha_El_Ouafi", KEPT: "Bill_Callahan"}  # clear, consistent LFW photos


@pytest.fixture(autouse=True)
def _only_our_commands(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli, "COMMANDS", ("erase",))


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "edge.key"
    generate_key_file(path)
    return path


def photo_folders(root: Path, data_dir: Path) -> Path:
    for cid, name in PHOTOS.items():
        (root / cid).mkdir(parents=True)
        for photo in sorted((data_dir / "faces" / name).iterdir()):
            shutil.copy(photo, root / cid / photo.name)
    return root


def count(db: Path, table: str, cid: str) -> int:
    with closing(sqlite3.connect(db)) as conn:
        return int(conn.execute(f"SELECT COUNT(*) FROM {table} WHERE customer_id = ?", (cid,)).fetchone()[0])


def erase_cli(db: Path, key: Path, cid: str) -> dict:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["erase", "--db", str(db), "--key-file", str(key), "--customer", cid, "--json"])
    assert code == 0
    return dict(json.loads(out.getvalue()))


@dataclass
class Bench:
    """What every race here needs: the store, its key, the engine, the config and the photos."""

    db: Path
    key: Path
    engine: Any
    cfg: EdgeConfig
    photos: Path


@pytest.fixture
def bench(tmp_path: Path, key_file: Path, engine, edge_config: EdgeConfig, data_dir: Path) -> Bench:
    db = tmp_path / "branch.db"
    consenting_store(db, key_file)
    return Bench(db, key_file, engine, edge_config, photo_folders(tmp_path / "photos", data_dir))


class PausedEnrolment(threading.Thread):
    """``enrol_folder`` on its own thread and store connection, held between analysis and writing."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, bench: Bench, **options: Any) -> None:
        super().__init__(name="enrol", daemon=True)
        self.bench, self.options = bench, options
        self.analysed, self.go_on = threading.Event(), threading.Event()
        self.report: EnrolReport | None = None
        self.error: BaseException | None = None
        review = enrolment.Reviewer.review

        def held_review(reviewer, candidates):
            verdicts = review(reviewer, candidates)
            self.analysed.set()
            assert self.go_on.wait(60), "the test never let the enrolment go on"
            return verdicts

        monkeypatch.setattr(enrolment.Reviewer, "review", held_review)

    def run(self) -> None:
        b = self.bench
        try:
            with Store.open(b.db, KeyRing(read_key_file(b.key)), create=False) as store:
                self.report = enrol_folder(store, b.engine, b.cfg, b.photos, actor="test", progress=False,
                                           **self.options)
        except BaseException as err:  # reported to the test, which fails on it
            self.error = err


def race(monkeypatch: pytest.MonkeyPatch, bench: Bench, **options: Any) -> EnrolReport:
    run = PausedEnrolment(monkeypatch, bench, **options)
    run.start()
    assert run.analysed.wait(120), run.error
    erasure = erase_cli(bench.db, bench.key, ERASED)  # the customer withdraws consent mid-run
    assert erasure["consents_withdrawn"] == 1
    run.go_on.set()
    run.join(120)
    assert run.error is None, run.error
    assert run.report is not None
    return run.report


def consenting_store(db: Path, key: Path) -> None:
    with Store.open(db, KeyRing(read_key_file(key))) as store:
        for cid in PHOTOS:
            store.upsert_customer(cid, "test", display_name="Test Person", tier="gold")
            store.record_consent(cid, "paper-form", utc_now(), "test")


def assert_nothing_written_for_the_erased(db: Path, key: Path, report: EnrolReport) -> None:
    assert (count(db, "templates", ERASED), count(db, "photos", ERASED)) == (0, 0)
    mine = [r for r in report.results if r.customer_id == ERASED]
    assert mine and {r.reason for r in mine if r.status == "accepted"} == set()
    assert "consent_withdrawn" in {r.reason for r in mine}
    assert report.refused.get(ERASED) == "consent_withdrawn"
    # The other customer of the same run is enrolled as usual.
    assert count(db, "templates", KEPT) >= 2
    with Store.open(db, KeyRing(read_key_file(key)), create=False) as store:
        actions = [e["action"] for e in store.audit_entries(ERASED)]
        assert store.active_consent(ERASED) is None
    assert actions[-1] == "customer_erased" and "enrolled" not in actions


def test_erase_during_an_enrolment_with_stored_consent_wins(bench: Bench, monkeypatch) -> None:
    report = race(monkeypatch, bench)
    assert_nothing_written_for_the_erased(bench.db, bench.key, report)


def test_erase_during_an_enrolment_that_brings_its_own_consent_wins(bench: Bench, monkeypatch) -> None:
    """The run's consent (``--consent-channel``, stamped when the run started) predates the
    withdrawal: it must not quietly re-enrol the customer, nor abort the whole run."""
    report = race(monkeypatch, bench, consent_channel="paper-form", consent_time=utc_now())
    assert_nothing_written_for_the_erased(bench.db, bench.key, report)


def test_the_store_refuses_face_data_without_an_active_consent(tmp_path: Path, key_file: Path) -> None:
    """The guard at the bottom: whatever the caller checked before, the write transaction checks again."""
    db = tmp_path / "branch.db"
    consenting_store(db, key_file)
    keys = KeyRing(read_key_file(key_file))
    with Store.open(db, keys) as enrolling, Store.open(db, keys) as erasing:
        assert enrolling.active_consent(ERASED) is not None  # what the enrolment saw at the start
        erasing.erase_customer(ERASED, "test", scrub=False)
        with pytest.raises(NoConsentError, match="no active consent"):
            enrolling.add_photo(ERASED, b"jpeg bytes of the erased customer")
        with pytest.raises(NoConsentError):
            enrolling.add_template(ERASED, "default", _unit(), quality={}, source_sha256="a" * 64,
                                   source_name="1.jpg")
    assert (count(db, "templates", ERASED), count(db, "photos", ERASED)) == (0, 0)


def _unit() -> np.ndarray:
    vector = np.ones(128, dtype=np.float32)
    return vector / np.linalg.norm(vector)
