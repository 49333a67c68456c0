"""SIGINT/SIGTERM end the PAD's window loop with exit code 0, even when they come before it runs."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import pytest
from PyQt6.QtCore import QTimer
from PyQt6.QtWidgets import QApplication

from ui.app import StopOnSignal

NEVER_ENDED = 99


@pytest.fixture
def restored_handlers() -> Iterator[None]:
    saved = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_before_the_loop_runs_still_ends_it(qapp: QApplication, restored_handlers: None,
                                                          signum: int) -> None:
    stop = StopOnSignal(qapp)
    stop.install()
    os.kill(os.getpid(), signum)  # Python runs the handler now: the loop has not started yet
    assert stop.requested
    ticker = stop.ticker(interval_ms=10)
    # only a guard: a lost request would leave the loop running until this fires
    QTimer.singleShot(30_000, lambda: qapp.exit(NEVER_ENDED))
    assert qapp.exec() == 0
    ticker.stop()


def test_without_a_signal_the_loop_runs_on(qapp: QApplication, restored_handlers: None) -> None:
    stop = StopOnSignal(qapp)
    stop.install()
    ticker = stop.ticker(interval_ms=10)
    QTimer.singleShot(200, lambda: qapp.exit(7))
    assert qapp.exec() == 7 and not stop.requested
    ticker.stop()
