"""Supervisor mode: the queue of escalated authorizations, their detail, approve or reject.

An escalation leaves the queue when this or another supervisor decides it
(``auth/decisions`` is read by every supervisor) or when it expires: the edge
rejects it at the same moment, so a late decision would be ignored anyway.
"""

from __future__ import annotations

from PyQt6.QtCore import Qt, QTimer, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QResizeEvent
from PyQt6.QtWidgets import (
    QHBoxLayout,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from mqtt.messages import AuthDecision, AuthEscalation, Message
from ui.pages.auth_words import ScenarioCatalogue, reason_lines, score_lines
from ui.pages.base import PageContext
from ui.state.i18n import Texts
from ui.widgets.common import jpeg_pixmap, label, placeholder_pixmap, portrait_direction

EXPIRY_CHECK_MS = 1000


class EscalationQueue:
    """The open escalations, oldest first (pure bookkeeping, no widgets)."""

    def __init__(self) -> None:
        self.items: dict[str, AuthEscalation] = {}

    def add(self, escalation: AuthEscalation) -> bool:
        if escalation.request_id in self.items or escalation.is_expired():
            return False
        self.items[escalation.request_id] = escalation
        return True

    def close(self, request_id: str) -> bool:
        return self.items.pop(request_id, None) is not None

    def drop_expired(self) -> int:
        expired = [key for key, e in self.items.items() if e.is_expired()]
        for key in expired:
            del self.items[key]
        return len(expired)


class EscalationDetail(QWidget):
    """Both photos, the masked card number, the reasons and scores of one escalation."""

    def __init__(self, context: PageContext, catalogue: ScenarioCatalogue) -> None:
        super().__init__()
        self.context = context
        self.catalogue = catalogue
        self.texts = context.texts
        self.title = label("", "title")
        self.card_photo = label("")
        self.live_photo = label("")
        self.number = label("")
        self.reasons = label("")
        self.scores = label("")
        photos = QHBoxLayout()
        photos.addWidget(self.card_photo)
        photos.addWidget(self.live_photo)
        photos.addStretch(1)
        layout = QVBoxLayout(self)
        for widget in (self.title, self.number, self.reasons, self.scores):
            layout.addWidget(widget)
        layout.insertLayout(1, photos)
        layout.addStretch(1)

    def show_escalation(self, escalation: AuthEscalation | None) -> None:
        t = self.texts
        if escalation is None:
            self.title.setText(t("auth.none_selected"))
            for widget in (self.number, self.reasons, self.scores, self.card_photo, self.live_photo):
                widget.clear()
            return
        side = self.context.metrics.photo_px
        self.title.setText(self.catalogue.title(escalation.scenario, t.language))
        self.number.setText(t("auth.card_number", number=escalation.masked_card_number))
        self.reasons.setText("\n".join(reason_lines(escalation.reasons, t.language)))
        self.scores.setText("\n".join(score_lines(escalation.scores, t)))
        for widget, b64, caption in ((self.card_photo, escalation.card_photo_jpeg_b64, "auth.card.photo"),
                                     (self.live_photo, escalation.live_jpeg_b64, "auth.live")):
            widget.setPixmap(jpeg_pixmap(b64, side) or placeholder_pixmap(side, t(caption)))
            widget.setToolTip(t(caption))


class SupervisorPage(QWidget):
    """Signals:
    badge_changed(int): escalations waiting.
    decision_sent(AuthDecision): a decision went to the outbox.
    """

    badge_changed = pyqtSignal(int)
    decision_sent = pyqtSignal(object)

    def __init__(self, context: PageContext) -> None:
        super().__init__()
        self.context = context
        self.texts = context.texts
        self.queue = EscalationQueue()
        # Scenario titles as the edge publishes them (retained auth/scenarios).
        self.catalogue = ScenarioCatalogue(context.config.branch_id)
        self.list = QListWidget()
        self.detail = EscalationDetail(context, self.catalogue)
        self.reason = QLineEdit()
        self.approve = QPushButton()
        self.reject = QPushButton()
        self.status = label("")
        self.expiry = QTimer(self)
        self.expiry.setInterval(EXPIRY_CHECK_MS)
        self._lay_out()
        self._connect()
        self.retranslate(context.texts)
        self.expiry.start()

    def _lay_out(self) -> None:
        for button in (self.approve, self.reject):
            button.setMinimumHeight(self.context.metrics.touch_px)
        self.reason.setMinimumHeight(self.context.metrics.touch_px)
        buttons = QHBoxLayout()
        buttons.addWidget(self.approve)
        buttons.addWidget(self.reject)
        right = QVBoxLayout()
        right.addWidget(self.detail, 1)
        right.addWidget(self.reason)
        right.addLayout(buttons)
        right.addWidget(self.status)
        self.main = QHBoxLayout(self)
        self.main.addWidget(self.list, 2)
        self.main.addLayout(right, 3)

    def _connect(self) -> None:
        self.context.bridge.message_received.connect(self.on_message)
        self.list.currentItemChanged.connect(self.on_selection_changed)
        self.approve.clicked.connect(lambda: self.decide("approve"))
        self.reject.clicked.connect(lambda: self.decide("reject"))
        self.expiry.timeout.connect(self.on_expiry_timeout)

    def retranslate(self, texts: Texts) -> None:
        self.texts = self.detail.texts = texts
        self.reason.setPlaceholderText(texts("auth.reason"))
        self.approve.setText(texts("auth.approve"))
        self.reject.setText(texts("auth.reject"))
        self.refresh()

    def resizeEvent(self, event: QResizeEvent | None) -> None:  # noqa: N802 (Qt override)
        """Side by side in landscape, the queue above the detail in portrait."""
        self.main.setDirection(portrait_direction(self))
        super().resizeEvent(event)

    @pyqtSlot(object)
    def on_message(self, message: Message) -> None:
        if isinstance(message, AuthEscalation) and message.branch_id == self.context.config.branch_id:
            if self.queue.add(message):
                self.refresh()
        else:
            closed = isinstance(message, AuthDecision) and self.queue.close(message.request_id)
            if closed or self.catalogue.update(message):
                self.refresh()

    @pyqtSlot()
    def on_expiry_timeout(self) -> None:
        if self.queue.drop_expired():
            self.refresh()

    def on_selection_changed(self, current: QListWidgetItem | None, previous: QListWidgetItem | None) -> None:
        self.detail.show_escalation(self.selected())
        enabled = self.selected() is not None
        self.approve.setEnabled(enabled)
        self.reject.setEnabled(enabled)

    def selected(self) -> AuthEscalation | None:
        item = self.list.currentItem()
        return self.queue.items.get(item.data(Qt.ItemDataRole.UserRole)) if item is not None else None

    def refresh(self) -> None:
        current = self.selected()
        self.list.blockSignals(True)
        self.list.clear()
        for escalation in self.queue.items.values():
            text = (f"{self.catalogue.title(escalation.scenario, self.texts.language)}\n"
                    f"{escalation.masked_card_number}")
            item = QListWidgetItem(text)
            item.setData(Qt.ItemDataRole.UserRole, escalation.request_id)
            self.list.addItem(item)
            if current is not None and escalation.request_id == current.request_id:
                self.list.setCurrentItem(item)
        if self.list.count() and self.list.currentItem() is None:
            self.list.setCurrentRow(0)
        self.list.blockSignals(False)
        self.on_selection_changed(self.list.currentItem(), None)
        self.badge_changed.emit(len(self.queue.items))

    def decide(self, decision: str) -> None:
        escalation = self.selected()
        reason = self.reason.text().strip()
        if escalation is None:
            return
        if not reason:
            self.status.setText(self.texts("auth.need_reason"))
            return
        config = self.context.config
        message = AuthDecision(branch_id=config.branch_id, request_id=escalation.request_id,
                               supervisor_id=config.effective_rm_id, device_id=config.device_id,
                               decision="approve" if decision == "approve" else "reject",
                               reason=reason[:300])
        self.context.publish(message)
        self.queue.close(escalation.request_id)
        self.reason.clear()
        self.status.setText(self.texts("auth.sent", decision=self.texts(f"auth.{decision}")))
        self.decision_sent.emit(message)
        self.refresh()


def create_page(context: PageContext) -> QWidget:
    return SupervisorPage(context)
