"""The bar across the top: app, role and who is signed in, connection state in words and colour,
badge, language."""

from __future__ import annotations

from PyQt6.QtCore import pyqtSignal, pyqtSlot
from PyQt6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QWidget

from ui.state.i18n import Texts
from ui.widgets.common import label


def repolish(widget: QWidget) -> None:
    style = widget.style()
    if style is not None:
        style.unpolish(widget)
        style.polish(widget)


class Header(QWidget):
    """Signals:
    language_requested(str): the user tapped the language button (the other language).
    """

    language_requested = pyqtSignal(str)

    def __init__(self, texts: Texts, role: str, staff: str = "", parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.texts = texts
        self.role = role
        self.staff = staff  # the staff member this device is bound to (roster), e.g. the RM
        self.online: bool | None = None
        self.badge_count = 0
        self.title = label("", "title")  # wraps on a narrow screen rather than widening the window
        self.connection = QLabel()
        self.badge = QLabel()
        self.badge.setObjectName("badge")
        self.language = QPushButton()
        layout = QHBoxLayout(self)
        layout.addWidget(self.title, 1)  # all the room there is: wraps only when it must
        layout.addWidget(self.badge)
        layout.addWidget(self.connection)
        layout.addWidget(self.language)
        self.language.clicked.connect(self.on_language_clicked)
        self.retranslate(texts)

    def retranslate(self, texts: Texts) -> None:
        self.texts = texts
        role = texts(f"role.{self.role}")
        who = texts("header.staff", role=role, staff=self.staff) if self.staff else role
        self.title.setText(f"{texts('app.title')} · {who}")
        self.language.setText("English" if texts.language == "zh-CN" else "中文")
        self.on_badge_changed(self.badge_count)
        self._show_connection()

    def _show_connection(self) -> None:
        if self.online is None:
            text, name = self.texts("conn.starting"), "offline"
        else:
            text, name = self.texts("conn.online" if self.online else "conn.offline"), (
                "online" if self.online else "offline")
        self.connection.setText(text)
        self.connection.setObjectName(name)
        repolish(self.connection)

    @pyqtSlot(bool)
    def on_connection_changed(self, online: bool) -> None:
        if online or self.online is not None:  # before the first connect: still "connecting"
            self.online = online
        self._show_connection()

    @pyqtSlot(int)
    def on_badge_changed(self, count: int) -> None:
        self.badge_count = count
        self.badge.setText(self.texts("feed.badge", n=count))
        self.badge.setVisible(count > 0)

    @pyqtSlot()
    def on_language_clicked(self) -> None:
        self.language_requested.emit("en" if self.texts.language == "zh-CN" else "zh-CN")
