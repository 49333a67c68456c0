"""The teller page sends no live face without the customer's consent: checked on the broker.

A teller PAD (offscreen, the real page) reads a card from the simulated reader and sees the
customer through a folder camera; an edge-1 client on the same real Mosquitto collects the
authorization requests that actually reach the edge.  With the consent box unticked no live
frame leaves the terminal, and the edge is not asked to take frames from its counter camera
either; ticked, the captured frames go (the control that shows the frames were there to send).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.core.idcard_rules import mod11_2_check_char
from edge.counter.policies import load_policies
from edge.counter.service import auth_subscriptions, scenarios_message
from mqtt.client import BranchClient
from mqtt.messages import AuthRequest
from mqtt.receiver import Delivery
from tests.mqtt_fixtures import client_config, make_client, wait_until
from ui.app import PadApp
from ui.devices.idcard.card import IdCard
from ui.devices.idcard.samples import write_deck
from ui.devices.idcard.simulator import PtySimulator, load_cards
from ui.pages.teller import LIVE_FRAMES, TellerPage
from ui.state.config import PadConfig

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")

WAIT_MS = 30_000
FIRST17 = "11010519491231002"
ID_NUMBER = FIRST17 + mod11_2_check_char(FIRST17)
PERSON = ("faces_asia", "Hitomi_Soga")
# The edge's policy file (cosine thresholds: no model pack calibration involved).
POLICIES = """
[defaults]
match_threshold = 0.42

[scenario.card_replacement]
title = "补卡"
title_en = "Card replacement"
"""


@pytest.fixture
def counter(tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A simulated reader holding one card, and a folder 'camera' showing the customer."""
    folder = data_dir.joinpath(*PERSON)
    photos = sorted(folder.glob("*.jpg"))
    assert len(photos) >= 1 + LIVE_FRAMES
    card = IdCard(" ", "测试", "2", "19491231", ID_NUMBER, "20150301", "长期", nation_code="01")
    deck = write_deck(tmp_path / "deck", [card], [photos[0].read_bytes()], remove_after=30)
    live = tmp_path / "camera"
    live.mkdir()
    for photo in photos[1:1 + LIVE_FRAMES]:
        (live / photo.name).symlink_to(photo)
    with PtySimulator(load_cards(deck)) as simulator:
        monkeypatch.setenv("BRANCH_PAD_IDCARD_PORT", simulator.path)
        monkeypatch.setenv("BRANCH_PAD_WLT_DECODER", f"simulator:{deck}")
        monkeypatch.setenv("BRANCH_PAD_CAMERA", str(live))
        yield


class EdgeInbox:
    """The edge's side of the broker: publishes the scenarios, collects the requests."""

    def __init__(self, provisioned_branch, state: Path, policies: Path) -> None:
        self._lock = threading.Lock()
        self._requests: dict[str, AuthRequest] = {}
        self.client: BranchClient = make_client(provisioned_branch, "edge-1", state,
                                                subscriptions=auth_subscriptions("b1"),
                                                handler=self._collect)
        self.client.start()
        assert self.client.wait_connected(10)
        self.client.publish(scenarios_message("b1", load_policies(policies)))

    def _collect(self, delivery: Delivery) -> None:
        if isinstance(delivery.message, AuthRequest):
            with self._lock:
                self._requests[delivery.message.id] = delivery.message

    def request(self, request_id: str) -> AuthRequest | None:
        with self._lock:
            return self._requests.get(request_id)


@pytest.fixture
def edge(provisioned_branch, mosquitto_broker, tmp_path: Path) -> Iterator[EdgeInbox]:
    mosquitto_broker(provisioned_branch)
    policies = tmp_path / "policies.toml"
    policies.write_text(POLICIES, encoding="utf-8")
    inbox = EdgeInbox(provisioned_branch, tmp_path / "edge", policies)
    yield inbox
    inbox.client.stop(drain_s=0.5)


@pytest.fixture
def teller(qtbot, counter, edge: EdgeInbox, provisioned_branch, tmp_path: Path) -> Iterator[TellerPage]:
    mqtt = client_config(provisioned_branch, "teller-1", tmp_path / "pads")
    pad = PadApp(PadConfig.model_validate({"branch_id": "b1", "role": "teller", "mqtt": mqtt}), "zh-CN")
    qtbot.addWidget(pad.window)
    pad.window.resize(1280, 800)
    pad.window.show()
    pad.start()
    page = pad.window.page
    assert isinstance(page, TellerPage)
    try:
        qtbot.waitUntil(lambda: pad.window.header.online is True, timeout=WAIT_MS)
        qtbot.waitUntil(lambda: page.scenario.count() > 0, timeout=WAIT_MS)  # the edge's list came
        qtbot.waitUntil(lambda: page.card is not None and len(page.recent) == LIVE_FRAMES, timeout=WAIT_MS)
        page.capture_button.click()
        assert len(page.captured) == LIVE_FRAMES
        page.customer.setText("c-100")
        page.scenario.setCurrentIndex(page.scenario.findData("card_replacement"))
        yield page
    finally:
        page.close_devices()
        pad.stop()


def verify(qtbot, page: TellerPage, edge: EdgeInbox) -> AuthRequest:
    """Click verify; return the request as the edge received it from the broker."""
    with qtbot.waitSignal(page.request_sent, timeout=WAIT_MS) as sent:
        page.verify_button.click()
    request_id = sent.args[0].id
    assert wait_until(lambda: edge.request(request_id) is not None, WAIT_MS / 1000)
    received = edge.request(request_id)
    assert received is not None
    return received


def test_without_consent_no_live_frame_is_published(qtbot, teller: TellerPage, edge: EdgeInbox) -> None:
    teller.consent.setChecked(False)
    teller.use_counter_camera.setChecked(False)
    received = verify(qtbot, teller, edge)
    assert received.live_jpeg_b64 == []
    assert received.live_source == "terminal"  # the edge is not asked to take any either

    # Nor through the counter camera option: unticked consent wins over it.
    teller.use_counter_camera.setChecked(True)
    received = verify(qtbot, teller, edge)
    assert received.live_jpeg_b64 == []
    assert received.live_source != "counter_camera"

    # Control: with consent, the same captured frames are published.
    teller.consent.setChecked(True)
    teller.use_counter_camera.setChecked(False)
    received = verify(qtbot, teller, edge)
    assert len(received.live_jpeg_b64) == LIVE_FRAMES
    assert received.live_source == "terminal"
