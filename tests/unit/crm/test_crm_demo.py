"""The demo CRM: consistent with the demo branch's customers, imported through the
real importer into the face store's database file, with life events around today."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from edge.cli import main
from edge.config import EdgeConfig
from edge.crm.portrait import PortraitBuilder
from edge.crm.records import CrmStore
from edge.store.crypto import generate_key_file, load_key_ring
from edge.store.database import Store
from edge.tools.demo.branch import plan_demo_branch
from edge.tools.demo.crm import demo_people, load_demo_crm

TODAY = date(2027, 1, 30)


def test_demo_people_match_the_demo_branch(data_dir: Path) -> None:
    planned, _ = plan_demo_branch(data_dir / "faces")
    expected = [(c.customer_id, c.display_name, c.tier, c.assigned_rm) for c in planned]
    assert [(p.customer_id, p.display_name, p.tier, p.assigned_rm) for p in demo_people()] == expected


def test_demo_crm_shares_the_store_file_and_gives_portraits(tmp_path: Path) -> None:
    cfg = EdgeConfig()
    generate_key_file(tmp_path / "k")
    db = tmp_path / "demo.db"
    with Store.open(db, load_key_ring(cfg.store, tmp_path / "k")) as store:
        store.upsert_customer("C202600001", "demo", display_name="王伟", tier="私人银行")
        reports = load_demo_crm(db, demo_people(), TODAY, tmp_path / "csv", extra=60)
        assert all(not r.rejected for r in reports)
        assert store.get_customer("C202600001") is not None and store.verify_audit() is None
    counts = {r.kind: r.inserted for r in reports}
    assert counts["customers"] == 80 and counts["transactions"] > 80 * 5
    builder = PortraitBuilder(CrmStore.open(db), cfg.crm)
    kinds: set[str] = set()
    for person in demo_people():
        bundle = builder.build(person.customer_id, TODAY)
        assert bundle is not None and bundle.recommendations and bundle.talking_points_en
        kinds |= {e.kind for e in bundle.portrait.life_events}
    builder.close()
    assert kinds >= {"maturity", "idle_balance", "birthday", "assessment_expired", "assessment_expiring"}
    again = load_demo_crm(db, demo_people(), TODAY, tmp_path / "csv", extra=60)
    assert sum(r.inserted + r.updated for r in again) == 0  # same seed, same data: idempotent


def test_crm_demo_and_show_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "crm.db")
    assert main(["crm", "demo", "--db", db, "--out", str(tmp_path / "csv"), "--extra", "30",
                 "--today", TODAY.isoformat()]) == 0
    capsys.readouterr()
    assert main(["crm", "show", "C202600001", "--db", db, "--today", TODAY.isoformat(), "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["portrait"]["risk_level"] in {"C1", "C2", "C3", "C4", "C5"}
    assert shown["masked_id_number"].count("*") == 10
    assert main(["crm", "show", "C999", "--db", db]) == 2
    assert main(["crm", "show", "C202600002", "--db", db, "--today", TODAY.isoformat()]) == 0
    assert "segment" in capsys.readouterr().out
