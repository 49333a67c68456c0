"""Consent to face verification on the teller page is its own and starts unticked: a teller who
reads the card, captures and verifies without the customer's consent sends no live frame.
Checked on what reaches the edge over the broker (``branch-pad --demo teller``: the embedded
broker, the simulated card reader, a drawn-face camera, the stand-in edge)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mqtt.messages import AuthRequest
from tests.mqtt_fixtures import wait_until
from ui.app import PadApp
from ui.demo import DemoBranch
from ui.pages.teller import LIVE_FRAMES, TellerPage

pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")

WAIT_MS = 30_000


@pytest.fixture
def teller(qtbot) -> Iterator[tuple[TellerPage, DemoBranch]]:  # type: ignore[no-untyped-def]
    with DemoBranch("teller") as demo:
        pad = PadApp(demo.config, "en")
        qtbot.addWidget(pad.window)
        pad.window.show()
        pad.start()
        demo.start(lambda: pad.link.connected)
        page = pad.window.page
        assert isinstance(page, TellerPage)
        try:
            qtbot.waitUntil(lambda: page.card is not None and page.scenario.count() > 0
                            and len(page.recent) == LIVE_FRAMES, timeout=WAIT_MS)
            page.customer.setText("C202600001")
            page.scenario.setCurrentIndex(page.scenario.findData("card_replacement"))
            yield page, demo
        finally:
            page.close_devices()
            pad.stop()


def published(qtbot, page: TellerPage, demo: DemoBranch) -> AuthRequest:  # type: ignore[no-untyped-def]
    """Verify; the request as the edge got it from the broker."""
    with qtbot.waitSignal(page.request_sent, timeout=WAIT_MS) as sent:
        page.verify_button.click()
    request_id = sent.args[0].id
    assert demo.edge is not None
    assert wait_until(lambda: any(r.id == request_id for r in demo.edge.requests), WAIT_MS / 1000)
    return next(r for r in demo.edge.requests if r.id == request_id)


def test_consent_starts_unticked_and_no_frame_leaves_without_it(qtbot, teller) -> None:  # type: ignore[no-untyped-def]
    page, demo = teller
    assert not page.consent.isChecked()
    page.capture_button.click()  # the teller captures without asking: nothing goes
    assert len(page.captured) == LIVE_FRAMES
    request = published(qtbot, page, demo)
    assert request.live_jpeg_b64 == [] and request.live_source == "terminal"
    page.use_counter_camera.setChecked(True)  # nor is the edge asked to take them itself
    assert published(qtbot, page, demo).live_source == "terminal"
    page.use_counter_camera.setChecked(False)

    # Control: the customer consents; the same frames are sent, and once the edge has
    # answered, the box is unticked again for the next customer.
    page.consent.setChecked(True)
    answers: list[object] = []
    page.result_shown.connect(answers.append)
    request = published(qtbot, page, demo)
    assert len(request.live_jpeg_b64) == LIVE_FRAMES
    qtbot.waitUntil(lambda: bool(answers), timeout=WAIT_MS)
    assert not page.consent.isChecked()
