"""``branch-pad --demo``: the app with nothing provisioned.  As a program under Xvfb (the real
``xcb`` platform) it stays up showing the feed and exits 0 on SIGTERM and SIGINT; in process
(offscreen), each role's page gets the demo's traffic over the embedded broker; without a
pad.toml, ``branch-pad`` says how to look at the app."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from edge.tools.demo.bus import demo_broker
from edge.tools.demo.lobby import start_pad_app
from edge.tools.demo.pad import PadProcess
from mqtt.client import BranchClient, Identity
from mqtt.config import MqttConfig
from tests.e2e.pad_display import xvfb
from tests.mqtt_fixtures import wait_until
from ui.app import PadApp
from ui.demo import FIRST_ARRIVALS, DemoBranch, Replay
from ui.pages.rm import RmPage
from ui.pages.supervisor import SupervisorPage
from ui.pages.teller import TellerPage
from ui.state.i18n import Texts
from ui.state.sample import sample_arrival

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")

REPO = Path(__file__).resolve().parents[2]
WAIT_MS = 30_000


def branch_pad(*args: str, cwd: Path = REPO, env: dict[str, str] | None = None,
               log: Path | None = None) -> subprocess.Popen[str]:
    err = log.open("w", encoding="utf-8") if log is not None else subprocess.PIPE
    try:
        return subprocess.Popen([sys.executable, "-m", "ui.cli", *args], cwd=cwd, text=True,
                                stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, **(env or {})})
    finally:
        if log is not None:
            err.close()  # type: ignore[union-attr]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_demo_on_a_real_display_stays_up_and_exits_0_on_a_signal(tmp_path: Path, signum: int) -> None:
    shots, log = tmp_path / "shots", tmp_path / "pad.log"
    with xvfb(tmp_path, (1280, 800)) as screen:
        env = {"DISPLAY": screen.display, "QT_QPA_PLATFORM": "xcb"}
        proc = branch_pad("--demo", "--screenshots", str(shots), "--log-level", "INFO", env=env, log=log)
        try:
            # The feed fills with the first arrivals; each one's card is saved as it comes.
            assert wait_until(lambda: f"saved card-{FIRST_ARRIVALS:03d}" in log.read_text()
                              or proc.poll() is not None, 60), log.read_text()
            assert proc.poll() is None, log.read_text()
            pixels = screen.grab()
            feed = pixels[100:700, 20:400]  # the feed column's rows: drawn faces and names
            assert len(np.unique(feed.reshape(-1, 3), axis=0)) > 100, "the X screen shows no feed"
            # Still up after the replay's first arrivals: it stays until it is told to go.
            assert proc.poll() is None
            proc.send_signal(signum)
            assert proc.wait(30) == 0, log.read_text()
        finally:
            proc.kill()
    assert "Traceback" not in log.read_text()


@pytest.fixture
def demo_pad(qtbot):  # type: ignore[no-untyped-def]
    made: list[tuple[DemoBranch, PadApp]] = []

    def start(role: str, language: str = "en", replay: Replay | None = None) -> PadApp:
        demo = DemoBranch(role, replay=replay)  # type: ignore[arg-type]
        pad = PadApp(demo.config, language)
        made.append((demo, pad))
        qtbot.addWidget(pad.window)
        pad.window.resize(1280, 800)
        pad.window.show()
        pad.start()
        demo.start(lambda: pad.link.connected)
        return pad

    yield start
    for demo, pad in made:
        close = getattr(pad.window.page, "close_devices", None)
        if callable(close):
            close()
        pad.stop()
        demo.close()


def test_demo_rm_feed_fills_with_fictional_arrivals(qtbot, demo_pad) -> None:  # type: ignore[no-untyped-def]
    pad = demo_pad("rm", replay=Replay("rm", arrival_every_s=0.2, first=FIRST_ARRIVALS))
    page = pad.window.page
    assert isinstance(page, RmPage)
    qtbot.waitUntil(lambda: page.feed_list.count() >= FIRST_ARRIVALS + 2, timeout=WAIT_MS)
    names = {page.feed.find(i).arrival.customer.display_name for i in page.feed_list.ids()}  # type: ignore[union-attr]
    assert len(names) >= FIRST_ARRIVALS and all(names)
    qtbot.waitUntil(lambda: pad.window.header.online is True, timeout=WAIT_MS)


def test_demo_teller_reads_a_sample_card_and_gets_an_answer(qtbot, demo_pad) -> None:  # type: ignore[no-untyped-def]
    pad = demo_pad("teller")
    page = pad.window.page
    assert isinstance(page, TellerPage)
    qtbot.waitUntil(lambda: page.card is not None and page.scenario.count() > 0, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: len(page.recent) == 3, timeout=WAIT_MS)  # the drawn-face camera
    page.customer.setText("C202600001")
    page.scenario.setCurrentIndex(page.scenario.findData("card_replacement"))
    page.consent.setChecked(True)
    page.capture_button.click()
    answers: list[object] = []
    page.result_shown.connect(answers.append)
    page.verify_button.click()
    qtbot.waitUntil(lambda: bool(answers), timeout=WAIT_MS)
    assert page.result.text() == Texts("en")("auth.verdict.approve")
    assert "Face match" in page.reasons.text()


def test_demo_supervisor_gets_escalations(qtbot, demo_pad) -> None:  # type: ignore[no-untyped-def]
    pad = demo_pad("supervisor", replay=Replay("supervisor", escalation_every_s=0.3))
    page = pad.window.page
    assert isinstance(page, SupervisorPage)
    qtbot.waitUntil(lambda: len(page.queue.items) >= 2, timeout=WAIT_MS)
    page.list.setCurrentRow(0)
    assert page.detail.card_photo.pixmap() is not None and not page.detail.card_photo.pixmap().isNull()


def test_branch_pad_alone_says_how_to_look_at_the_app(tmp_path: Path) -> None:
    proc = branch_pad(cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "branch-pad --demo" in err and len(err.strip().splitlines()) == 1


def test_demo_takes_a_teller_config_without_mqtt(tmp_path: Path) -> None:
    config = tmp_path / "teller.toml"
    config.write_text('branch_id = "b7"\nrole = "teller"\nlanguage = "en"\n', encoding="utf-8")
    log = tmp_path / "pad.log"
    proc = branch_pad("--demo", "--config", str(config), "--log-level", "INFO",
                      env={"QT_QPA_PLATFORM": "offscreen"}, log=log)
    try:
        assert wait_until(lambda: "connected to broker" in log.read_text() or proc.poll() is not None, 60)
        assert proc.poll() is None, log.read_text()
        proc.terminate()
        assert proc.wait(30) == 0, log.read_text()
    finally:
        proc.kill()


@pytest.fixture(autouse=True)
def _no_stray_state() -> Iterator[None]:
    """The demo's state (outbox, journal) lives in a temporary folder removed at exit."""
    import tempfile

    before = set(Path(tempfile.gettempdir()).glob("branch-pad-demo-*"))
    yield
    assert set(Path(tempfile.gettempdir()).glob("branch-pad-demo-*")) <= before


# --- `make demo`'s PAD process (edge/tools/demo/pad.py) --------------------------------------


@pytest.fixture
def demo_bus(tmp_path: Path) -> Iterator[tuple[MqttConfig, BranchClient]]:
    base = MqttConfig(device_id="edge", outbox_path=tmp_path / "edge-outbox.db",
                      seen_ids_path=tmp_path / "edge-seen.db")
    with demo_broker(base) as bus:
        edge = BranchClient(bus, Identity("demo", "edge", "edge"))
        edge.start()
        yield bus, edge
        edge.stop()


def test_make_demo_leaves_the_pad_window_open_on_a_display(tmp_path: Path, demo_bus, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bus, edge = demo_bus
    with xvfb(tmp_path, (1280, 800)) as screen:
        monkeypatch.setenv("DISPLAY", screen.display)
        monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
        pad = PadProcess.start(bus, "demo", tmp_path / "pad", tmp_path / "cards", count=2, language="en")
        try:
            assert pad.interactive and pad.wait_connected(60), pad.log
            for seed in range(2):
                edge.publish(sample_arrival("demo", customer_id=f"c-{seed}", seed=seed))
            assert wait_until(lambda: any("saved card-002" in line for line in pad.log)
                              or pad.proc.poll() is not None, 60), pad.log
            assert pad.proc.poll() is None, "the window closed by itself after the arrivals"
            cards = pad.finish()  # the demo closes it when the user is done
        finally:
            pad.proc.kill()
    assert pad.proc.returncode == 0, pad.log
    assert [c.name for c in cards] == ["card-001-c-0.png", "card-002-c-1.png"]


def test_make_demo_says_why_the_pad_could_not_start(tmp_path: Path, demo_bus, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    bus, _ = demo_bus
    monkeypatch.setenv("DISPLAY", ":9999")  # no X server there: Qt's xcb plugin cannot connect
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    shown: list[str] = []
    cards = tmp_path / "cards"
    assert start_pad_app(bus, "demo", tmp_path, cards, 1, show=shown.append) is None
    said = "\n".join(shown)
    assert "the PAD app was killed by signal SIGABRT" in said or "the PAD app exited" in said, said
    assert "xcb" in said and "docs/operations/pad-display.md" in said
    assert not list(cards.glob("*.png"))
