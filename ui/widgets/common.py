"""Small helpers shared by the PAD's widgets."""

from __future__ import annotations

import base64
import binascii

import cv2
import numpy as np
from PyQt6.QtCore import Qt
from PyQt6.QtGui import QColor, QFont, QImage, QPainter, QPixmap
from PyQt6.QtWidgets import QBoxLayout, QLabel, QLayout, QVBoxLayout, QWidget

from edge.core.errors import ImageError
from edge.core.image_header import check_header

# Thumbnails are ~160 px, card photos 102x126, escalation frames at most 640 px wide:
# a Full HD frame is far above any of them and still cheap to decode on a tablet.
MAX_THUMBNAIL_PIXELS = 1920 * 1080


def label(text: str, name: str | None = None, wrap: bool = True) -> QLabel:
    widget = QLabel(text)
    widget.setWordWrap(wrap)
    widget.setTextFormat(Qt.TextFormat.PlainText)
    if name:
        widget.setObjectName(name)
    return widget


def portrait_direction(widget: QWidget) -> QBoxLayout.Direction:
    """Side by side on a landscape screen, one above the other on a portrait one."""
    if widget.height() > widget.width():
        return QBoxLayout.Direction.TopToBottom
    return QBoxLayout.Direction.LeftToRight


def clear_layout(layout: QLayout) -> None:
    while layout.count():
        item = layout.takeAt(0)
        if item is None:
            break
        widget = item.widget()
        child = item.layout()
        if widget is not None:
            widget.setParent(None)
            widget.deleteLater()
        elif child is not None:
            clear_layout(child)


def jpeg_pixmap(b64: str | None, side: int) -> QPixmap | None:
    """The thumbnail as a square pixmap, or None when absent or not a readable image.

    OpenCV decodes it: Qt's JPEG reader prints Qt warnings on bad data.  The header is
    read first: a canvas over :data:`MAX_THUMBNAIL_PIXELS` is never decoded.
    """
    if not b64:
        return None
    try:
        data = base64.b64decode(b64, validate=True)
        header = check_header(data, "thumbnail", MAX_THUMBNAIL_PIXELS)
    except (binascii.Error, ValueError, ImageError):
        return None
    if header.format != "jpeg":
        return None
    bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        return None
    rgb = np.ascontiguousarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    height, width = rgb.shape[:2]
    image = QImage(rgb.tobytes(), width, height, 3 * width, QImage.Format.Format_RGB888).copy()
    return QPixmap.fromImage(image).scaled(side, side, Qt.AspectRatioMode.KeepAspectRatio,
                         Qt.TransformationMode.SmoothTransformation)


def placeholder_pixmap(side: int, text: str) -> QPixmap:
    """A grey square with a caption, where a photo is not available."""
    pixmap = QPixmap(side, side)
    pixmap.fill(QColor("#e6e8eb"))
    painter = QPainter(pixmap)
    painter.setPen(QColor("#57606a"))
    font = QFont()
    font.setPixelSize(max(10, side // 9))
    painter.setFont(font)
    painter.drawText(pixmap.rect(), Qt.AlignmentFlag.AlignCenter | Qt.TextFlag.TextWordWrap, text)
    painter.end()
    return pixmap


def photo_with_caption(pixmap: QPixmap, caption: str) -> QWidget:
    """A photo with its caption written underneath (not in a hover-only tooltip)."""
    box = QWidget()
    layout = QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    photo = QLabel()
    photo.setPixmap(pixmap)
    photo.setAccessibleName(caption)
    layout.addWidget(photo)
    text = label(caption, wrap=False)
    text.setAlignment(Qt.AlignmentFlag.AlignHCenter)
    layout.addWidget(text)
    layout.addStretch(1)
    return box
