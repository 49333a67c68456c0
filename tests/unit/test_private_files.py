"""Files holding personal data or secrets are created 0600 (folders 0700) whatever the umask.

Run outside the systemd unit (whose UMask=0077 hid the problem) with the usual
shell umask 022, these files were 0644 before: the PAD's journal (names, live face
JPEGs), the edge's log files, the CRM database in a new folder, the demo's output
(customer names beside face photos) and the PAD's card screenshots.
"""

from __future__ import annotations

import logging
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.crm.records import CrmStore
from edge.logging_setup import configure_logging
from edge.tools.demo.branch import DemoCustomer, write_customers_csv
from edge.tools.demo.crm import DemoCrm
from edge.tools.demo.lobby import visitors_csv
from mqtt.messages import Claim
from mqtt.receiver import Delivery
from ui.state.journal import Journal


@pytest.fixture(autouse=True)
def shell_umask() -> Iterator[None]:
    old = os.umask(0o022)  # what a login shell gives; the systemd unit sets 0077
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def claim() -> Claim:
    return Claim(branch_id="b1", arrival_id=str(uuid.uuid4()), visit_id=str(uuid.uuid4()),
                 customer_id="C1", rm_id="rm-1", device_id="pad-1")


def test_the_pad_journal_and_its_wal_are_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "state" / "pad.journal.db"
    journal = Journal(path)
    try:
        journal.record(Delivery("branch/b1/claims/pad-1", claim()))
        wal = path.with_name(path.name + "-wal")
        assert wal.exists()
        assert (mode(path.parent), mode(path), mode(wal)) == (0o700, 0o600, 0o600)
    finally:
        journal.close()


def test_a_journal_left_world_readable_by_an_older_version_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "pad.journal.db"
    Journal(path).close()
    for part in ("", "-wal", "-shm"):
        companion = path.with_name(path.name + part)
        companion.touch()
        companion.chmod(0o644)
    journal = Journal(path)
    try:
        assert [mode(path.with_name(path.name + p)) for p in ("", "-wal", "-shm")] == [0o600] * 3
    finally:
        journal.close()


def test_log_files_and_their_rotations_are_owner_only(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    log_file = tmp_path / "logs" / "edge.log"
    try:
        configure_logging("INFO", "text", file=log_file, max_bytes=400, backups=2)
        for n in range(40):
            logging.getLogger("edge.test").info("visit %d of customer C%d", n, n)
        files = sorted(log_file.parent.iterdir())
        assert len(files) == 3  # edge.log, edge.log.1, edge.log.2: rotated twice at least
        assert mode(log_file.parent) == 0o700
        assert {f.name: mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved_handlers:
            root.addHandler(handler)
        root.setLevel(saved_level)


def test_the_crm_database_in_a_new_folder_is_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "crm" / "crm.db"
    with CrmStore.open(path) as crm:
        assert crm.customers() == []
    assert (mode(path.parent), mode(path)) == (0o700, 0o600)
    path.chmod(0o644)  # a copy restored with loose permissions
    CrmStore.open(path).close()
    assert mode(path) == 0o600


def test_demo_output_with_names_is_owner_only(tmp_path: Path) -> None:
    faces = tmp_path / "faces"
    (faces / "Someone").mkdir(parents=True)
    photo = faces / "Someone" / "Someone_0001.jpg"
    photo.write_bytes(b"x")
    people = [DemoCustomer("C001", "王小明", "gold", "RM-01", (photo,), ())]
    customers = tmp_path / "demo" / "demo-customers.csv"
    customers.parent.mkdir()
    write_customers_csv(people, faces, customers)
    visitors = visitors_csv(customers, tmp_path / "demo" / "lobby-visitors.csv", 1)
    crm = DemoCrm()
    crm.add("customers", customer_id="C001", name="王小明", tier="gold", assigned_rm="RM-01",
            risk_level="C3", risk_expires_on="2027-01-01")
    paths = crm.write_csv(tmp_path / "demo" / "crm")
    assert mode(tmp_path / "demo" / "crm") == 0o700
    for path in (customers, visitors, *paths.values()):
        assert mode(path) == 0o600, path
    assert "王小明" in customers.read_text(encoding="utf-8")


def test_card_screenshots_are_owner_only(qtbot, tmp_path: Path) -> None:
    from PyQt6.QtWidgets import QLabel

    from ui.screenshots import save_png

    widget = QLabel("王小明")
    qtbot.addWidget(widget)
    path = save_png(widget, tmp_path / "pad-cards" / "card-001-C001.png")
    assert path.read_bytes().startswith(b"\x89PNG")
    assert (mode(path.parent), mode(path)) == (0o700, 0o600)
