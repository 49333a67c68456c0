"""The arrivals list: one tappable row per visit, in the order ArrivalFeed gives."""

from __future__ import annotations

from PyQt6.QtCore import QSize, Qt, pyqtSignal, pyqtSlot
from PyQt6.QtGui import QFontMetrics, QIcon
from PyQt6.QtWidgets import QListWidget, QListWidgetItem, QStyle, QWidget

from mqtt.messages import Arrival
from ui.state.feed import ArrivalFeed, ClaimBook
from ui.state.i18n import Texts, customer_title
from ui.widgets.common import jpeg_pixmap, placeholder_pixmap
from ui.widgets.screen import Metrics

ID_ROLE = Qt.ItemDataRole.UserRole


class FeedList(QListWidget):
    """Signals:
    arrival_chosen(str): the RM tapped the row of this arrival id.
    """

    arrival_chosen = pyqtSignal(str)

    def __init__(self, metrics: Metrics, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._metrics = metrics
        side = metrics.touch_px + metrics.body_px
        self.setIconSize(QSize(side, side))
        self.setVerticalScrollMode(QListWidget.ScrollMode.ScrollPerPixel)
        self.setUniformItemSizes(False)
        self.itemClicked.connect(self.on_item_clicked)

    def show_feed(self, feed: ArrivalFeed, claims: ClaimBook, texts: Texts, selected: str | None) -> None:
        self.blockSignals(True)
        self.clear()
        side = self.iconSize().width()
        for entry in feed.entries():
            arrival = entry.arrival
            item = QListWidgetItem(self._row_text(feed, claims, texts, entry.arrival))
            pixmap = jpeg_pixmap(arrival.thumbnail_jpeg_b64, side) or placeholder_pixmap(side, "?")
            item.setIcon(QIcon(pixmap))
            item.setData(ID_ROLE, arrival.id)
            item.setSizeHint(QSize(0, max(self._metrics.touch_px, side) + self._metrics.body_px * 2))
            font = item.font()
            font.setBold(not entry.seen)
            item.setFont(font)
            self.addItem(item)
            if arrival.id == selected:
                item.setSelected(True)
        self.blockSignals(False)

    @staticmethod
    def _row_text(feed: ArrivalFeed, claims: ClaimBook, texts: Texts, arrival: Arrival) -> str:
        title, missing = customer_title(arrival.customer, texts)
        parts = [f"{title}  ⚠ {missing}" if missing else title, arrival.customer.tier.strip()]
        if feed.is_mine(arrival):
            parts.append(texts("feed.mine"))
        first = "  ·  ".join(part for part in parts if part)
        when = texts("feed.seen_at", time=arrival.seen_at.astimezone().strftime("%H:%M"))
        state = claims.state(arrival.visit_id)
        if state.free:
            claim = texts("claim.free")
        elif state.mine:
            claim = texts("claim.mine")
        else:
            claim = texts("claim.other", rm=state.holder)
        return f"{first}\n{when}  ·  {claim}"

    def needed_width(self) -> int:
        """The width that shows every row's lines whole (unseen rows are bold): the widest line,
        the thumbnail, the paddings, the frame and room for a scroll bar."""
        font = self.font()
        font.setBold(True)
        metrics = QFontMetrics(font)
        lines = [line for i in range(self.count()) if (item := self.item(i)) is not None
                 for line in item.text().splitlines()]
        widest = max((metrics.horizontalAdvance(line) for line in lines), default=0)
        style = self.style()
        scroll = style.pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent) if style is not None else 16
        return widest + self.iconSize().width() + 2 * self.frameWidth() + scroll + 3 * self._metrics.body_px

    def needed_height(self, min_rows: int = 2) -> int:
        """The height that shows every row (at least ``min_rows`` of them)."""
        rows = max(self.count(), min_rows)
        row = max(self._metrics.touch_px, self.iconSize().height()) + self._metrics.body_px * 2
        return rows * row + 2 * self.frameWidth()

    def ids(self) -> list[str]:
        items = (self.item(i) for i in range(self.count()))
        return [str(item.data(ID_ROLE)) for item in items if item is not None]

    @pyqtSlot(QListWidgetItem)
    def on_item_clicked(self, item: QListWidgetItem) -> None:
        self.arrival_chosen.emit(str(item.data(ID_ROLE)))
