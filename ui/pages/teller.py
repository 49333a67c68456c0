"""Teller mode: choose the transaction, read the ID card, capture the live face, ask the edge.

The reader (``ui.devices.idcard.reader.IdReader``) and the counter camera are polled
from GUI timers, so the widgets never see another thread.  Without a reader or
camera configured the page still works for the parts it can: its status line
says what is missing.  Configuration: the ``[counter]`` section of pad.toml
(``idcard_port``, ``wlt_decoder``, ``camera``: index or a folder of images); the
environment variables ``BRANCH_PAD_IDCARD_PORT``, ``BRANCH_PAD_WLT_DECODER`` and
``BRANCH_PAD_CAMERA`` override it (demos, tests).
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import logging
import math
import os
from collections import deque
from datetime import timedelta

import cv2
import numpy as np
from PyQt6.QtCore import Qt, QTimer, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QImage, QPixmap, QResizeEvent
from PyQt6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from edge.core.idcard_rules import wire_fields
from mqtt.messages import AuthRequest, AuthResponse, AuthScenarios, CardFields, Message, new_id, utc_now
from ui.devices.camera import FrameSource, live_jpeg_b64, open_camera
from ui.devices.idcard.card import IdCard
from ui.devices.idcard.reader import IdReader, ReaderEvent
from ui.pages.auth_words import ScenarioCatalogue, reason_lines, scenario_hint, scenario_title, score_lines
from ui.pages.base import PageContext
from ui.state.config import CounterConfig
from ui.state.i18n import Texts
from ui.widgets.common import label, placeholder_pixmap, portrait_direction

log = logging.getLogger(__name__)

READER_POLL_MS = 100
PREVIEW_MS = 150
LIVE_FRAMES = 3
NAME_MAX = next(f.metadata["max_length"] for f in dataclasses.fields(CardFields) if f.name == "name")


def card_fields(card: IdCard) -> CardFields:
    """The card as the request carries it (the mapping is the core's, see ``wire_fields``)."""
    return CardFields(**wire_fields(card, NAME_MAX))


def frame_pixmap(frame: np.ndarray, side: int) -> QPixmap:
    rgb = np.ascontiguousarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    image = QImage(rgb.tobytes(), rgb.shape[1], rgb.shape[0], 3 * rgb.shape[1], QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy()).scaledToWidth(side)


class CardPanel(QWidget):
    """The card that was read: photo, masked fields, validation result."""

    def __init__(self, context: PageContext) -> None:
        super().__init__()
        self.context = context
        self.photo = label("")
        self.fields = label("")
        self.checks = label("")
        layout = QHBoxLayout(self)
        layout.addWidget(self.photo)
        text = QVBoxLayout()
        text.addWidget(self.fields)
        text.addWidget(self.checks)
        layout.addLayout(text, 1)

    def show_card(self, card: IdCard | None, texts: Texts) -> None:
        side = self.context.metrics.photo_px
        if card is None:
            self.photo.setPixmap(placeholder_pixmap(side, texts("auth.card.photo")))
            self.fields.setText(texts("auth.card.none"))
            self.checks.clear()
            return
        pixmap = QPixmap()
        if card.photo_jpeg is None or not pixmap.loadFromData(card.photo_jpeg):
            pixmap = placeholder_pixmap(side, texts("auth.card.photo"))
        self.photo.setPixmap(pixmap.scaledToWidth(side))
        kind = card.type_name if texts.language.startswith("zh") else card.type_name_en
        self.fields.setText(f"{kind}\n{card.name or card.name_en}\n{card.masked_id}\n"
                            f"{card.valid_from} – {card.valid_to}")
        problems = card.problems()
        self.checks.setText("\n".join(p.message(texts.language) for p in problems)
                            or texts("auth.card.ok"))


class TellerPage(QWidget):
    """Signals:
    request_sent(AuthRequest): a verification request went to the outbox.
    result_shown(AuthResponse): an answer from the edge (interim escalations included).
    """

    request_sent = pyqtSignal(object)
    result_shown = pyqtSignal(object)

    def __init__(self, context: PageContext, reader: IdReader | None = None,
                 camera: FrameSource | None = None) -> None:
        super().__init__()
        self.context = context
        self.texts = context.texts
        self.reader = reader
        self.camera = camera
        self.card: IdCard | None = None
        self.recent: deque[np.ndarray] = deque(maxlen=LIVE_FRAMES)
        self.captured: list[np.ndarray] = []
        self.pending_id: str | None = None
        self.reader_status = "none" if reader is None else "stopped"
        self.reader_error = ""
        # The scenarios the edge enforces, from its retained auth/scenarios message.
        self.catalogue = ScenarioCatalogue(context.config.branch_id)
        self._make_widgets()
        self._lay_out()
        self._connect()
        self.retranslate(context.texts)
        self._start_devices()

    def _make_widgets(self) -> None:
        self.scenario = QComboBox()
        self.scenario_hint = label("")
        self.customer = QLineEdit()
        self.amount = QLineEdit()
        # Consent to face verification is its own (biometric data): unticked until the customer
        # gives it; without it no live frame leaves the terminal (build_request).
        self.consent = QCheckBox()
        self.consent.setChecked(False)
        self.use_counter_camera = QCheckBox()
        self.reader_label = label("")
        self.card_panel = CardPanel(self.context)
        self.preview = label("")
        self.capture_button = QPushButton()
        self.captured_label = label("")
        self.verify_button = QPushButton()
        self.result = label("", "title")
        self.reasons = label("")
        self.reader_timer = QTimer(self)
        self.preview_timer = QTimer(self)

    def _lay_out(self) -> None:
        touch = self.context.metrics.touch_px
        for widget in (self.scenario, self.customer, self.amount, self.capture_button, self.verify_button):
            widget.setMinimumHeight(touch)
        self.form = QGridLayout()
        self.form_labels = [label(""), label(""), label("")]
        for row, field_widget in enumerate((self.scenario, self.customer, self.amount)):
            self.form.addWidget(self.form_labels[row], row, 0)
            self.form.addWidget(field_widget, row, 1)
        left = QVBoxLayout()
        left.addLayout(self.form)
        left.addWidget(self.scenario_hint)
        left.addWidget(self.reader_label)
        left.addWidget(self.card_panel)
        left.addWidget(self.consent)
        left.addWidget(self.use_counter_camera)
        left.addWidget(self.verify_button)
        left.addWidget(self.result)
        left.addWidget(self.reasons)
        left.addStretch(1)
        right = QVBoxLayout()
        right.addWidget(self.preview, 1)
        right.addWidget(self.capture_button)
        right.addWidget(self.captured_label)
        self.main = QHBoxLayout(self)
        self.main.addLayout(left, 3)
        self.main.addLayout(right, 2)

    def resizeEvent(self, event: QResizeEvent | None) -> None:  # noqa: N802 (Qt override)
        """The form beside the camera in landscape, above it in portrait."""
        self.main.setDirection(portrait_direction(self))
        super().resizeEvent(event)

    def _connect(self) -> None:
        self.context.bridge.message_received.connect(self.on_message)
        self.scenario.currentIndexChanged.connect(self.on_scenario_changed)
        self.capture_button.clicked.connect(self.on_capture_clicked)
        self.verify_button.clicked.connect(self.on_verify_clicked)
        self.reader_timer.timeout.connect(self.on_reader_timeout)
        self.preview_timer.timeout.connect(self.on_preview_timeout)

    def _start_devices(self) -> None:
        if self.reader is not None:
            self.reader.start()
            self.reader_timer.start(READER_POLL_MS)
        if self.camera is not None:
            self.preview_timer.start(PREVIEW_MS)

    def close_devices(self) -> None:
        self.reader_timer.stop()
        self.preview_timer.stop()
        if self.reader is not None:
            self.reader.stop()
        if self.camera is not None:
            self.camera.close()

    def retranslate(self, texts: Texts) -> None:
        self.texts = texts
        self.show_scenarios()
        for widget, key in zip(self.form_labels, ("auth.scenario", "auth.customer", "auth.amount"),
                               strict=True):
            widget.setText(texts(key))
        self.consent.setText(texts("auth.consent"))
        self.use_counter_camera.setText(texts("auth.counter_camera"))
        self.capture_button.setText(texts("auth.capture"))
        self.verify_button.setText(texts("auth.verify"))
        self.card_panel.show_card(self.card, texts)
        self.show_reader_status()
        self.captured_label.setText(texts("auth.captured", n=len(self.captured)))
        if self.camera is None:
            self.preview.setPixmap(placeholder_pixmap(self.context.metrics.photo_px * 2,
                                                      texts("auth.live.none")))

    # -- scenarios --

    def show_scenarios(self) -> None:
        """The edge's scenarios in the drop-down; while none came, a disabled drop-down
        that says it is waiting for them."""
        current = self.scenario.currentData()
        self.scenario.blockSignals(True)
        self.scenario.clear()
        self.scenario.setPlaceholderText(self.texts("auth.scenarios.waiting"))
        for row, scenario in enumerate(self.catalogue.scenarios):
            self.scenario.addItem(scenario_title(scenario, self.texts.language), scenario.name)
            if scenario.rationale:
                self.scenario.setItemData(row, scenario.rationale, Qt.ItemDataRole.ToolTipRole)
        ready = self.scenario.count() > 0
        self.scenario.setEnabled(ready)
        self.scenario.setCurrentIndex(max(0, self.scenario.findData(current)) if ready else -1)
        self.scenario.blockSignals(False)
        self.on_scenario_changed()

    @pyqtSlot()
    def on_scenario_changed(self) -> None:
        chosen = self.scenario.currentData()
        selected = self.catalogue.get(chosen) if chosen is not None else None
        self.scenario_hint.setText(scenario_hint(selected, self.texts))

    # -- devices --

    def show_reader_status(self) -> None:
        t = self.texts
        words = t(f"auth.reader.{self.reader_status}", error=self.reader_error)
        self.reader_label.setText(t("auth.reader", status=words))

    @pyqtSlot()
    def on_reader_timeout(self) -> None:
        assert self.reader is not None
        while (event := self.reader.poll()) is not None:
            self.on_reader_event(event)

    def on_reader_event(self, event: ReaderEvent) -> None:
        self.reader_status = event.status
        self.reader_error = str(event.error) if event.error is not None else ""
        if event.card is not None:
            self.card = event.card
            self.card_panel.show_card(self.card, self.texts)
            self.result.clear()
            self.reasons.clear()
        self.show_reader_status()

    @pyqtSlot()
    def on_preview_timeout(self) -> None:
        assert self.camera is not None
        frame = self.camera.read()
        if frame is None:
            return
        self.recent.append(frame)
        self.preview.setPixmap(frame_pixmap(frame, self.context.metrics.photo_px * 2))

    @pyqtSlot()
    def on_capture_clicked(self) -> None:
        self.captured = list(self.recent)
        self.captured_label.setText(self.texts("auth.captured", n=len(self.captured)))

    # -- the request --

    def build_request(self) -> AuthRequest | str:
        """The request to send, or the text key of what is missing."""
        published = self.catalogue.latest
        if published is None or self.scenario.currentData() is None:
            return "auth.need_scenario"
        if self.card is None:
            return "auth.need_card"
        customer = self.customer.text().strip()
        if not customer:
            return "auth.need_customer"
        amount_text = self.amount.text().strip().replace(",", "")
        try:
            amount = float(amount_text) if amount_text else None
            # "nan" and "inf" parse, but the contract refuses them (the request would never be
            # sent); a negative amount would pass under any supervisor limit.
            if amount is not None and not (math.isfinite(amount) and amount >= 0):
                raise ValueError(amount_text)
        except ValueError:
            return "auth.bad_amount"
        config = self.context.config
        photo = self.card.photo_jpeg
        from_counter = self.consent.isChecked() and self.use_counter_camera.isChecked()
        own_frames = self.consent.isChecked() and not from_counter
        try:
            live = [live_jpeg_b64(f) for f in self.captured] if own_frames else []
        except ValueError:
            log.warning("a captured frame does not fit in a request; capture again")
            return "auth.bad_frame"
        return AuthRequest(
            branch_id=config.branch_id, device_id=config.device_id,
            expires_at=utc_now() + timedelta(seconds=published.request_ttl_s),  # the edge's request TTL
            teller_id=config.effective_rm_id, transaction_id=new_id().replace("-", "")[:32],
            scenario=str(self.scenario.currentData()), account_holder_id=customer[:64],
            card=card_fields(self.card),
            card_photo_jpeg_b64=base64.b64encode(photo).decode("ascii") if photo else None,
            live_jpeg_b64=live, amount=amount,
            live_source="counter_camera" if from_counter else "terminal",
        )

    @pyqtSlot()
    def on_verify_clicked(self) -> None:
        request = self.build_request()
        if isinstance(request, str):
            self.result.setText(self.texts(request))
            return
        self.pending_id = request.id
        self.context.publish(request)
        self.result.setText(self.texts("auth.waiting"))
        self.reasons.clear()
        self.request_sent.emit(request)

    @pyqtSlot(object)
    def on_message(self, message: Message) -> None:
        if isinstance(message, AuthScenarios):
            if self.catalogue.update(message):
                self.show_scenarios()
            return
        if not isinstance(message, AuthResponse) or message.request_id != self.pending_id:
            return
        t = self.texts
        self.result.setText(t(f"auth.verdict.{message.verdict}"))
        lines = reason_lines(message.reasons, t.language) + score_lines(message.scores, t)
        if message.decided_by:
            lines.append(t("auth.decided_by", who=message.decided_by))
        self.reasons.setText("\n".join(lines))
        if message.verdict != "escalate":
            self.pending_id = None
            self.captured = []
            self.consent.setChecked(False)  # the next customer's consent is theirs to give
        self.result_shown.emit(message)


def counter_devices(counter: CounterConfig) -> tuple[IdReader | None, FrameSource | None]:
    from ui.devices.idcard.photo import load_decoder  # noqa: PLC0415 (ctypes vendor library, only when asked)
    from ui.devices.idcard.reader import open_transport  # noqa: PLC0415

    port = os.environ.get("BRANCH_PAD_IDCARD_PORT") or counter.idcard_port
    reader = None
    if port:
        decoder = os.environ.get("BRANCH_PAD_WLT_DECODER") or counter.wlt_decoder
        reader = IdReader(functools.partial(open_transport, port), load_decoder(decoder))
    camera = open_camera(os.environ.get("BRANCH_PAD_CAMERA") or counter.camera or "")
    return reader, camera


def create_page(context: PageContext) -> QWidget:
    reader, camera = counter_devices(context.config.counter)
    return TellerPage(context, reader, camera)
