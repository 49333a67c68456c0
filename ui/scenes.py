"""The app's screens filled with fictional data, without a broker: for the documentation's
screenshots (``branch-pad screenshots``) and the layout tests.

    win = scene_window("rm", "en", (1280, 800))   # a shown PadWindow (a QApplication must exist)
    SCENES["card"].fill(win)                      # the demo branch's arrivals, the first one open

Everything shown is invented (``ui.state.sample``: drawn faces; ``ui.devices.idcard.samples``:
fictional ID cards; ``ui.demo``: the demo's counter scenarios).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from mqtt.messages import Arrival, AuthEscalation, Score, utc_now
from ui.bridge import PadBridge
from ui.demo import BRANCH, DEVICES, scenarios_message
from ui.devices.idcard.reader import ReaderEvent
from ui.devices.idcard.samples import sample_cards
from ui.pages.base import PageContext
from ui.pages.rm import RmPage
from ui.pages.supervisor import SupervisorPage
from ui.pages.teller import TellerPage
from ui.state.config import PadConfig, Role, parse_pad_config
from ui.state.i18n import Texts
from ui.state.sample import DEMO_VISITORS, demo_arrival, drawn_face_jpeg
from ui.widgets.screen import Metrics
from ui.window import PadWindow

SIZES: dict[str, tuple[int, int]] = {"1280x800": (1280, 800), "800x1280": (800, 1280),
                                     "1920x1200": (1920, 1200)}
LANGUAGES = ("zh-CN", "en")
DPI = 96.0  # the screenshots' and tests' logical DPI (a 10-inch 1280x800 tablet is about 150)


def scene_config(role: Role) -> PadConfig:
    device, staff = DEVICES[role]
    return parse_pad_config({"branch_id": BRANCH, "role": role, "rm_id": staff, "sound": False,
                             "mqtt": {"device_id": device, "outbox_path": ":memory:"}})


def scene_window(role: Role, language: str, size: tuple[int, int]) -> PadWindow:
    """A shown window of ``role`` at ``size``, connected (as the header says) to nothing."""
    win = PadWindow(PageContext(scene_config(role), PadBridge(), lambda message: None, Texts(language),
                                Metrics(DPI)))
    win.resize(*size)
    win.show()
    win.header.on_connection_changed(True)
    return win


def fill_card(win: PadWindow) -> Arrival:
    """The demo branch's visitors in the feed; the first one's card open."""
    page = win.page
    assert isinstance(page, RmPage)
    arrivals = [demo_arrival(visitor, BRANCH, seed=i) for i, visitor in enumerate(DEMO_VISITORS)]
    for arrival in arrivals:
        page.on_bridge_arrival_received(arrival)
    page.on_feed_list_arrival_chosen(arrivals[0].id)
    return arrivals[0]


def fill_outcome(win: PadWindow) -> None:
    """The outcome form for the first visitor: a follow-up with a date."""
    fill_card(win)
    page = win.page
    assert isinstance(page, RmPage)
    page.card.outcome_button.click()
    page.outcome.result_buttons["follow_up"].click()
    page.outcome.follow_up.setChecked(True)


def fill_teller(win: PadWindow) -> None:
    """A card read, a customer id typed, the request gone to a supervisor."""
    page = win.page
    assert isinstance(page, TellerPage)
    page.on_message(scenarios_message(BRANCH))
    page.on_reader_event(ReaderEvent("card", "remove_card", card=sample_cards(date.today())[0]))
    page.customer.setText(DEMO_VISITORS[0].customer_id)
    page.result.setText(page.texts("auth.verdict.escalate"))


def fill_supervisor(win: PadWindow) -> None:
    """Three escalations waiting; the first one open."""
    page = win.page
    assert isinstance(page, SupervisorPage)
    page.on_message(scenarios_message(BRANCH))
    for n, scenario in enumerate(("large_withdrawal", "account_closure", "password_reset")):
        page.on_message(AuthEscalation(
            branch_id=BRANCH, expires_at=utc_now() + timedelta(seconds=100),
            request_id=f"00000000-0000-4000-8000-00000000000{n}", teller_device_id=DEVICES["teller"][0],
            scenario=scenario, masked_card_number="3101**********1234",
            reasons=["face_match_low", "amount_over_limit"],
            scores=[Score(name="liveness", value=0.91, threshold=0.5),
                    Score(name="face_match", value=0.35, threshold=0.46)],
            card_photo_jpeg_b64=drawn_face_jpeg(1), live_jpeg_b64=drawn_face_jpeg(2)))
    page.list.setCurrentRow(0)


@dataclass(frozen=True)
class Scene:
    role: Role
    fill: Callable[[PadWindow], object]
    sizes: tuple[str, ...]  # which screens the documentation shows it on


SCENES: dict[str, Scene] = {
    "card": Scene("rm", fill_card, tuple(SIZES)),
    "outcome": Scene("rm", fill_outcome, ("1280x800",)),
    "teller": Scene("teller", fill_teller, ("1280x800", "800x1280")),
    "supervisor": Scene("supervisor", fill_supervisor, ("1280x800", "800x1280")),
}


def close_window(win: PadWindow) -> None:
    close = getattr(win.page, "close_devices", None)
    if callable(close):
        close()
    win.close()
