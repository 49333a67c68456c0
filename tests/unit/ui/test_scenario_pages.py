"""The teller and supervisor pages show the scenarios the edge publishes, nothing else
(offscreen Qt, messages handed to the bridge as the MQTT link would)."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import date, timedelta

import pytest
from PyQt6.QtCore import Qt

from edge.core.auth_policy import policies_from_dict
from edge.counter.policies import load_policies
from edge.counter.service import scenarios_message
from mqtt import codec
from mqtt.messages import AuthEscalation, AuthRequest, AuthScenarios, utc_now
from ui.bridge import PadBridge
from ui.devices.idcard.samples import sample_cards
from ui.pages.auth_words import ScenarioCatalogue
from ui.pages.base import PageContext
from ui.pages.supervisor import SupervisorPage
from ui.pages.teller import TellerPage
from ui.state.config import PadConfig
from ui.state.i18n import Texts
from ui.widgets.screen import Metrics

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")

BRANCH = policies_from_dict({"scenario": {
    "safe_deposit_access": {"title": "保管箱开箱", "title_en": "Safe-deposit box access",
                            "auto_approve": False, "rationale": "a supervisor always looks"},
    "card_replacement": {"title": "补卡", "title_en": "Card replacement", "auto_approve_max_amount": 2000},
    "statement": {"title": "打印对账单", "title_en": "Statement"},
}})


def context(role: str, device: str) -> tuple[PageContext, PadBridge, list[object]]:
    sent: list[object] = []
    config = PadConfig.model_validate({"branch_id": "b1", "role": role, "mqtt": {"device_id": device}})
    bridge = PadBridge()
    return PageContext(config, bridge, sent.append, Texts("zh-CN"), Metrics(96)), bridge, sent


def offered(page: TellerPage) -> list[tuple[str, str]]:
    return [(page.scenario.itemText(i), page.scenario.itemData(i)) for i in range(page.scenario.count())]


def test_until_the_edge_speaks_the_teller_waits_visibly_and_sends_nothing(qtbot) -> None:
    ctx, _bridge, sent = context("teller", "teller-1")
    page = TellerPage(ctx)
    qtbot.addWidget(page)
    assert offered(page) == [] and not page.scenario.isEnabled()
    assert page.scenario.placeholderText() == page.scenario_hint.text() == "正在等待网点服务器发布业务类型…"
    page.verify_button.click()
    assert page.result.text() == "业务类型尚未就绪，请稍候" and sent == []
    page.retranslate(Texts("en"))
    assert page.scenario.placeholderText() == "Waiting for the edge's list of transactions…"


def test_the_teller_offers_what_the_edge_published_and_follows_its_updates(qtbot) -> None:
    ctx, bridge, _sent = context("teller", "teller-1")
    page = TellerPage(ctx)
    qtbot.addWidget(page)
    bridge.message_received.emit(scenarios_message("b1", BRANCH))
    assert offered(page) == [("保管箱开箱", "safe_deposit_access"), ("补卡", "card_replacement"),
                             ("打印对账单", "statement")]
    assert page.scenario.isEnabled() and page.scenario_hint.text() == "该业务须主管授权"
    assert page.scenario.itemData(0, Qt.ItemDataRole.ToolTipRole) == "a supervisor always looks"
    page.scenario.setCurrentIndex(1)
    assert page.scenario_hint.text() == "金额超过 2,000 元须主管授权"
    page.scenario.setCurrentIndex(2)
    assert page.scenario_hint.text() == "核验通过即可自动授权"
    page.retranslate(Texts("en"))
    assert page.scenario.currentText() == "Statement"  # the choice survives a language switch
    assert page.scenario_hint.text() == "Approved automatically when the checks pass"

    bridge.message_received.emit(scenarios_message("b2", load_policies()))
    assert [name for _, name in offered(page)] == list(BRANCH.scenarios)  # not this branch's edge
    bridge.message_received.emit(scenarios_message("b1", load_policies()))  # the edge restarted
    assert [name for _, name in offered(page)] == list(load_policies().scenarios)
    assert "statement" not in [name for _, name in offered(page)]


def test_a_request_expires_when_the_edge_would_no_longer_serve_it(qtbot) -> None:
    ctx, bridge, _sent = context("teller", "teller-1")
    page = TellerPage(ctx)
    qtbot.addWidget(page)
    quick = dataclasses.replace(BRANCH, request_ttl_s=20.0)
    bridge.message_received.emit(scenarios_message("b1", quick))
    page.card = sample_cards(date.today())[0]
    page.customer.setText("c-1")
    before = utc_now()
    request = page.build_request()
    assert isinstance(request, AuthRequest) and request.scenario == "safe_deposit_access"
    assert before + timedelta(seconds=20) <= request.expires_at <= utc_now() + timedelta(seconds=20)
    assert request.card.card_type == "resident"  # the card's wire form, from the core's mapping



def a_teller_with_a_card(qtbot) -> tuple[TellerPage, list[object]]:
    ctx, bridge, sent = context("teller", "teller-1")
    page = TellerPage(ctx)
    qtbot.addWidget(page)
    bridge.message_received.emit(scenarios_message("b1", BRANCH))
    page.scenario.setCurrentIndex(1)  # card_replacement: a supervisor decides above 2,000 CNY
    page.card = sample_cards(date.today())[0]
    page.customer.setText("c-1")
    return page, sent


def test_the_amount_the_teller_types_travels_as_a_number(qtbot) -> None:
    page, _sent = a_teller_with_a_card(qtbot)
    qtbot.keyClicks(page.amount, " 2,500.50 ")  # thousands separators and spaces as people type them
    request = page.build_request()
    assert isinstance(request, AuthRequest) and request.scenario == "card_replacement"
    assert request.amount == 2500.5 and isinstance(request.amount, float)
    decoded = codec.decode(codec.encode(request))
    assert isinstance(decoded, AuthRequest) and decoded.amount == 2500.5
    for empty in ("", "   "):  # no amount: the request carries none (the limit does not apply)
        page.amount.setText(empty)
        request = page.build_request()
        assert isinstance(request, AuthRequest) and request.amount is None


def test_an_amount_that_is_not_a_sum_of_money_is_refused_before_sending(qtbot) -> None:
    page, sent = a_teller_with_a_card(qtbot)
    # NaN and infinity parse as floats but the contract refuses them (the request would never
    # leave the outbox); a negative amount would pass under any supervisor limit.
    for typed in ("12a", "1.2.3", "nan", "inf", "-1e400", "-2500"):
        page.amount.setText(typed)
        assert page.build_request() == "auth.bad_amount", typed
    page.verify_button.click()
    assert page.result.text() == "金额格式不正确" and sent == []
    page.amount.setText("0")
    request = page.build_request()
    assert isinstance(request, AuthRequest) and request.amount == 0.0

def test_the_supervisor_titles_escalations_with_the_edges_words(qtbot) -> None:
    ctx, bridge, _sent = context("supervisor", "sup-1")
    page = SupervisorPage(ctx)
    qtbot.addWidget(page)
    escalation = AuthEscalation(
        branch_id="b1", expires_at=utc_now() + timedelta(minutes=2), request_id=str(uuid.uuid4()),
        teller_device_id="teller-1", scenario="safe_deposit_access", masked_card_number="110105********0023",
        reasons=["supervisor_required"])
    bridge.message_received.emit(escalation)
    assert page.list.item(0).text().startswith("safe_deposit_access")  # no titles yet: the name
    bridge.message_received.emit(scenarios_message("b1", BRANCH))
    assert page.list.item(0).text().startswith("保管箱开箱")
    assert page.detail.title.text() == "保管箱开箱"
    page.retranslate(Texts("en"))
    assert page.list.item(0).text().startswith("Safe-deposit box access")


def test_the_catalogue_keeps_the_latest_list_of_its_own_branch() -> None:
    catalogue = ScenarioCatalogue("b1")
    first = scenarios_message("b1", BRANCH)
    assert catalogue.update(first) and not catalogue.update(first)  # the same message again
    assert not catalogue.update(scenarios_message("b2", BRANCH))
    assert catalogue.title("card_replacement", "en") == "Card replacement"
    assert catalogue.title("gone", "zh-CN") == "gone"
    newer = scenarios_message("b1", load_policies())
    assert isinstance(newer, AuthScenarios) and catalogue.update(newer)
    assert catalogue.get("card_replacement") is not None and catalogue.get("statement") is None
