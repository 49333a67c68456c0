"""`branch-edge demo` end to end on the real models and photos."""

from __future__ import annotations

import json

from edge.cli import main
from edge.demo import plan_demo_branch


def test_plan_is_seeded_and_keeps_customers_and_strangers_apart(data_dir):
    people, probes = plan_demo_branch(data_dir / "faces")
    again, _ = plan_demo_branch(data_dir / "faces")
    assert people == again
    assert len(people) == 20
    customer_folders = {c.enrol_photos[0].parent for c in people}
    stranger_folders = {p.photo.parent for p in probes if p.truth is None}
    assert len(stranger_folders) == 10
    assert not customer_folders & stranger_folders
    for c in people:
        assert not set(c.enrol_photos) & set(c.probe_photos)


def test_demo_recognises_customers_and_ignores_strangers(data_dir, tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "demo-summary.json").read_text())["summary"]
    assert summary["customers_recognised"] >= 0.85 * summary["customer_probes"]
    assert summary["wrong_customer"] == 0
    assert summary["false_alarms"] == 0
    # Each recognised customer's arrival went through the embedded broker to the PAD.
    assert summary["arrivals_received"] == summary["arrivals_published"] > 0
    assert f"received {summary['arrivals_published']}/{summary['arrivals_published']} arrivals" in printed
    assert "recognised" in printed and "stranger: not recognised" in printed
    # Fictional names must never be printed beside a real person's name.
    real_names = {d.name for d in (data_dir / "faces").iterdir()}
    assert not [name for name in real_names if name in printed]
    assert (out / "demo-store.key").stat().st_mode & 0o077 == 0
    # A second run starts from a fresh store and gives the same result.
    assert main(["demo", "--out", str(out)]) == 0
    assert json.loads((out / "demo-summary.json").read_text())["summary"] == summary
