"""Does every text fit?  A walk over a shown window that lists each text Qt would cut:
a label wider than its room or taller than its height, a button or check box narrower than
its text, a list row whose line is elided, a widget that sticks out of its parent.

Used by the layout tests at each tablet size and language, and by ``branch-pad screenshots``
(which refuses to save pictures of a clipped screen).  Scrolling is not clipping: what a
scroll area's content holds below the fold is reachable, so only the content's width is
held to the viewport.
"""

from __future__ import annotations

from PyQt6.QtCore import QRect, Qt
from PyQt6.QtGui import QFontMetrics
from PyQt6.QtWidgets import (
    QAbstractButton,
    QApplication,
    QComboBox,
    QLabel,
    QListWidget,
    QScrollArea,
    QWidget,
)

SLACK = 1  # px: rounding between font metrics and layout


def clipped(root: QWidget, screen: tuple[int, int] | None = None) -> list[str]:
    """One line per text that does not fit, naming the widget and its text.  With ``screen``
    (width, height), a window that its layouts made larger than the screen is one too: a
    text too long for the screen grows the window past its edge rather than being cut."""
    QApplication.sendPostedEvents()
    QApplication.processEvents()
    problems: list[str] = []
    if screen is not None and (root.width() > screen[0] or root.height() > screen[1]):
        problems.append(f"the window is {root.width()}x{root.height()}, wider or taller than the "
                        f"{screen[0]}x{screen[1]} screen (its minimum size is "
                        f"{root.minimumSizeHint().width()}x{root.minimumSizeHint().height()})")
    for widget in [root, *root.findChildren(QWidget)]:
        if not widget.isVisibleTo(root) or widget.width() <= 0:
            continue
        problems += _sticks_out(widget, root)
        if isinstance(widget, QLabel):
            problems += _label(widget)
        elif isinstance(widget, QAbstractButton):
            problems += _button(widget)
        elif isinstance(widget, QComboBox):
            problems += _combo(widget)
        elif isinstance(widget, QListWidget):
            problems += _rows(widget)
    return problems


def _name(widget: QWidget, text: str = "") -> str:
    kind = type(widget).__name__
    shown = text.replace("\n", " / ")[:60]
    return f"{kind} {widget.objectName() or ''} {shown!r}".replace("  ", " ")


def _scroll_content(widget: QWidget) -> bool:
    """The widget a scroll area scrolls: it may be taller than the viewport."""
    viewport = widget.parentWidget()
    area = viewport.parentWidget() if viewport is not None else None
    return isinstance(area, QScrollArea) and area.widget() is widget


def _sticks_out(widget: QWidget, root: QWidget) -> list[str]:
    parent = widget.parentWidget()
    if widget is root or parent is None or widget.isWindow():
        return []
    geometry, room = widget.geometry(), parent.rect()
    if _scroll_content(widget):  # only its width must fit
        room = QRect(room.x(), geometry.y(), room.width(), geometry.height())
    grown = room.adjusted(-SLACK, -SLACK, SLACK, SLACK)
    if grown.contains(geometry):
        return []
    return [f"{_name(widget, _text(widget))} at {_rect(geometry)} sticks out of its parent "
            f"{type(parent).__name__} {_rect(room)}"]


def _text(widget: QWidget) -> str:
    if isinstance(widget, QLabel | QAbstractButton):
        return widget.text()
    return ""


def _rect(r: QRect) -> str:
    return f"{r.width()}x{r.height()}+{r.x()}+{r.y()}"


def _label(label: QLabel) -> list[str]:
    text = label.text()
    if not text or (label.pixmap() is not None and not label.pixmap().isNull()):
        return []
    room = label.contentsRect()
    metrics = label.fontMetrics()
    if label.wordWrap():
        needed = metrics.boundingRect(room, int(Qt.TextFlag.TextWordWrap), text)
        if needed.width() > room.width() + SLACK:
            return [f"{_name(label, text)}: a word {needed.width()} px wide in {room.width()} px"]
        height = label.heightForWidth(label.width())
        if height > label.height() + SLACK:
            return [f"{_name(label, text)}: needs {height} px of height, has {label.height()}"]
        return []
    widest = max(metrics.horizontalAdvance(line) for line in text.splitlines() or [""])
    if widest > room.width() + SLACK:
        return [f"{_name(label, text)}: {widest} px of text in {room.width()} px"]
    return []


def _button(button: QAbstractButton) -> list[str]:
    if not button.text():
        return []
    wanted = button.sizeHint().width()
    if wanted > button.width() + SLACK:
        return [f"{_name(button, button.text())}: needs {wanted} px, has {button.width()}"]
    return []


def _combo(combo: QComboBox) -> list[str]:
    text = combo.currentText() or combo.placeholderText()
    if not text:
        return []
    needed = combo.fontMetrics().horizontalAdvance(text)
    room = combo.width() - combo.iconSize().width() - 2 * combo.fontMetrics().height()  # frame, arrow
    if needed > room + SLACK:
        return [f"{_name(combo, text)}: {needed} px of text in about {room} px"]
    return []


def _rows(rows: QListWidget) -> list[str]:
    problems = []
    metrics = rows.fontMetrics()
    for i in range(rows.count()):
        item = rows.item(i)
        if item is None:
            continue
        rect = rows.visualItemRect(item)
        icon = rows.iconSize().width() if not item.icon().isNull() else 0
        room = rect.width() - icon - metrics.height()  # the icon, its gap and the item's padding
        font_metrics = metrics if not item.font().bold() else _bold(rows)
        widest = max(font_metrics.horizontalAdvance(line) for line in item.text().splitlines() or [""])
        if widest > room + SLACK:
            problems.append(f"{_name(rows, item.text())}: row {i} needs {widest} px, has about {room}")
        lines = max(1, len(item.text().splitlines()))
        if rect.height() < lines * metrics.lineSpacing():
            problems.append(f"{_name(rows, item.text())}: row {i} is {rect.height()} px high for "
                            f"{lines} lines")
    return problems


def _bold(widget: QWidget) -> QFontMetrics:
    font = widget.font()
    font.setBold(True)
    return QFontMetrics(font)
