"""``--exit-after N`` counts live arrivals only: a PAD restarted with arrivals in its journal
(received before the restart, replayed into the feed at start) waits for N arrivals from the
broker, for both ``--screenshots`` and ``--console``.  Real Mosquitto (TLS, ACL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mqtt.client import SUBSCRIBED_LINE
from mqtt.provision.run import ProvisionResult
from mqtt.receiver import Delivery
from mqtt.topics import BranchTopics
from tests.mqtt_fixtures import make_client, mosquitto_broker, provisioned_branch, wait_until  # noqa: F401
from ui.state.journal import Journal
from ui.state.sample import sample_arrival

REPO = Path(__file__).resolve().parents[2]
REPLAYED = ("c-old-1", "c-old-2")


def pad_toml(prov: ProvisionResult, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = (f'branch_id = "{prov.branch_id}"\nrole = "rm"\nlanguage = "en"\nsound = false\n'
            f'mqtt_file = "{prov.device_dir("rm-1") / "mqtt.toml"}"\n'
            f'[mqtt]\nhost = "127.0.0.1"\noutbox_path = "{folder / "outbox.db"}"\n'
            f'seen_ids_path = "{folder / "seen.db"}"\nreconnect_min_s = 0.1\nreconnect_max_s = 1.0\n')
    path = folder / "pad.toml"
    path.write_text(text, encoding="utf-8")
    return path


def journal_from_before_the_restart(prov: ProvisionResult, folder: Path) -> None:
    """What the PAD had received before it was restarted: its journal (seen.journal.db)."""
    journal = Journal(folder / "seen.journal.db")
    topic = BranchTopics(prov.branch_id).arrivals
    for seed, customer in enumerate(REPLAYED):
        journal.record(Delivery(topic, sample_arrival(prov.branch_id, customer_id=customer, seed=seed)))
    journal.close()


@pytest.fixture
def edge(provisioned_branch, mosquitto_broker, tmp_path: Path):  # type: ignore[no-untyped-def]  # noqa: F811
    mosquitto_broker(provisioned_branch)
    client = make_client(provisioned_branch, "edge-1", tmp_path / "edge")
    client.start()
    assert client.wait_connected(10)
    yield client
    client.stop()


@pytest.mark.parametrize("mode", ["screenshots", "console"])
def test_exit_after_counts_only_live_arrivals(provisioned_branch, edge, tmp_path: Path, mode: str) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    folder = tmp_path / "pad"
    config = pad_toml(provisioned_branch, folder)
    journal_from_before_the_restart(provisioned_branch, folder)
    shots, log = tmp_path / "shots", tmp_path / "pad.log"
    extra = ["--screenshots", str(shots)] if mode == "screenshots" else ["--console"]
    with log.open("w", encoding="utf-8") as err:
        proc = subprocess.Popen([sys.executable, "-m", "ui.cli", "--config", str(config), "--exit-after", "1",
                                 "--log-level", "INFO", *extra], cwd=REPO, text=True,
                                stdout=subprocess.PIPE, stderr=err,
                                env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    try:
        assert wait_until(lambda: SUBSCRIBED_LINE in log.read_text() or proc.poll() is not None, 60)
        edge.publish(sample_arrival(provisioned_branch.branch_id, customer_id="c-live", seed=9))
        out, _ = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, log.read_text()
    if mode == "screenshots":
        # Only the live arrival's card: had the replayed ones counted, the PAD would have quit
        # on the first of them, before the live one came.
        assert [p.name for p in shots.glob("*.png")] == ["card-001-c-live.png"]
    else:
        assert "c-live" in out or "王晓明" in out
        lines = [line for line in out.splitlines() if "  + " in line]
        assert len(lines) == len(REPLAYED) + 1, out  # the replayed ones are shown, not counted
