"""RM mode: the arrivals feed beside the customer card, claims and outcomes."""

from __future__ import annotations

from PyQt6.QtCore import Qt, QTimer, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QResizeEvent
from PyQt6.QtWidgets import QSplitter, QStackedWidget, QVBoxLayout, QWidget

from mqtt.messages import Arrival, Claim, Message, Retraction
from ui.pages.base import PageContext
from ui.sound import Notifier
from ui.state.feed import ArrivalFeed, ClaimBook, OutcomeDraft, OutcomeError, new_claim, new_outcome
from ui.state.i18n import Texts
from ui.widgets.card import CustomerCardView
from ui.widgets.common import label
from ui.widgets.feedlist import FeedList
from ui.widgets.outcome import OutcomePanel

MIN_FEED_TOUCH = 6  # the feed is at least this many touch targets wide

class RmPage(QWidget):
    """Signals:
    badge_changed(int): how many arrivals the RM has not opened yet.
    arrival_shown(Arrival): a new visit entered the feed (after the sound).
    outcome_sent(Outcome): an outcome went to the outbox.
    """

    badge_changed = pyqtSignal(int)
    arrival_shown = pyqtSignal(object)
    outcome_sent = pyqtSignal(object)

    def __init__(self, context: PageContext) -> None:
        super().__init__()
        self.context = context
        self.rm_id = context.config.effective_rm_id
        self.feed = ArrivalFeed(self.rm_id)
        self.claims = ClaimBook(self.rm_id)
        self.notifier = Notifier(context.config.sound)
        self.selected_visit: str | None = None
        self.feed_list = FeedList(context.metrics)
        self.card = CustomerCardView(context.metrics, context.texts)
        self.outcome = OutcomePanel(context.texts)
        self.status = label("")
        self.right = QStackedWidget()
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self._fitted: tuple[bool, int, int] | None = None
        self.expiry = QTimer(self)
        self.expiry.setInterval(int(context.config.expiry_check_s * 1000))
        self._lay_out()
        self._connect_signals()
        self.expiry.start()
        self.refresh()

    def _lay_out(self) -> None:
        self.right.addWidget(self.card)
        self.right.addWidget(self.outcome)
        self.splitter.addWidget(self.feed_list)
        self.splitter.addWidget(self.right)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        self.splitter.setChildrenCollapsible(False)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.splitter, 1)
        layout.addWidget(self.status)

    def _connect_signals(self) -> None:
        bridge = self.context.bridge
        bridge.arrival_received.connect(self.on_bridge_arrival_received)
        bridge.claim_received.connect(self.on_bridge_claim_received)
        bridge.message_received.connect(self.on_bridge_message_received)
        self.expiry.timeout.connect(self.on_expiry_timeout)
        self.feed_list.arrival_chosen.connect(self.on_feed_list_arrival_chosen)
        self.card.claim_requested.connect(self.on_card_claim_requested)
        self.card.release_requested.connect(self.on_card_release_requested)
        self.card.outcome_requested.connect(self.on_card_outcome_requested)
        self.outcome.submitted.connect(self.on_outcome_submitted)
        self.outcome.cancelled.connect(self.on_outcome_cancelled)

    # --- rendering ------------------------------------------------------------

    def refresh(self) -> None:
        selected = self.feed.by_visit(self.selected_visit) if self.selected_visit else None
        if selected is None:
            self.selected_visit = None
            if self.right.currentWidget() is self.outcome:
                self.right.setCurrentWidget(self.card)
        arrival = selected.arrival if selected else None
        self.feed_list.show_feed(self.feed, self.claims, self.context.texts, arrival.id if arrival else None)
        state = self.claims.state(arrival.visit_id) if arrival else self.claims.state("")
        self.card.show_arrival(arrival, state)
        self.badge_changed.emit(self.feed.unseen)
        self.fit_feed()

    def retranslate(self, texts: Texts) -> None:
        self.card.texts = texts
        self.outcome.texts = texts
        self.context = PageContext(self.context.config, self.context.bridge, self.context.publish,
                                   texts, self.context.metrics, self.context.clock)
        self.outcome.retranslate()
        self.status.clear()
        self.refresh()

    def resizeEvent(self, event: QResizeEvent | None) -> None:  # noqa: N802 (Qt override)
        portrait = self.height() > self.width()
        wanted = Qt.Orientation.Vertical if portrait else Qt.Orientation.Horizontal
        if self.splitter.orientation() != wanted:
            self.splitter.setOrientation(wanted)
        super().resizeEvent(event)
        self.fit_feed()

    def fit_feed(self) -> None:
        """The feed no wider (taller, in portrait) than its rows need, at most 2/5 of the width
        (1/3 of the height); the card gets the rest.  Set again only when what the feed needs or
        the room changes, so a width the RM dragged stays until then."""
        landscape = self.splitter.orientation() == Qt.Orientation.Horizontal
        room = self.width() if landscape else self.height()
        if room <= 0:
            return
        if landscape:
            need = max(self.feed_list.needed_width(), MIN_FEED_TOUCH * self.context.metrics.touch_px)
            size = min(need, room * 2 // 5)
        else:
            size = min(self.feed_list.needed_height(), room // 3)
        if (landscape, room, size) != self._fitted:
            self._fitted = (landscape, room, size)
            self.splitter.setSizes([size, room - size])

    # --- slots ------------------------------------------------------------------

    @pyqtSlot(object)
    def on_bridge_arrival_received(self, arrival: Arrival) -> None:
        if self.feed.add(arrival, self.context.clock()):
            self.notifier.play()
            self.arrival_shown.emit(arrival)
        self.refresh()

    @pyqtSlot(object)
    def on_bridge_claim_received(self, claim: Claim) -> None:
        self.claims.apply(claim)
        self.refresh()

    @pyqtSlot(object)
    def on_bridge_message_received(self, message: Message) -> None:
        """A retraction (consent withdrawn): the customer's arrivals leave the screen now."""
        if not isinstance(message, Retraction):
            return
        for arrival in self.feed.retract(message):
            self.claims.forget(arrival.visit_id)
        self.refresh()

    @pyqtSlot()
    def on_expiry_timeout(self) -> None:
        for arrival in self.feed.expire(self.context.clock()):
            self.claims.forget(arrival.visit_id)
            self.refresh()

    @pyqtSlot(str)
    def on_feed_list_arrival_chosen(self, arrival_id: str) -> None:
        entry = self.feed.find(arrival_id)
        if entry is None:
            return
        self.feed.mark_seen(arrival_id)
        self.selected_visit = entry.arrival.visit_id
        self.right.setCurrentWidget(self.card)
        self.status.clear()
        self.refresh()

    def _claim(self, arrival_id: str, action: str) -> None:
        entry = self.feed.find(arrival_id)
        if entry is None:
            return
        claim = new_claim(entry.arrival, self.rm_id, self.context.config.device_id,
                          "release" if action == "release" else "claim")
        self.claims.apply(claim)  # shown at once; every PAD reaches the same holder
        self.context.publish(claim)
        self.refresh()

    @pyqtSlot(str)
    def on_card_claim_requested(self, arrival_id: str) -> None:
        self._claim(arrival_id, "claim")

    @pyqtSlot(str)
    def on_card_release_requested(self, arrival_id: str) -> None:
        self._claim(arrival_id, "release")

    @pyqtSlot(str)
    def on_card_outcome_requested(self, arrival_id: str) -> None:
        entry = self.feed.find(arrival_id)
        if entry is not None:
            self.outcome.start(entry.arrival, self.context.clock().astimezone().date())
            self.right.setCurrentWidget(self.outcome)

    @pyqtSlot(object)
    def on_outcome_submitted(self, draft: OutcomeDraft) -> None:
        entry = self.feed.by_visit(self.selected_visit) if self.selected_visit else None
        if entry is None:
            self.right.setCurrentWidget(self.card)
            return
        today = self.context.clock().astimezone().date()
        try:
            outcome = new_outcome(entry.arrival, self.rm_id, self.context.config.device_id, draft, today)
        except OutcomeError as err:
            self.outcome.show_error(err.key)
            return
        if self.claims.state(entry.arrival.visit_id).free:
            self._claim(entry.arrival.id, "claim")  # recording an outcome takes the customer
        self.context.publish(outcome)
        self.outcome_sent.emit(outcome)
        self.status.setText(self.context.texts("outcome.sent"))
        self.right.setCurrentWidget(self.card)

    @pyqtSlot()
    def on_outcome_cancelled(self) -> None:
        self.right.setCurrentWidget(self.card)


def create_page(context: PageContext) -> QWidget:
    return RmPage(context)
