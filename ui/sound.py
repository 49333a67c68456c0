"""The new-arrival sound: the platform's beep.

QSoundEffect would need QtMultimedia and an audio device; the system beep
needs neither and is silently a no-op where there is no sound (offscreen,
headless), so it never fails.  ``played`` counts requests (tests, the demo).
"""

from __future__ import annotations

from PyQt6.QtWidgets import QApplication


class Notifier:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.played = 0

    def play(self) -> None:
        if not self.enabled:
            return
        self.played += 1
        QApplication.beep()
