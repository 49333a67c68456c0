"""An erasure reaches the tablets: real models, a real Mosquitto (TLS, the generated ACL), the
real PAD app (Qt, offscreen) and the real CLI.

Two RM PADs show two customers' arrivals (name, live face).  One PAD goes offline; the branch
manager erases one customer with ``branch-edge erase`` (no --config) while the daemon runs.
The online PAD drops that customer from its feed and from its journal file at once; the
offline one does it when it comes back, from the retraction the broker kept for its session.
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from mqtt.codec import decode
from mqtt.messages import Arrival
from tests.integration.test_erasure_daemon import (  # noqa: F401 - fixtures
    CLARK,
    REEVE,
    TIMEOUT,
    Lobby,
    _only_our_commands,
    arrive,
    branch,
    daemons,
    erase_without_flags,
    lobby,
)
from tests.mqtt_fixtures import client_config
from ui.app import PadApp
from ui.pages.rm import RmPage
from ui.state.config import PadConfig

# WORKAROUND: the offscreen platform warns "does not support propagateSizeHints()" for every
# top-level window with a layout; it is not about our code.
pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")


def pad_config(prov, tmp_path: Path, device: str) -> PadConfig:
    return PadConfig(branch_id=prov.branch_id, role="rm", rm_id=device, sound=False,
                     mqtt=client_config(prov, device, tmp_path / device))


def open_pad(qtbot, config: PadConfig) -> PadApp:
    pad = PadApp(config)
    qtbot.addWidget(pad.window)
    pad.start()
    qtbot.waitUntil(lambda: pad.window.header.online is True, timeout=10_000)
    return pad


def feed_customers(pad: PadApp) -> set[str]:
    page = pad.window.page
    assert isinstance(page, RmPage)
    return {e.arrival.customer.customer_id for e in page.feed.entries()}


def journal_customers(config: PadConfig) -> list[str]:
    """The customers whose arrivals the PAD keeps on disk."""
    with closing(sqlite3.connect(config.effective_journal_path)) as conn:
        payloads = [bytes(p) for (p,) in conn.execute("SELECT payload FROM journal")]
    messages = [decode(p) for p in payloads]
    return [m.customer.customer_id for m in messages if isinstance(m, Arrival)]


def raw(path: Path) -> bytes:
    wal = path.with_name(path.name + "-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")


def test_an_erasure_leaves_every_pad_online_or_not(qtbot, lobby: Lobby, mosquitto_broker) -> None:  # noqa: F811
    cfg, stage, data_dir, prov, tmp_path = lobby.cfg, lobby.stage, lobby.data_dir, lobby.prov, lobby.tmp_path
    mosquitto_broker(prov)
    online_cfg, offline_cfg = (pad_config(prov, tmp_path, d) for d in ("rm-1", "rm-2"))
    online, offline = open_pad(qtbot, online_cfg), open_pad(qtbot, offline_cfg)
    daemon = lobby.start(cfg, stage)
    try:
        arrive(daemon, stage, data_dir, REEVE)
        stage.show(None)
        qtbot.waitUntil(lambda: not daemon.worker.pipeline.present(), timeout=TIMEOUT * 1000)
        arrive(daemon, stage, data_dir, CLARK, count=2)
        stage.show(None)
        for pad, pad_cfg in ((online, online_cfg), (offline, offline_cfg)):
            qtbot.waitUntil(lambda p=pad: feed_customers(p) == {REEVE, CLARK}, timeout=30_000)
            assert sorted(journal_customers(pad_cfg)) == sorted([CLARK, REEVE])
        page = online.window.page
        assert isinstance(page, RmPage)
        entry = next(e for e in page.feed.entries() if e.arrival.customer.customer_id == REEVE)
        face = entry.arrival.thumbnail_jpeg_b64
        assert face and face[-120:-60].encode() in raw(online_cfg.effective_journal_path)
        offline.stop()  # the tablet's battery runs out

        report = erase_without_flags(cfg, REEVE)
        assert report["templates_removed"] == 3
        qtbot.waitUntil(lambda: feed_customers(online) == {CLARK}, timeout=TIMEOUT * 1000)
        assert journal_customers(online_cfg) == [CLARK]
        assert face[-120:-60].encode() not in raw(online_cfg.effective_journal_path)
        # The retraction left the edge; the broker keeps it for the offline PAD's session.
        qtbot.waitUntil(lambda: daemon.worker.retractions == 1 and len(daemon.client.outbox) == 0,
                        timeout=30_000)
    finally:
        online.stop()
    back = PadApp(offline_cfg)  # the same tablet, restarted: its journal still has the customer
    qtbot.addWidget(back.window)
    back.start()
    try:
        qtbot.waitUntil(lambda: back.window.header.online is True, timeout=10_000)
        qtbot.waitUntil(lambda: feed_customers(back) == {CLARK}, timeout=30_000)
        qtbot.waitUntil(lambda: journal_customers(offline_cfg) == [CLARK], timeout=10_000)
    finally:
        back.stop()
