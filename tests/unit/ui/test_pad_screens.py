"""Screenshots of the PAD (feed, customer card, outcome form) in both languages and the two
tablet sizes, both orientations; touch targets of at least 9 mm; plug-in role pages.

The documentation's pictures come from ``branch-pad screenshots`` (``make screenshots``).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PyQt6.QtCore import Qt, pyqtSignal
from PyQt6.QtGui import QImage
from PyQt6.QtWidgets import QLabel, QPushButton, QWidget

from ui.bridge import PadBridge
from ui.pages import base
from ui.pages.base import MissingPage, PageContext
from ui.pages.rm import RmPage
from ui.screenshots import save_png
from ui.state.config import PadConfig, parse_pad_config
from ui.state.i18n import Texts
from ui.state.sample import sample_arrival
from ui.widgets.screen import Metrics, mm_to_px
from ui.window import PadWindow

# WORKAROUND: the offscreen platform warns "does not support propagateSizeHints()" for every
# top-level window with a layout; it is not about our code.
pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")

SIZES = {"1280x800": (1280, 800), "1920x1200": (1920, 1200), "800x1280": (800, 1280)}


def config(role: str = "rm") -> PadConfig:
    return parse_pad_config({"branch_id": "b1", "role": role,
                             "mqtt": {"device_id": "rm-1", "outbox_path": ":memory:"}})


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def window(qtbot) -> Callable[..., PadWindow]:  # type: ignore[no-untyped-def]
    made: list[PadWindow] = []

    def make(language: str = "zh-CN", role: str = "rm", size: tuple[int, int] = (1280, 800)) -> PadWindow:
        published: list[object] = []
        context = PageContext(config(role), PadBridge(), published.append, Texts(language), Metrics(96.0))
        win = PadWindow(context)
        qtbot.addWidget(win)
        win.resize(*size)
        win.show()
        qtbot.waitExposed(win)
        made.append(win)
        return win

    return make


def fill(win: PadWindow) -> RmPage:
    page = win.page
    assert isinstance(page, RmPage)
    arrivals = [sample_arrival(name="李娜", customer_id="c-2", assigned_rm="rm-2", seed=3),
                sample_arrival(name="陈建国", customer_id="c-3", assigned_rm=None, seed=5),
                sample_arrival()]
    for arrival in arrivals:
        page.context.bridge.arrival_received.emit(arrival)
    page.on_feed_list_arrival_chosen(arrivals[-1].id)
    page.context.bridge.connection_changed.emit(True)
    return page


def not_blank(path: Path, win: PadWindow) -> None:
    """The card's part of the picture (wherever the layout put it) has content, not just background."""
    page = win.page
    assert isinstance(page, RmPage)
    shown = page.right.currentWidget()
    assert shown is not None
    area = shown.rect().translated(shown.mapTo(win, shown.rect().topLeft()))
    image = QImage(str(path))
    colours = {image.pixel(x, y) for x in range(area.left(), area.right(), 7)
               for y in range(area.top(), area.bottom(), 7)}
    assert len(colours) > 40, f"{path}: the card looks empty"
    assert path.stat().st_size < 300_000


@pytest.mark.parametrize("language", ["zh-CN", "en"])
@pytest.mark.parametrize("size", list(SIZES))
def test_feed_and_card_screenshots(window, shots: Path, language: str, size: str) -> None:  # type: ignore[no-untyped-def]
    win = window(language, size=SIZES[size])
    page = fill(win)
    assert page.feed_list.count() == 3
    assert page.card.claim_label.text() == Texts(language)("claim.free")
    portrait = SIZES[size][1] > SIZES[size][0]
    assert (page.splitter.orientation().name == "Vertical") == portrait
    path = save_png(win, shots / f"pad-card-{language}-{size}.png")
    not_blank(path, win)


@pytest.mark.parametrize("language", ["zh-CN", "en"])
def test_outcome_form_screenshot(window, shots: Path, language: str) -> None:  # type: ignore[no-untyped-def]
    win = window(language)
    page = fill(win)
    page.card.outcome_button.click()
    page.outcome.result_buttons["product_sold"].click()
    assert page.right.currentWidget() is page.outcome
    not_blank(save_png(win, shots / f"pad-outcome-{language}-1280x800.png"), win)


def test_touch_targets_are_at_least_9_mm(window) -> None:  # type: ignore[no-untyped-def]
    win = window("en")
    page = fill(win)
    page.card.outcome_button.click()
    minimum = mm_to_px(9.0, 96.0)
    assert minimum == 35
    buttons = [b for b in win.findChildren(QPushButton) if b.isVisible()]
    assert len(buttons) >= 8
    for button in buttons:
        assert min(button.height(), button.width()) >= minimum, button.text()
    rows = [page.feed_list.visualItemRect(page.feed_list.item(i)) for i in range(page.feed_list.count())]
    assert all(r.height() >= minimum for r in rows)


def test_language_button_switches_the_whole_window(window, qtbot) -> None:  # type: ignore[no-untyped-def]
    win = window("zh-CN")
    page = fill(win)
    assert page.card.claim_button.text() == "认领"
    qtbot.mouseClick(win.header.language, Qt.MouseButton.LeftButton)
    assert win.header.title.text().startswith("Branch PAD")
    assert page.card.claim_button.text() == "Claim"
    first = page.feed_list.item(0)
    assert first is not None and "arrived" in first.text()


class BadgePage(QWidget):
    """A plug-in page as the ID-card pages will be: a widget with an optional badge."""

    badge_changed = pyqtSignal(int)

    def __init__(self, context: PageContext) -> None:
        super().__init__()
        self.context = context
        self.label = QLabel(context.config.role, self)


def create_page(context: PageContext) -> QWidget:
    return BadgePage(context)


def test_role_pages_plug_in_through_the_registry(window, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(base.PAGES_BY_ROLE, "teller", __name__)
    win = window("en", role="teller")
    assert isinstance(win.page, BadgePage) and win.header.title.text() == "Branch PAD · Teller rm-1"
    win.page.badge_changed.emit(2)
    assert win.header.badge.text() == "2 new"
    monkeypatch.setitem(base.PAGES_BY_ROLE, "supervisor", "ui.pages.no_such_page")
    assert isinstance(window("en", role="supervisor").page, MissingPage)


@pytest.mark.parametrize("b64", ["", "not base64!", "aGVsbG8=", "/9j/4AAQSkZJRgABAQ=="])
def test_bad_thumbnails_fall_back_to_the_placeholder_without_qt_warnings(window, b64: str) -> None:  # type: ignore[no-untyped-def]
    from dataclasses import replace

    from ui.widgets.common import jpeg_pixmap

    assert jpeg_pixmap(b64, 64) is None
    page = window("en").page
    arrival = replace(sample_arrival(), thumbnail_jpeg_b64=b64 or None)
    page.on_bridge_arrival_received(arrival)
    page.on_feed_list_arrival_chosen(arrival.id)
    assert page.card.arrival is arrival
    good = jpeg_pixmap(sample_arrival().thumbnail_jpeg_b64, 64)
    assert good is not None and good.width() == 64
