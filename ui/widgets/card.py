"""The customer card: who just walked in, how to find them, what to offer and say.

The arrival carries a live face thumbnail but not the enrolled photo (PADs get
only what an RM needs; the enrolled photo stays encrypted at the edge), so the
enrolled-photo slot shows a placeholder that says so.
"""

from __future__ import annotations

from PyQt6.QtCore import Qt, pyqtSignal, pyqtSlot
from PyQt6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from mqtt.messages import Arrival, Portrait, Recommendation
from ui.state.feed import ClaimState
from ui.state.i18n import Texts, customer_title
from ui.widgets.common import (
    clear_layout,
    jpeg_pixmap,
    label,
    photo_with_caption,
    placeholder_pixmap,
)
from ui.widgets.screen import Metrics


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
        self._layout.addLayout(self._header(arrival))
        self._layout.addLayout(self._claim_row(claim))
        self._add_portrait(arrival.portrait)
        self._add_list("card.recommendations", [self._recommendation(r) for r in arrival.recommendations])
        points = arrival.talking_points
        if self.texts.language == "en" and arrival.talking_points_en:
            points = arrival.talking_points_en
        self._add_list("card.talking_points", points)
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
        facts.addWidget(label(title, "title"))
        if missing:
            facts.addWidget(label(f"⚠ {missing}", "claim_other"))
        lines = [f"{t('card.tier')}: {c.tier or '-'}", f"{t('card.rm')}: {arrival.assigned_rm or '-'}"]
        if c.masked_id_number:
            lines.append(f"{t('card.id_number')}: {c.masked_id_number}")
        if c.masked_account:
            lines.append(f"{t('card.account')}: {c.masked_account}")
        seen = arrival.seen_at.astimezone().strftime("%H:%M:%S")
        lines.append(f"{t('card.camera')}: {arrival.camera_id}  {seen}")
        for line in lines:
            facts.addWidget(label(line))
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

    def _recommendation(self, rec: Recommendation) -> str:
        reason = rec.reason_en if self.texts.language == "en" and rec.reason_en else rec.reason
        rating = f" [{rec.risk_rating}]" if rec.risk_rating else ""
        return f"{rec.name}{rating} — {reason}"

    def _add_portrait(self, portrait: Portrait) -> None:
        t = self.texts
        self._layout.addWidget(label(t("card.portrait"), "section"))
        summary = [f"{t('card.segment')}: {portrait.segment or '-'}",
                   f"{t('card.aum')}: {portrait.aum_band or '-'}",
                   f"{t('card.risk')}: {portrait.risk_level or '-'}"]
        self._layout.addWidget(label("   ".join(summary)))
        if portrait.risk_assessment in ("expiring", "expired", "missing"):
            until = portrait.risk_assessment_expires_on
            warning = t(f"risk.{portrait.risk_assessment}", on=until.isoformat() if until else "-")
            self._layout.addWidget(label(warning, "claim_other"))
        if portrait.holdings:
            holdings = "; ".join(f"{h.category} {h.amount_band}" for h in portrait.holdings)
            self._layout.addWidget(label(f"{t('card.holdings')}: {holdings}"))
        if portrait.preferences:
            self._layout.addWidget(label(f"{t('card.preferences')}: {', '.join(portrait.preferences)}"))
        events = [self._event_text(e.kind, e.on.isoformat() if e.on else "", e.note)
                  for e in portrait.life_events]
        self._add_list("card.life_events", events)
        interactions = [f"{i.on.isoformat()} {i.channel}: {i.summary}" for i in portrait.recent_interactions]
        if interactions:
            self._add_list("card.interactions", interactions)

    def _event_text(self, kind: str, on: str, note: str) -> str:
        key = f"event.{kind}"
        name = self.texts(key) if self.texts.has(key) else kind
        return " ".join(part for part in (name, on, note) if part)

    def _add_list(self, title_key: str, lines: list[str]) -> None:
        self._layout.addWidget(label(self.texts(title_key), "section"))
        for line in lines or [self.texts("card.nothing")]:
            item = label(f"•  {line}")
            item.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
            self._layout.addWidget(item)

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
