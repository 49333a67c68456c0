"""The main window: the header over the role's page; owns the signal wiring."""

from __future__ import annotations

from PyQt6.QtCore import pyqtSlot
from PyQt6.QtWidgets import QMainWindow, QVBoxLayout, QWidget

from ui.pages.base import PageContext, create_page
from ui.state.i18n import Texts
from ui.widgets.header import Header


class PadWindow(QMainWindow):
    def __init__(self, context: PageContext) -> None:
        super().__init__()
        self.context = context
        self.header = Header(context.texts, context.config.role, context.config.effective_rm_id)
        self.page = create_page(context)
        body = QWidget()
        layout = QVBoxLayout(body)
        layout.addWidget(self.header)
        layout.addWidget(self.page, 1)
        self.setCentralWidget(body)
        self.setWindowTitle(context.texts("app.title"))
        self.setStyleSheet(context.metrics.stylesheet())
        self._connect_signals()

    def _connect_signals(self) -> None:
        self.context.bridge.connection_changed.connect(self.header.on_connection_changed)
        self.header.language_requested.connect(self.on_header_language_requested)
        badge = getattr(self.page, "badge_changed", None)
        if badge is not None:
            badge.connect(self.header.on_badge_changed)
            refresh = getattr(self.page, "refresh", None)
            if callable(refresh):
                refresh()

    @pyqtSlot(str)
    def on_header_language_requested(self, language: str) -> None:
        self.set_language(language)

    def set_language(self, language: str) -> None:
        texts = Texts(language)
        self.header.retranslate(texts)
        self.setWindowTitle(texts("app.title"))
        retranslate = getattr(self.page, "retranslate", None)
        if callable(retranslate):
            retranslate(texts)
