"""Sizes for a tablet held at arm's length, computed from the screen's logical DPI.

Touch targets are at least 9 mm on the glass (``TOUCH_MM``); body text is
about 4.2 mm tall (16 px at 96 dpi), titles larger.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

MM_PER_INCH = 25.4
TOUCH_MM = 9.0
BODY_MM = 4.2
TITLE_MM = 6.0


def mm_to_px(mm: float, dpi: float) -> int:
    return math.ceil(mm / MM_PER_INCH * dpi)


@dataclass(frozen=True)
class Metrics:
    dpi: float

    @property
    def touch_px(self) -> int:
        return mm_to_px(TOUCH_MM, self.dpi)

    @property
    def body_px(self) -> int:
        return mm_to_px(BODY_MM, self.dpi)

    @property
    def title_px(self) -> int:
        return mm_to_px(TITLE_MM, self.dpi)

    @property
    def photo_px(self) -> int:
        return mm_to_px(30, self.dpi)

    def stylesheet(self) -> str:
        """One style for the whole app: big type, big buttons, no hover-only cues."""
        t, b, h = self.touch_px, self.body_px, self.title_px
        return f"""
        QWidget {{ font-size: {b}px; }}
        QPushButton, QComboBox, QDateEdit, QLineEdit, QCheckBox {{ min-height: {t}px; }}
        QPushButton {{ min-width: {t}px; padding: 0 {b}px; border-radius: 6px;
                       border: 1px solid #8a8f98; background: #f3f4f6; }}
        QPushButton:checked {{ background: #1f6feb; color: white; border-color: #1f6feb; }}
        QPushButton:pressed {{ background: #d0d7de; }}
        QPushButton#primary {{ background: #1f6feb; color: white; border-color: #1f6feb; }}
        QPushButton:disabled {{ color: #9aa0a6; background: #eceff1; }}
        QCheckBox::indicator {{ width: {t // 2}px; height: {t // 2}px; }}
        QLabel#title {{ font-size: {h}px; font-weight: bold; }}
        QLabel#section {{ font-size: {b}px; font-weight: bold; color: #1f2328; margin-top: {b // 2}px; }}
        QLabel#badge {{ background: #d1242f; color: white; border-radius: {t // 4}px;
                        padding: 2px {b // 2}px; font-weight: bold; }}
        QLabel#online {{ background: #1a7f37; color: white; padding: 2px {b // 2}px; border-radius: 4px; }}
        QLabel#offline {{ background: #bf8700; color: white; padding: 2px {b // 2}px; border-radius: 4px; }}
        QLabel#claim_other {{ color: #d1242f; font-weight: bold; }}
        QLabel#claim_mine {{ color: #1a7f37; font-weight: bold; }}
        QLabel#error {{ color: #d1242f; }}
        QListWidget::item {{ min-height: {t}px; border-bottom: 1px solid #d0d7de; padding: 4px; }}
        QListWidget::item:selected {{ background: #ddf4ff; color: #1f2328; }}
        """
