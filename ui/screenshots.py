"""Saving the customer card of each arrival as a PNG (the demo, headless machines, docs)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from PyQt6.QtCore import QObject, QTimer, pyqtSlot
from PyQt6.QtWidgets import QApplication, QWidget

from edge.core.files import create_private_file
from mqtt.messages import Arrival
from ui.pages.rm import RmPage

if TYPE_CHECKING:
    from ui.app import PadApp

logger = logging.getLogger(__name__)


def save_png(widget: QWidget, path: Path) -> Path:
    """Render ``widget`` (shown or not) into ``path``."""
    create_private_file(path)  # a customer card (name, live face): 0600, its folder 0700; Qt keeps the mode
    # Run pending layout and show events: grab what the user would see.  (This may run
    # other queued slots too; callers must tolerate re-entry, see CardShooter.)
    QApplication.sendPostedEvents()
    QApplication.processEvents()
    if not widget.grab().save(str(path), "PNG"):
        raise OSError(f"could not write {path}")
    return path


class CardShooter(QObject):
    """Opens the card of every arrival received while it runs and saves the whole window;
    quits after ``exit_after`` of them.  Arrivals replayed from the journal at start (received
    before a restart) are shown in the feed but neither saved nor counted."""

    def __init__(self, pad: PadApp, folder: Path, exit_after: int | None = None) -> None:
        super().__init__(pad.window)
        self.pad = pad
        self.folder = folder
        self.exit_after = exit_after
        self.saved: list[Path] = []
        self._waiting: list[Arrival] = []
        self._busy = False

    def attach(self) -> None:
        self._rm_page().arrival_shown.connect(self.on_page_arrival_shown)

    def _rm_page(self) -> RmPage:
        page = self.pad.window.page
        if not isinstance(page, RmPage):
            raise ValueError("screenshots of arrivals need the rm role")
        return page

    @pyqtSlot(object)
    def on_page_arrival_shown(self, arrival: Arrival) -> None:
        if arrival.id in self.pad.link.replayed:
            return
        self._waiting.append(arrival)
        if self._busy:  # re-entered from save_png's event processing: the loop below takes it
            return
        self._busy = True
        try:
            while self._waiting:
                self._shoot(self._waiting.pop(0))
        finally:
            self._busy = False
        if self.exit_after is not None and len(self.saved) >= self.exit_after:
            QTimer.singleShot(0, QApplication.quit)

    def _shoot(self, arrival: Arrival) -> None:
        self._rm_page().on_feed_list_arrival_chosen(arrival.id)
        name = f"card-{len(self.saved) + 1:03d}-{arrival.customer.customer_id}.png"
        self.saved.append(save_png(self.pad.window, self.folder / name))
        logger.info("saved %s", name)
