"""Never an empty card: an arrival without a display name (enrolled with --allow-unnamed), a
tier or a CRM portrait is shown by its customer id with a visible "name missing" marker, in
the feed row and on the card, in both languages."""

from __future__ import annotations

from dataclasses import replace

import pytest
from PyQt6.QtWidgets import QApplication, QLabel

from mqtt.messages import Arrival, CustomerCard, Portrait
from ui.bridge import PadBridge
from ui.pages.base import PageContext
from ui.pages.rm import RmPage
from ui.state.config import parse_pad_config
from ui.state.i18n import Texts
from ui.state.sample import sample_arrival
from ui.widgets.screen import Metrics
from ui.window import PadWindow

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")


def unnamed(name: str = "") -> Arrival:
    arrival = sample_arrival(customer_id="C-77", assigned_rm=None)
    card = CustomerCard(customer_id="C-77", display_name=name, tier="", masked_id_number="",
                        masked_account="")
    return replace(arrival, customer=card, portrait=Portrait(segment="", aum_band="", risk_level=""),
                   recommendations=[], talking_points=[], talking_points_en=[])


@pytest.mark.parametrize("name", ["", "   "])
@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_an_arrival_without_a_name_is_shown_by_id_with_a_marker(qtbot, language: str, name: str) -> None:  # type: ignore[no-untyped-def]
    config = parse_pad_config({"branch_id": "b1", "mqtt": {"device_id": "rm-1", "outbox_path": ":memory:"}})
    win = PadWindow(PageContext(config, PadBridge(), lambda m: None, Texts(language), Metrics(96.0)))
    qtbot.addWidget(win)
    win.resize(1280, 800)
    win.show()
    qtbot.waitExposed(win)
    page = win.page
    assert isinstance(page, RmPage)
    arrival = unnamed(name)
    page.on_bridge_arrival_received(arrival)
    marker = Texts(language)("card.name_missing")
    item = page.feed_list.item(0)
    assert item is not None
    row = item.text()
    first_line = row.splitlines()[0]
    assert first_line.startswith("C-77") and marker in first_line, row
    assert "·  ·" not in row and not first_line.endswith("·")
    page.on_feed_list_arrival_chosen(arrival.id)
    QApplication.processEvents()  # labels added to a shown layout are shown by a queued call
    texts = [w.text() for w in page.card.findChildren(QLabel) if w.isVisibleTo(page.card) and w.text()]
    assert "C-77" in texts and any(marker in t for t in texts), texts
    # No label shows a field name with nothing after it.
    assert not [t for t in texts if t.rstrip().endswith(":")], texts


def test_a_named_arrival_has_no_marker(qtbot) -> None:  # type: ignore[no-untyped-def]
    config = parse_pad_config({"branch_id": "b1", "mqtt": {"device_id": "rm-1", "outbox_path": ":memory:"}})
    win = PadWindow(PageContext(config, PadBridge(), lambda m: None, Texts("en"), Metrics(96.0)))
    qtbot.addWidget(win)
    page = win.page
    assert isinstance(page, RmPage)
    page.on_bridge_arrival_received(unnamed("王晓明"))
    item = page.feed_list.item(0)
    assert item is not None
    row = item.text()
    assert row.startswith("王晓明") and "Name missing" not in row
