"""`branch-edge demo` end to end on the real models and photos."""

from __future__ import annotations

import csv
import json
import re

from edge.cli import main
from edge.tools.demo.branch import plan_demo_branch


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
    assert "recognised" in printed and "stranger: not recognised" in printed
    # Fictional names must never be printed beside a real person's name.
    real_names = {d.name for d in (data_dir / "faces").iterdir()}
    assert not [name for name in real_names if name in printed]
    assert (out / "demo-store.key").stat().st_mode & 0o077 == 0
    # The lobby leg: the daemon over the synthetic video, through the embedded broker.
    lobby = summary["lobby"]
    assert lobby["false_arrivals"] == 0 and lobby["repeated_arrivals"] == 0
    assert lobby["customers_recognised"] >= lobby["customers_in_video"] - 1
    assert printed.count("PAD <- arrival") == lobby["arrivals_received"]
    assert "AUM" in printed and "推荐" in printed, "arrivals carry the CRM portrait"
    # No file the demo leaves names a real person: the photos it used are copies under opaque
    # names, and the customers CSV, the lobby's CSV and truth, the store and the summary refer
    # only to them (a real name beside an invented name and fortune is what must not happen).
    people, probes = plan_demo_branch(data_dir / "faces")
    used = {c.enrol_photos[0].parent.name for c in people} | {p.photo.parent.name for p in probes}
    leaks = [(path.relative_to(out), name) for path in out.rglob("*")
             if path.is_file() and path.suffix not in (".mp4", ".png", ".jpg")
             for name in used if name.encode() in path.read_bytes()
             or name.replace("_", " ").encode() in path.read_bytes()]
    leaks += [(path.relative_to(out), "file name") for path in out.rglob("*")
              if any(name in path.name for name in used)]
    assert leaks == []
    with (out / "demo-customers.csv").open(encoding="utf-8") as sheet:
        photos = [row["photo"] for row in csv.DictReader(sheet)]
    assert photos and all(re.fullmatch(r"C2026\d{5}/p_\d{4}\.jpg", p) for p in photos), photos[:3]
    # The PAD app saved a customer card for each arrival it showed.
    cards = sorted((out / "pad-cards").glob("card-*.png"))
    assert len(cards) == lobby["arrivals_received"]
    assert all(c.read_bytes().startswith(b"\x89PNG") for c in cards)
