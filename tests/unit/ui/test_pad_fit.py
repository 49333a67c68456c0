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
from datetime import date, timedelta

import pytest
from PyQt6.QtWidgets import QAbstractButton, QApplication, QComboBox, QLabel, QListWidget, QWidget

from mqtt.messages import Arrival, AuthEscalation, AuthScenarios, Score, utc_now
from ui.bridge import PadBridge
from ui.demo import scenarios_message
from ui.devices.idcard.reader import ReaderEvent
from ui.devices.idcard.samples import sample_cards
from ui.fit import clipped
from ui.pages.base import PageContext
from ui.pages.rm import RmPage
from ui.pages.supervisor import SupervisorPage
from ui.pages.teller import TellerPage
from ui.state.config import parse_pad_config
from ui.state.i18n import Texts
from ui.state.sample import DEMO_VISITORS, demo_arrival, drawn_face_jpeg
from ui.widgets.screen import Metrics
from ui.window import PadWindow

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")

SIZES = {"1280x800": (1280, 800), "800x1280": (800, 1280), "1920x1200": (1920, 1200)}
LANGUAGES = ("zh-CN", "en")
CJK = re.compile(r"[\u3400-\u9fff\uff00-\uffef\u3000-\u303f]")
# What may stay in Latin letters in the zh-CN interface: identifiers and codes
# (customer, staff, device and camera ids, masked numbers, risk ratings and levels).
IDENTIFIER = re.compile(r"\b(?:[A-Za-z]+[-_]?\d[\w-]*|[RC][1-5]|[A-Z]{2,}-[A-Z\d]+)\b|\*+")


def config(role: str) -> object:
    return parse_pad_config({"branch_id": "demo", "role": role,
                             "mqtt": {"device_id": "pad-1", "outbox_path": ":memory:"}, "rm_id": "rm-1"})


@pytest.fixture
def window(qtbot) -> Iterator[Callable[..., PadWindow]]:  # type: ignore[no-untyped-def]
    made: list[PadWindow] = []

    def make(role: str, language: str, size: tuple[int, int]) -> PadWindow:
        win = PadWindow(PageContext(config(role), PadBridge(), lambda m: None,  # type: ignore[arg-type]
                                    Texts(language), Metrics(96.0)))
        qtbot.addWidget(win)
        win.resize(*size)
        win.show()
        qtbot.waitExposed(win)
        win.header.on_connection_changed(True)
        made.append(win)
        return win

    yield make
    for win in made:
        close = getattr(win.page, "close_devices", None)
        if callable(close):
            close()


def scenarios() -> AuthScenarios:
    return scenarios_message("demo")


def rm_scene(win: PadWindow) -> Arrival:
    page = win.page
    assert isinstance(page, RmPage)
    arrivals = [demo_arrival(v, "demo", seed=i) for i, v in enumerate(DEMO_VISITORS)]
    for arrival in arrivals:
        page.on_bridge_arrival_received(arrival)
    page.on_feed_list_arrival_chosen(arrivals[0].id)
    return arrivals[0]


def outcome_scene(win: PadWindow) -> None:
    rm_scene(win)
    page = win.page
    assert isinstance(page, RmPage)
    page.card.outcome_button.click()
    page.outcome.result_buttons["follow_up"].click()
    page.outcome.follow_up.setChecked(True)


def teller_scene(win: PadWindow) -> None:
    page = win.page
    assert isinstance(page, TellerPage)
    page.on_message(scenarios())
    page.on_reader_event(ReaderEvent("card", "remove_card", card=sample_cards(date.today())[0]))
    page.customer.setText("C202600001")
    page.result.setText(page.texts("auth.verdict.escalate"))


def supervisor_scene(win: PadWindow) -> None:
    page = win.page
    assert isinstance(page, SupervisorPage)
    page.on_message(scenarios())
    for n, scenario in enumerate(("large_withdrawal", "account_closure", "password_reset")):
        page.on_message(AuthEscalation(
            branch_id="demo", expires_at=utc_now() + timedelta(seconds=100),
            request_id=f"00000000-0000-4000-8000-00000000000{n}", teller_device_id="teller-1",
            scenario=scenario, masked_card_number="3101**********1234",
            reasons=["face_match_low", "amount_over_limit"],
            scores=[Score(name="liveness", value=0.91, threshold=0.5),
                    Score(name="face_match", value=0.35, threshold=0.46)],
            card_photo_jpeg_b64=drawn_face_jpeg(1), live_jpeg_b64=drawn_face_jpeg(2)))
    page.list.setCurrentRow(0)


SCENES: dict[str, tuple[str, Callable[[PadWindow], object]]] = {
    "rm": ("rm", rm_scene), "outcome": ("rm", outcome_scene),
    "teller": ("teller", teller_scene), "supervisor": ("supervisor", supervisor_scene),
}


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
@pytest.mark.parametrize("scene", list(SCENES))
def test_every_text_fits(window, scene: str, size: str, language: str) -> None:  # type: ignore[no-untyped-def]
    role, fill = SCENES[scene]
    win = window(role, language, SIZES[size])
    fill(win)
    assert clipped(win, SIZES[size]) == []


def test_the_fit_check_sees_what_qt_would_cut(window) -> None:  # type: ignore[no-untyped-def]
    """Without this the test above could pass on a blind walk."""
    win = window("rm", "en", SIZES["800x1280"])
    rm_scene(win)
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
@pytest.mark.parametrize("scene", list(SCENES))
def test_no_english_words_in_the_chinese_interface(window, scene: str, size: str) -> None:  # type: ignore[no-untyped-def]
    role, fill = SCENES[scene]
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
@pytest.mark.parametrize("scene", list(SCENES))
def test_no_chinese_in_the_english_interface(window, scene: str, size: str) -> None:  # type: ignore[no-untyped-def]
    role, fill = SCENES[scene]
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
    arrival = rm_scene(win)
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
    arrival = rm_scene(win)
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
    for role in ("rm", "teller", "supervisor"):
        win = window(role, language, SIZES["1280x800"])
        t = Texts(language)
        assert win.header.title.text().endswith(t("header.staff", role=t(f"role.{role}"), staff="rm-1"))
        assert win.header.connection.text() == t("conn.online")


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_feed_is_no_wider_than_its_rows(window, language: str) -> None:  # type: ignore[no-untyped-def]
    win = window("rm", language, SIZES["1920x1200"])
    rm_scene(win)
    page = win.page
    assert isinstance(page, RmPage)
    QApplication.processEvents()
    needed = page.feed_list.needed_width()
    assert page.feed_list.width() <= needed + 2
    assert page.feed_list.width() < win.width() // 3
    assert clipped(page.feed_list) == []


def test_an_unnamed_customer_with_no_crm_data_fits_and_says_so(window) -> None:  # type: ignore[no-untyped-def]
    from mqtt.messages import CustomerCard, Portrait

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
