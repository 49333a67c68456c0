"""Fit and language on the three tablet screens (1280x800, 800x1280, 1920x1200) in zh-CN and
English, with real widgets offscreen: every text of every page (RM feed and card, outcome form,
teller, supervisor) fits (``ui.fit``: nothing elided, no label outside its parent); the card's
first facts are above the fold and the rest scrolls visibly; no English words in the zh-CN
interface and no Chinese in the English one beyond what the CRM, catalogue and ID card name;
each fact once on the card; the signed-in staff member and the connection in the header; the
feed column no wider than its rows."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import date

import pytest
from PyQt6.QtWidgets import QAbstractButton, QApplication, QComboBox, QLabel, QListWidget, QWidget

from mqtt.messages import CustomerCard, Portrait
from ui.demo import DEVICES
from ui.devices.idcard.samples import sample_cards
from ui.fit import clipped
from ui.pages.rm import RmPage
from ui.scenes import (
    LANGUAGES,
    SIZES,
    close_window,
    fill_card,
    fill_outcome,
    fill_supervisor,
    fill_teller,
    scene_window,
)
from ui.state.config import Role
from ui.state.i18n import Texts
from ui.state.sample import DEMO_VISITORS, demo_arrival
from ui.window import PadWindow

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")

CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef\u3000-\u303f]")
# What may stay in Latin letters in the zh-CN interface: identifiers and codes
# (customer, staff, device and camera ids, masked numbers, risk ratings and levels).
IDENTIFIER = re.compile(r"\b(?:[A-Za-z]+[-_]?\d[\w-]*|[RC][1-5]|[A-Z]{2,}-[A-Z\d]+)\b|\*+")
# Every page, with its content: the RM's card and outcome form, the teller's, the supervisor's.
PAGES: dict[str, tuple[Role, Callable[[PadWindow], object]]] = {
    "rm": ("rm", fill_card), "outcome": ("rm", fill_outcome),
    "teller": ("teller", fill_teller), "supervisor": ("supervisor", fill_supervisor),
}


@pytest.fixture
def window(qtbot) -> Iterator[Callable[..., PadWindow]]:  # type: ignore[no-untyped-def]
    made: list[PadWindow] = []

    def make(role: Role, language: str, size: tuple[int, int]) -> PadWindow:
        win = scene_window(role, language, size)
        qtbot.addWidget(win)
        qtbot.waitExposed(win)
        made.append(win)
        return win

    yield make
    for win in made:
        close_window(win)


def shown_texts(win: PadWindow) -> Iterator[tuple[QWidget, str]]:
    """Every text on the screen, with its widget; list rows one by one."""
    QApplication.processEvents()
    for widget in win.findChildren(QWidget):
        if not widget.isVisibleTo(win):
            continue
        if isinstance(widget, QLabel | QAbstractButton) and widget.text():
            yield widget, widget.text()
        elif isinstance(widget, QComboBox) and widget.currentText():
            yield widget, widget.currentText()
        elif isinstance(widget, QListWidget):
            for i in range(widget.count()):
                item = widget.item(i)
                if item is not None:
                    yield widget, item.text()


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("page_name", list(PAGES))
def test_every_text_fits(window, page_name: str, size: str, language: str) -> None:  # type: ignore[no-untyped-def]
    role, fill = PAGES[page_name]
    win = window(role, language, SIZES[size])
    fill(win)
    assert clipped(win, SIZES[size]) == []


def test_the_fit_check_sees_what_qt_would_cut(window) -> None:  # type: ignore[no-untyped-def]
    """Without this the test above could pass on a blind walk."""
    win = window("rm", "en", SIZES["800x1280"])
    fill_card(win)
    page = win.page
    assert isinstance(page, RmPage)
    page.splitter.setOrientation(page.splitter.orientation().Horizontal)
    page.splitter.setSizes([150, 650])
    assert "row 0 needs" in "\n".join(clipped(win, SIZES["800x1280"]))
    win.header.language.setText("English " * 20)  # a button does not wrap
    assert "QPushButton 'English English" in "\n".join(clipped(win, SIZES["800x1280"]))
    win.resize(1200, 1280)  # as a window a layout widened past the screen
    assert "wider or taller than the 800x1280 screen" in "\n".join(clipped(win, SIZES["800x1280"]))


def plain(text: str, data: list[str]) -> str:
    for value in sorted(data, key=len, reverse=True):
        text = text.replace(value, " ")
    return text


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("page_name", list(PAGES))
def test_no_english_words_in_the_chinese_interface(window, page_name: str, size: str) -> None:  # type: ignore[no-untyped-def]
    role, fill = PAGES[page_name]
    win = window(role, "zh-CN", SIZES[size])
    fill(win)
    words = []
    for widget, text in shown_texts(win):
        if widget is win.header.language:  # "English": the other language, named in itself
            continue
        left = IDENTIFIER.sub(" ", text)
        words += [f"{w!r} in {text!r}" for w in re.findall(r"[A-Za-z]{2,}", left)]
    assert words == []


@pytest.mark.parametrize("size", list(SIZES))
@pytest.mark.parametrize("page_name", list(PAGES))
def test_no_chinese_in_the_english_interface(window, page_name: str, size: str) -> None:  # type: ignore[no-untyped-def]
    role, fill = PAGES[page_name]
    win = window(role, "en", SIZES[size])
    fill(win)
    # What the CRM, the catalogue and the ID card name stays as they name it: customer names and
    # tiers (feed rows), the card holder's name, labels marked as data on the customer card.
    data = [v.name for v in DEMO_VISITORS] + [v.tier for v in DEMO_VISITORS]
    data += [c.name for c in sample_cards(date.today())] + ["中文"]  # the language button
    found = []
    for widget, text in shown_texts(win):
        if widget.property("data"):
            continue
        if CJK.search(plain(text, data)):
            found.append(text)
    assert found == []


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("size", list(SIZES))
def test_the_first_facts_are_above_the_fold_and_the_rest_scrolls(window, size: str, language: str) -> None:  # type: ignore[no-untyped-def]
    win = window("rm", language, SIZES[size])
    arrival = fill_card(win)
    page = win.page
    assert isinstance(page, RmPage)
    t = Texts(language)
    card = page.card
    viewport = card.viewport()
    assert viewport is not None
    QApplication.processEvents()
    labels = {w.text(): w for w in card.findChildren(QLabel) if w.isVisibleTo(card)}
    points = arrival.talking_points_en if language == "en" else arrival.talking_points
    first = [arrival.customer.display_name, t("card.field", name=t("card.tier"), value=arrival.customer.tier),
             t("card.why_now"), f"•  {points[0]}", t("card.top_recommendation")]
    first.append(next(text for text in labels if text.startswith(f"•  {arrival.recommendations[0].name}")))
    for text in first:
        widget = labels[text]
        bottom = widget.mapTo(viewport, widget.rect().bottomLeft()).y()
        assert 0 <= bottom <= viewport.height(), f"{text!r} is below the fold"
    body = card.widget()
    assert body is not None
    if body.height() > viewport.height():
        bar = card.verticalScrollBar()
        assert bar is not None and bar.isVisible(), "the card is longer than the screen: show that it scrolls"


@pytest.mark.parametrize("language", LANGUAGES)
def test_each_fact_once_on_the_card(window, language: str) -> None:  # type: ignore[no-untyped-def]
    win = window("rm", language, SIZES["1920x1200"])
    arrival = fill_card(win)
    page = win.page
    assert isinstance(page, RmPage)
    QApplication.processEvents()
    texts = [w.text() for w in page.card.findChildren(QLabel) if w.isVisibleTo(page.card) and w.text()]
    assert len(texts) == len(set(texts)), "a line shown twice"
    points = arrival.talking_points_en if language == "en" else arrival.talking_points
    for point in points:  # each talking point once, and no life event repeats it
        assert sum(point in text for text in texts) == 1, point
    t = Texts(language)
    until = arrival.portrait.risk_assessment_expires_on
    assert until is not None
    risk = t("risk.expiring", on=t.date(until))
    assert risk in texts
    assert Texts(language)("event.assessment_expiring") not in " ".join(texts), "the warning already says it"


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_header_names_who_is_signed_in_and_the_connection(window, language: str) -> None:  # type: ignore[no-untyped-def]
    roles: tuple[Role, ...] = ("rm", "teller", "supervisor")
    for role in roles:
        win = window(role, language, SIZES["1280x800"])
        t = Texts(language)
        staff = DEVICES[role][1]
        assert win.header.title.text().endswith(t("header.staff", role=t(f"role.{role}"), staff=staff))
        assert win.header.connection.text() == t("conn.online")


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_feed_is_no_wider_than_its_rows(window, language: str) -> None:  # type: ignore[no-untyped-def]
    win = window("rm", language, SIZES["1920x1200"])
    fill_card(win)
    page = win.page
    assert isinstance(page, RmPage)
    QApplication.processEvents()
    needed = page.feed_list.needed_width()
    assert page.feed_list.width() <= needed + 2
    assert page.feed_list.width() < win.width() // 3
    assert clipped(page.feed_list) == []


def test_an_unnamed_customer_with_no_crm_data_fits_and_says_so(window) -> None:  # type: ignore[no-untyped-def]
    for language in LANGUAGES:
        win = window("rm", language, SIZES["800x1280"])
        page = win.page
        assert isinstance(page, RmPage)
        arrival = replace(demo_arrival(DEMO_VISITORS[1], "demo"), recommendations=[], talking_points=[],
                          talking_points_en=[], portrait=Portrait(segment="", aum_band="", risk_level=""),
                          customer=CustomerCard(customer_id="C-9", display_name="", tier="",
                                                masked_id_number="", masked_account=""))
        page.on_bridge_arrival_received(arrival)
        page.on_feed_list_arrival_chosen(arrival.id)
        QApplication.processEvents()
        texts = [w.text() for w in page.card.findChildren(QLabel) if w.isVisibleTo(page.card)]
        assert Texts(language)("card.no_crm") in texts
        assert clipped(win, SIZES["800x1280"]) == []
