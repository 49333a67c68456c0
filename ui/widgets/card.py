"""The customer card: who just walked in, why now, what to offer and say.

Above the fold (what an RM reads while walking over): the live face, name, tier, RM, the
claim buttons, *why now* (the first talking point: life events come first) and the top
recommendation, and the risk-assessment warning when the assessment is not valid.  Below,
scrolling: the other recommendations and talking points, important dates (kind and date
only: the sentence about each is a talking point, not repeated), the portrait, recent
interactions and the masked identifiers.

Words come from ``ui.state.i18n``; sentences the edge wrote come in both languages
(recommendation reasons, talking points).  What the CRM and the catalogue name (the
customer's name, tier, segment, holdings, preferences, interaction notes, product names) is
shown as they name it: such labels carry the ``data`` property.

The arrival carries a live face thumbnail but not the enrolled photo (PADs get only what an
RM needs; the enrolled photo stays encrypted at the edge).
"""

from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal, pyqtSlot
from PyQt6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from mqtt.messages import Arrival, Portrait, Recommendation
from ui.state.feed import ClaimState
from ui.state.i18n import Texts, customer_title
from ui.widgets.common import clear_layout, jpeg_pixmap, label, photo_with_caption, placeholder_pixmap
from ui.widgets.screen import Metrics

WARNED = ("expiring", "expired", "missing")  # risk-assessment states the card warns about


def data_label(text: str, name: str | None = None) -> QLabel:
    """A label showing what the CRM or the catalogue wrote, in their language."""
    widget = label(text, name)
    widget.setProperty("data", True)
    return widget


class CustomerCardView(QScrollArea):
    """Signals:
    claim_requested(str): claim this arrival id.
    release_requested(str): release this arrival id.
    outcome_requested(str): open the outcome form for this arrival id.
    """

    claim_requested = pyqtSignal(str)
    release_requested = pyqtSignal(str)
    outcome_requested = pyqtSignal(str)

    def __init__(self, metrics: Metrics, texts: Texts, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._metrics = metrics
        self.texts = texts
        self.arrival: Arrival | None = None
        self.claim_button = QPushButton()
        self.release_button = QPushButton()
        self.outcome_button = QPushButton()
        self.outcome_button.setObjectName("primary")
        self.claim_label = label("")
        self._body = QWidget()
        self._layout = QVBoxLayout(self._body)
        self.setWidget(self._body)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # text wraps instead
        self.claim_button.clicked.connect(self.on_claim_button_clicked)
        self.release_button.clicked.connect(self.on_release_button_clicked)
        self.outcome_button.clicked.connect(self.on_outcome_button_clicked)
        self.show_arrival(None, ClaimState(None, mine=False))

    def show_arrival(self, arrival: Arrival | None, claim: ClaimState) -> None:
        self.arrival = arrival
        self._detach_buttons()
        clear_layout(self._layout)
        if arrival is None:
            self._layout.addWidget(label(self.texts("card.none"), "title"))
            self._layout.addStretch(1)
            return
        t = self.texts
        self._layout.addLayout(self._header(arrival))
        self._layout.addLayout(self._claim_row(claim))
        points = self._points(arrival)
        recommendations = [self._recommendation(r) for r in arrival.recommendations]
        # Above the fold: why now, the top recommendation, the assessment warning.
        warned = self._add_risk_warning(arrival.portrait)
        self._add_lines("card.why_now", points[:1])
        self._add_lines("card.top_recommendation", recommendations[:1], data=True)
        # Below: the rest, each fact once.
        self._add_lines("card.more_recommendations", recommendations[1:], data=True)
        self._add_lines("card.more_points", points[1:])
        self._add_dates(arrival.portrait, warned)
        known = self._add_portrait(arrival.portrait)
        if not (known or points or recommendations):
            self._layout.addWidget(label(t("card.no_crm")))
        self._add_identity(arrival)
        self._layout.addStretch(1)

    def _detach_buttons(self) -> None:
        for widget in (self.claim_button, self.release_button, self.outcome_button, self.claim_label):
            widget.setParent(None)

    def _header(self, arrival: Arrival) -> QHBoxLayout:
        t, side = self.texts, self._metrics.photo_px
        live = jpeg_pixmap(arrival.thumbnail_jpeg_b64, side) or placeholder_pixmap(side, t("card.no_live"))
        row = QHBoxLayout()
        row.addWidget(photo_with_caption(live, t("card.live")))
        enrolled = placeholder_pixmap(side, t("card.enrolled_missing"))
        row.addWidget(photo_with_caption(enrolled, t("card.enrolled")))
        facts = QVBoxLayout()
        c = arrival.customer
        title, missing = customer_title(c, t)
        facts.addWidget(data_label(title, "title"))
        if missing:
            facts.addWidget(label(f"⚠ {missing}", "claim_other"))
        if c.tier.strip():
            facts.addWidget(data_label(self._field("card.tier", c.tier)))
        facts.addWidget(label(self._field("card.rm", arrival.assigned_rm or t("card.no_rm"))))
        seen = arrival.seen_at.astimezone().strftime("%H:%M")
        facts.addWidget(label(t("card.seen", time=seen, camera=arrival.camera_id)))
        facts.addStretch(1)
        row.addLayout(facts, 1)
        return row

    def _claim_row(self, claim: ClaimState) -> QHBoxLayout:
        t = self.texts
        if claim.free:
            text, name = t("claim.free"), ""
        elif claim.mine:
            text, name = t("claim.mine"), "claim_mine"
        else:
            text, name = t("claim.other", rm=claim.holder), "claim_other"
        self.claim_label.setText(text)
        self.claim_label.setObjectName(name)
        style = self.claim_label.style()
        if style is not None:  # re-apply the style sheet after the object name changed
            style.unpolish(self.claim_label)
            style.polish(self.claim_label)
        self.claim_button.setText(t("claim.button"))
        self.release_button.setText(t("claim.release"))
        self.outcome_button.setText(t("outcome.button"))
        self.claim_button.setVisible(claim.free)
        self.release_button.setVisible(claim.mine)
        self.outcome_button.setEnabled(claim.free or claim.mine)
        row = QHBoxLayout()
        row.addWidget(self.claim_label, 1)
        for button in (self.claim_button, self.release_button, self.outcome_button):
            row.addWidget(button)
        return row

    def _field(self, name_key: str, value: str) -> str:
        return self.texts("card.field", name=self.texts(name_key), value=value)

    def _points(self, arrival: Arrival) -> list[str]:
        if self.texts.language == "en" and arrival.talking_points_en:
            return list(arrival.talking_points_en)
        return list(arrival.talking_points)

    def _recommendation(self, rec: Recommendation) -> str:
        reason = rec.reason_en if self.texts.language == "en" and rec.reason_en else rec.reason
        rating = f" [{rec.risk_rating}]" if rec.risk_rating else ""
        if not reason:
            return f"{rec.name}{rating}"
        return self.texts("card.field", name=f"{rec.name}{rating}", value=reason)

    def _add_risk_warning(self, portrait: Portrait) -> bool:
        if portrait.risk_assessment not in WARNED:
            return False
        until = portrait.risk_assessment_expires_on
        on = self.texts.date(until) if until else "-"
        self._layout.addWidget(label(self.texts(f"risk.{portrait.risk_assessment}", on=on), "claim_other"))
        return True

    def _add_lines(self, title_key: str, lines: list[str], data: bool = False) -> None:
        """A section: its title and one bulleted label per line; nothing when there are none."""
        if not lines:
            return
        self._layout.addWidget(label(self.texts(title_key), "section"))
        for line in lines:
            item = (data_label if data else label)(f"•  {line}")
            item.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
            self._layout.addWidget(item)

    def _add_dates(self, portrait: Portrait, warned: bool) -> None:
        """Important dates, kind and date: the words about each are talking points."""
        t = self.texts
        dates = []
        for event in portrait.life_events:
            if warned and event.kind.startswith("assessment"):
                continue  # the warning above says it, with its date
            key = f"event.{event.kind}"
            kind = t(key) if t.has(key) else t("event.other")
            dates.append(f"{kind}  {t.date(event.on)}" if event.on else kind)
        self._add_lines("card.life_events", dates)

    def _add_portrait(self, portrait: Portrait) -> bool:
        """The CRM's picture of the customer; False when the CRM had nothing."""
        t = self.texts
        facts = [("card.segment", portrait.segment), ("card.aum", portrait.aum_band),
                 ("card.risk", portrait.risk_level)]
        summary = "   ".join(self._field(key, value) for key, value in facts if value.strip())
        holdings = t("card.list_sep").join(f"{h.category} {h.amount_band}".strip() for h in portrait.holdings)
        preferences = t("card.list_sep").join(portrait.preferences)
        lines = [line for line in (summary, holdings and self._field("card.holdings", holdings),
                                   preferences and self._field("card.preferences", preferences)) if line]
        interactions = []
        for i in portrait.recent_interactions:
            key = f"channel.{i.channel}"
            channel = t(key) if t.has(key) else i.channel
            interactions.append(" · ".join(part for part in (t.date(i.on), channel, i.summary) if part))
        if lines:
            self._layout.addWidget(label(t("card.portrait"), "section"))
            for line in lines:
                self._layout.addWidget(data_label(line))
        self._add_lines("card.interactions", interactions, data=True)
        return bool(lines or interactions or portrait.life_events)

    def _add_identity(self, arrival: Arrival) -> None:
        c = arrival.customer
        lines = [self._field("card.customer_id", c.customer_id)]
        if c.masked_id_number:
            lines.append(self._field("card.id_number", c.masked_id_number))
        if c.masked_account:
            lines.append(self._field("card.account", c.masked_account))
        self._add_lines("card.identity", lines)

    @pyqtSlot()
    def on_claim_button_clicked(self) -> None:
        if self.arrival is not None:
            self.claim_requested.emit(self.arrival.id)

    @pyqtSlot()
    def on_release_button_clicked(self) -> None:
        if self.arrival is not None:
            self.release_requested.emit(self.arrival.id)

    @pyqtSlot()
    def on_outcome_button_clicked(self) -> None:
        if self.arrival is not None:
            self.outcome_requested.emit(self.arrival.id)
