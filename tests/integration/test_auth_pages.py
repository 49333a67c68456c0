"""The teller and supervisor pages offscreen: the simulated card reader through the teller
page to the real edge service over a real Mosquitto, and back; a supervisor decides."""

from __future__ import annotations

import base64
import os
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from PyQt6.QtCore import Qt

from edge.config import EdgeConfig
from edge.core.auth_policy import Policies
from edge.core.idcard_rules import mod11_2_check_char
from edge.counter.policies import load_policies
from edge.counter.service import AuthService, auth_subscriptions, scenarios_message
from edge.store.crypto import KeyRing
from edge.store.database import Store
from edge.vision.card_photo import degrade_card, jpeg_bytes
from edge.vision.imageio import load_image
from mqtt.client import BranchClient
from mqtt.messages import AuthEscalation, AuthResponse, Score, utc_now
from tests.mqtt_fixtures import client_config, make_client
from ui.app import PadApp
from ui.bridge import PadBridge
from ui.devices.idcard.card import IdCard
from ui.devices.idcard.samples import write_deck
from ui.devices.idcard.simulator import PtySimulator, load_cards
from ui.pages.base import PageContext
from ui.pages.supervisor import SupervisorPage
from ui.pages.teller import TellerPage
from ui.state.config import PadConfig
from ui.state.i18n import Texts
from ui.widgets.screen import Metrics

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")

WAIT_MS = 30_000
CUSTOMER = "c-100"
FIRST17 = "11010519491231002"
ID_NUMBER = FIRST17 + mod11_2_check_char(FIRST17)


@pytest.fixture
def counter(tmp_path, engine, data_dir, monkeypatch) -> Iterator[PtySimulator]:
    """A simulated reader holding a card with a real (degraded) face photo, and a
    folder 'camera' showing the same person live."""
    source = load_image(data_dir / "faces_asia" / "Hitomi_Soga" / "Hitomi_Soga_0001.jpg")
    face = engine.analyze(source, max_faces=1, embed=False)[0].face
    card = IdCard(" ", "测试", "2", "19491231", ID_NUMBER, "20150301", "长期", nation_code="01")
    deck = write_deck(tmp_path / "deck", [card], [jpeg_bytes(degrade_card(source, face))], remove_after=30)
    live = tmp_path / "camera"
    live.mkdir()
    for i in (2, 3, 4):
        name = f"Hitomi_Soga_000{i}.jpg"
        (live / name).symlink_to(data_dir / "faces_asia" / "Hitomi_Soga" / name)
    with PtySimulator(load_cards(deck)) as simulator:
        monkeypatch.setenv("BRANCH_PAD_IDCARD_PORT", simulator.path)
        monkeypatch.setenv("BRANCH_PAD_WLT_DECODER", f"simulator:{deck}")
        monkeypatch.setenv("BRANCH_PAD_CAMERA", str(live))
        yield simulator


@pytest.fixture
def start_edge(provisioned_branch, mosquitto_broker, tmp_path,
               engine) -> Iterator[Callable[[Policies], tuple[Path, KeyRing]]]:
    """Starts the edge's authorization service under the given policies; returns its store
    (path and keys)."""
    mosquitto_broker(provisioned_branch)
    keys = KeyRing(os.urandom(32))
    db = tmp_path / "edge.db"
    with Store.open(db, keys) as store:
        store.upsert_customer(CUSTOMER, actor="test")
        store.set_holder_id_number(CUSTOMER, ID_NUMBER, actor="test")
    running: list[tuple[AuthService, BranchClient]] = []

    def start(policies: Policies) -> tuple[Path, KeyRing]:
        client = make_client(provisioned_branch, "edge-1", tmp_path / "edge",
                             subscriptions=auth_subscriptions("b1"))
        service = AuthService(engine, lambda: Store.open(db, keys, create=False), client, policies)
        client.start()
        assert client.wait_connected(10)
        service.start(threading.Event())
        running.append((service, client))
        return db, keys

    yield start
    for service, client in running:
        service.stop()
        client.stop(drain_s=1)


@pytest.fixture
def edge_service(start_edge) -> tuple[Path, KeyRing]:
    return start_edge(load_policies())


class Pads:
    """PAD apps on the test broker; those still running are stopped at the end."""

    def __init__(self, qtbot, provisioned_branch, state_dir: Path) -> None:
        self.qtbot, self.provisioned_branch, self.state_dir = qtbot, provisioned_branch, state_dir
        self.running: list[PadApp] = []

    def __call__(self, device: str, role: str, language: str = "zh-CN") -> PadApp:
        mqtt = client_config(self.provisioned_branch, device, self.state_dir)
        config = PadConfig.model_validate({"branch_id": "b1", "role": role, "mqtt": mqtt})
        pad = PadApp(config, language)
        self.qtbot.addWidget(pad.window)
        pad.window.resize(1280, 800)
        pad.window.show()
        pad.start()
        self.qtbot.waitUntil(lambda: pad.window.header.online is True, timeout=WAIT_MS)
        self.running.append(pad)
        return pad

    def stop(self, pad: PadApp) -> None:
        page = pad.window.page
        if isinstance(page, TellerPage):
            page.close_devices()
        pad.stop()
        self.running.remove(pad)


@pytest.fixture
def start_pad(qtbot, provisioned_branch, tmp_path) -> Iterator[Pads]:
    pads = Pads(qtbot, provisioned_branch, tmp_path / "pads")
    yield pads
    for pad in list(pads.running):
        pads.stop(pad)


def read_card_and_capture(qtbot, teller: TellerPage) -> None:
    qtbot.waitUntil(lambda: teller.card is not None, timeout=WAIT_MS)
    assert teller.card.photo_jpeg, "the simulator's photo went through the decoder"
    assert "请取走证件" in teller.reader_label.text()
    assert ID_NUMBER not in teller.card_panel.fields.text()  # masked on screen
    assert teller.card_panel.checks.text() == "证件校验通过"
    qtbot.waitUntil(lambda: len(teller.recent) == 3, timeout=WAIT_MS)
    teller.consent.setChecked(True)  # the customer consents to face verification (unticked by default)
    teller.capture_button.click()
    assert teller.captured_label.text() == "已采集 3 帧"
    teller.customer.setText(CUSTOMER)


def choose(teller: TellerPage, scenario: str) -> None:
    teller.scenario.setCurrentIndex(teller.scenario.findData(scenario))


def test_simulated_card_through_the_teller_page_is_approved(qtbot, counter, edge_service, start_pad):
    teller = start_pad("teller-1", "teller").window.page
    assert isinstance(teller, TellerPage)
    read_card_and_capture(qtbot, teller)
    choose(teller, "card_replacement")
    with qtbot.waitSignal(teller.result_shown, timeout=WAIT_MS) as shown:
        teller.verify_button.click()
    answer: AuthResponse = shown.args[0]
    assert answer.verdict == "approve", answer.reasons
    assert teller.result.text() == "通过"
    assert "全部核验通过" in teller.reasons.text() and "人证比对" in teller.reasons.text()


def test_escalation_reaches_the_supervisor_page_and_the_decision_the_teller(
        qtbot, counter, edge_service, start_pad):
    supervisor = start_pad("sup-1", "supervisor").window.page
    teller = start_pad("teller-1", "teller", "en").window.page
    qtbot.waitUntil(lambda: teller.card is not None and len(teller.recent) == 3, timeout=WAIT_MS)
    teller.consent.setChecked(True)
    teller.capture_button.click()
    teller.customer.setText(CUSTOMER)
    choose(teller, "account_closure")  # never approved automatically
    teller.verify_button.click()
    qtbot.waitUntil(lambda: len(supervisor.queue.items) == 1, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: teller.result.text() == "Sent to a supervisor; please wait", timeout=WAIT_MS)
    assert supervisor.list.count() == 1
    assert "销户" in supervisor.list.item(0).text() and ID_NUMBER[-4:] in supervisor.list.item(0).text()
    assert "该业务须主管授权" in supervisor.detail.reasons.text()
    assert not supervisor.detail.card_photo.pixmap().isNull()
    supervisor.approve.click()
    assert supervisor.status.text() == "请填写授权说明"  # a reason is required
    supervisor.reason.setText("核对原件无误")
    with qtbot.waitSignal(teller.result_shown, timeout=WAIT_MS,
                          check_params_cb=lambda r: r.verdict != "escalate") as shown:
        supervisor.approve.click()
    assert shown.args[0].verdict == "approve" and shown.args[0].decided_by == "sup-1"
    assert teller.result.text() == "Approved"
    assert "核对原件无误" in teller.reasons.text()
    assert supervisor.list.count() == 0


def test_supervisor_queue_drops_expired_escalations_and_switches_language(qtbot):
    sent: list[object] = []
    config = PadConfig.model_validate({"branch_id": "b1", "role": "supervisor",
                                       "mqtt": {"device_id": "sup-1"}})
    bridge = PadBridge()
    page = SupervisorPage(PageContext(config, bridge, sent.append, Texts("zh-CN"), Metrics(96)))
    qtbot.addWidget(page)
    bridge.message_received.emit(scenarios_message("b1", load_policies()))
    photo = base64.b64encode(b"not a jpeg").decode()
    escalation = AuthEscalation(
        branch_id="b1", expires_at=utc_now() + timedelta(seconds=1.5), request_id=str(uuid.uuid4()),
        teller_device_id="teller-1", scenario="password_reset", masked_card_number="110105********0023",
        reasons=["face_match_low"], scores=[Score(name="face_match", value=0.41, threshold=0.46)],
        card_photo_jpeg_b64=photo, live_jpeg_b64=None)
    with qtbot.waitSignal(page.badge_changed) as badge:
        bridge.message_received.emit(escalation)
    assert badge.args == [1]
    assert "密码重置" in page.list.item(0).text()
    assert "人证比对: 0.410 (≥ 0.460)" in page.detail.scores.text()
    page.retranslate(Texts("en"))
    assert "Password reset" in page.list.item(0).text()
    assert "the face match score is low" in page.detail.reasons.text()
    bridge.message_received.emit(escalation)  # a duplicate does not add a row
    assert page.list.count() == 1
    qtbot.waitUntil(lambda: page.list.count() == 0, timeout=5000)
    assert sent == []


def test_counter_camera_option_asks_the_edge_for_its_own_frames(qtbot, counter, edge_service, start_pad):
    teller = start_pad("teller-1", "teller").window.page
    assert isinstance(teller, TellerPage)
    read_card_and_capture(qtbot, teller)
    assert teller.use_counter_camera.text() == "由柜台摄像头采集人脸（网点电脑）"
    teller.use_counter_camera.setChecked(True)
    request = teller.build_request()
    assert request.live_source == "counter_camera" and request.live_jpeg_b64 == []
    teller.use_counter_camera.setChecked(False)
    request = teller.build_request()
    assert request.live_source == "terminal" and len(request.live_jpeg_b64) == 3


def test_counter_devices_come_from_pad_toml_and_the_environment_overrides(tmp_path, monkeypatch):
    from ui.devices.camera import FolderFrames
    from ui.pages.teller import counter_devices
    from ui.state.config import CounterConfig

    monkeypatch.delenv("BRANCH_PAD_IDCARD_PORT", raising=False)
    monkeypatch.delenv("BRANCH_PAD_CAMERA", raising=False)
    (tmp_path / "cam").mkdir()
    reader, camera = counter_devices(CounterConfig(camera=str(tmp_path / "cam")))
    assert reader is None and isinstance(camera, FolderFrames)
    monkeypatch.setenv("BRANCH_PAD_CAMERA", str(tmp_path / "absent"))
    assert counter_devices(CounterConfig(camera=str(tmp_path / "cam")))[1] is None


BRANCH_POLICIES = """
escalation_timeout_s = 90

[defaults]
match_threshold = 0.42

[scenario.safe_deposit_access]
title = "保管箱开箱"
title_en = "Safe-deposit box access"
rationale = "The box holds what the customer declared to nobody: a supervisor always looks."
auto_approve = false

[scenario.card_replacement]
title = "补卡（本网点）"
title_en = "Card replacement (this branch)"
auto_approve_max_amount = 2000.0
"""


def test_the_teller_offers_exactly_the_scenarios_of_the_edges_policy_file(qtbot, tmp_path, start_edge,
                                                                         start_pad):
    path = tmp_path / "branch-policies.toml"
    path.write_text(BRANCH_POLICIES, encoding="utf-8")
    cfg = EdgeConfig.model_validate({"auth": {"enabled": True, "policies": str(path)}})
    policies = load_policies(cfg.auth.policies)  # as `branch-edge run` loads them
    assert set(policies.scenarios) != set(load_policies().scenarios)  # not the packaged file

    teller = start_pad("teller-1", "teller").window.page
    assert isinstance(teller, TellerPage)
    # No edge yet: the drop-down is empty, disabled and says what it waits for.
    assert teller.scenario.count() == 0 and not teller.scenario.isEnabled()
    assert teller.scenario.placeholderText() == "正在等待网点服务器发布业务类型…"
    assert teller.scenario_hint.text() == "正在等待网点服务器发布业务类型…"
    assert teller.build_request() == "auth.need_scenario"

    store = start_edge(policies)
    qtbot.waitUntil(lambda: teller.scenario.count() > 0, timeout=WAIT_MS)
    combo = teller.scenario
    offered = [(combo.itemText(i), combo.itemData(i)) for i in range(combo.count())]
    assert offered == [("保管箱开箱", "safe_deposit_access"), ("补卡（本网点）", "card_replacement")]
    assert teller.scenario.isEnabled()
    assert teller.scenario_hint.text() == "该业务须主管授权"
    assert "nobody" in teller.scenario.itemData(0, Qt.ItemDataRole.ToolTipRole)
    choose(teller, "card_replacement")
    assert teller.scenario_hint.text() == "金额超过 2,000 元须主管授权"
    published = teller.catalogue.latest
    assert published is not None and published.escalation_timeout_s == 90
    with Store.open(*store, create=False) as opened:  # the edge audited what it told the terminals
        entries = opened.audit_entries(published.id)
    assert [e["action"] for e in entries] == ["auth_scenarios_published"]
    assert entries[0]["details"]["policy_sha256"] == published.policy_sha256
    teller.retranslate(Texts("en"))
    assert teller.scenario.currentText() == "Card replacement (this branch)"

    # The list is retained on the broker: a terminal restarted later gets it again, although
    # it has seen that message's id before.
    start_pad.stop(start_pad.running[0])
    again = start_pad("teller-1", "teller").window.page
    assert isinstance(again, TellerPage)
    qtbot.waitUntil(lambda: again.scenario.count() == 2, timeout=WAIT_MS)
    assert again.catalogue.latest is not None and again.catalogue.latest.id == published.id
