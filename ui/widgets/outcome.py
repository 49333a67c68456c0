"""The outcome form: one big button per result, the product sold, a follow-up date, a note."""

from __future__ import annotations

from datetime import date

from PyQt6.QtCore import QDate, pyqtSignal, pyqtSlot
from PyQt6.QtWidgets import (
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QGridLayout,
    QHBoxLayout,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from mqtt.messages import Arrival
from ui.state.feed import OUTCOME_RESULTS, OutcomeDraft
from ui.state.i18n import Texts
from ui.widgets.common import label


class OutcomePanel(QWidget):
    """Signals:
    submitted(OutcomeDraft): the RM tapped Submit (the owner validates and publishes).
    cancelled(): the RM tapped Cancel.
    """

    submitted = pyqtSignal(object)
    cancelled = pyqtSignal()

    def __init__(self, texts: Texts, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.texts = texts
        self.title = label("", "title")
        self.results = QButtonGroup(self)
        self.result_buttons: dict[str, QPushButton] = {}
        grid = QGridLayout()
        for i, result in enumerate(OUTCOME_RESULTS):
            button = QPushButton()
            button.setCheckable(True)
            self.results.addButton(button, i)
            self.result_buttons[result] = button
            grid.addWidget(button, i // 3, i % 3)
        self.product_label = label("", "section")
        self.product = QComboBox()
        self.product.setProperty("data", True)  # product names as the catalogue writes them
        self.follow_up = QCheckBox()
        self.follow_up_on = QDateEdit()
        self.follow_up_on.setCalendarPopup(True)
        self.follow_up_on.setDisplayFormat("yyyy-MM-dd")
        self.note_label = label("", "section")
        self.note = QLineEdit()
        self.note.setMaxLength(500)
        self.error = label("", "error")
        self.submit_button = QPushButton()
        self.submit_button.setObjectName("primary")
        self.cancel_button = QPushButton()
        self._lay_out(grid)
        self._connect_signals()
        self.retranslate()

    def _lay_out(self, grid: QGridLayout) -> None:
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(grid)
        layout.addWidget(self.product_label)
        layout.addWidget(self.product)
        row = QHBoxLayout()
        row.addWidget(self.follow_up)
        row.addWidget(self.follow_up_on, 1)
        layout.addLayout(row)
        layout.addWidget(self.note_label)
        layout.addWidget(self.note)
        layout.addWidget(self.error)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.submit_button)
        layout.addLayout(buttons)
        layout.addStretch(1)

    def _connect_signals(self) -> None:
        self.submit_button.clicked.connect(self.on_submit_button_clicked)
        self.cancel_button.clicked.connect(self.cancelled)
        self.follow_up.toggled.connect(self.follow_up_on.setEnabled)

    def retranslate(self) -> None:
        t = self.texts
        self.title.setText(t("outcome.title"))
        for result, button in self.result_buttons.items():
            button.setText(t(f"outcome.{result}"))
        self.product_label.setText(t("outcome.product"))
        self.follow_up.setText(t("outcome.set_follow_up"))
        self.note_label.setText(t("outcome.note"))
        self.submit_button.setText(t("outcome.submit"))
        self.cancel_button.setText(t("outcome.cancel"))

    def start(self, arrival: Arrival, today: date) -> None:
        """Reset the form for ``arrival``: contacted, first recommendation, no follow-up."""
        self.result_buttons["contacted"].setChecked(True)
        self.product.clear()
        for rec in arrival.recommendations:
            self.product.addItem(rec.name, rec.product_id)
        self.follow_up.setChecked(False)
        self.follow_up_on.setEnabled(False)
        self.follow_up_on.setDate(QDate(today.year, today.month, today.day))
        self.note.clear()
        self.error.clear()

    def draft(self) -> OutcomeDraft:
        result = OUTCOME_RESULTS[max(self.results.checkedId(), 0)]
        product = self.product.currentData()
        sold = result == "product_sold" and product is not None
        follow = self.follow_up_on.date().toPyDate() if self.follow_up.isChecked() else None
        return OutcomeDraft(result, (str(product),) if sold else (), follow, self.note.text())

    def show_error(self, key: str) -> None:
        self.error.setText(self.texts(key))

    @pyqtSlot()
    def on_submit_button_clicked(self) -> None:
        self.submitted.emit(self.draft())
