"""Running the PAD app: the window, the bridge and the MQTT link, wired once."""

from __future__ import annotations

import logging
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

from PyQt6.QtCore import QCoreApplication, QMessageLogContext, QTimer, QtMsgType, qInstallMessageHandler
from PyQt6.QtWidgets import QApplication

from ui.bridge import PadBridge
from ui.pages.base import PageContext
from ui.screenshots import CardShooter
from ui.state.config import PadConfig
from ui.state.i18n import Texts
from ui.state.link import PadLink
from ui.widgets.screen import Metrics
from ui.window import PadWindow

logger = logging.getLogger(__name__)

LANDSCAPE = (1280, 800)


def needs_offscreen() -> bool:
    return sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    )


class PadApp:
    """The app's parts for one device: bridge, link and window (a QApplication must exist)."""

    def __init__(self, config: PadConfig, language: str | None = None) -> None:
        self.config = config
        self.bridge = PadBridge()
        self.link = PadLink(config, handler=self.bridge.deliver)
        screen = QApplication.primaryScreen()
        dpi = screen.logicalDotsPerInch() if screen is not None else 96.0
        context = PageContext(self.link.config, self.bridge, self.link.publish,  # rm_id from the roster
                              Texts(language or config.language), Metrics(dpi))
        self.window = PadWindow(context)

    def start(self) -> None:
        self.link.start()
        self.bridge.watch(lambda: self.link.connected)

    def stop(self) -> None:
        self.link.stop()


class StopOnSignal:
    """SIGINT and SIGTERM end the window's loop with exit code 0 (Ctrl-C, systemd, the demo).

    A signal can come before the loop runs (right after the link connects, on a busy machine),
    when ``QApplication.quit()`` does nothing: the request is kept, and the ticker, which lets
    Python see signals while Qt's loop runs, ends the loop as soon as it is running."""

    def __init__(self, qt_app: QCoreApplication) -> None:
        self.qt_app = qt_app
        self.requested = False

    def install(self) -> None:
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self.on_signal)

    def on_signal(self, *_: object) -> None:
        self.requested = True
        self.qt_app.quit()

    def on_tick(self) -> None:
        if self.requested:
            self.qt_app.quit()

    def ticker(self, interval_ms: int = 250) -> QTimer:
        timer = QTimer()
        timer.timeout.connect(self.on_tick)
        timer.start(interval_ms)
        return timer


def quiet_offscreen(kind: QtMsgType, context: QMessageLogContext, message: str | None) -> None:
    # The offscreen platform warns on every top-level window with a layout; nothing to act on.
    if message and "does not support propagateSizeHints" in message:
        return
    print(message, file=sys.stderr)


def _log_unhandled(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    # Without a hook of our own PyQt aborts the whole app on an exception in a slot; a tablet
    # app should log it and keep showing the feed.
    logger.error("unhandled error in the PAD app", exc_info=(kind, value, tb))


def run_gui(config: PadConfig, language: str | None, screenshot_dir: Path | None = None,
            exit_after: int | None = None, started: Callable[[PadApp], object] | None = None) -> int:
    """Show the window until it is closed (or SIGINT/SIGTERM, or ``exit_after`` screenshots);
    ``started(pad)`` runs once the link is started (the demo's stand-in edge)."""
    if needs_offscreen():
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    if os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        qInstallMessageHandler(quiet_offscreen)
    sys.excepthook = _log_unhandled
    qt_app = QApplication.instance() or QApplication(sys.argv[:1])
    # Before anything connects: a SIGTERM right after "connected" must still exit 0.
    stop = StopOnSignal(qt_app)
    stop.install()
    pad = PadApp(config, language)
    if screenshot_dir is not None:
        CardShooter(pad, screenshot_dir, exit_after).attach()
    pad.window.resize(*LANDSCAPE)
    pad.window.show()
    pad.start()
    if started is not None:
        started(pad)
    ticker = stop.ticker()
    try:
        return int(qt_app.exec())
    finally:
        ticker.stop()
        pad.stop()
