"""The only way from the MQTT network thread to the widgets.

``PadBridge.deliver`` is the Receiver's handler: it runs on paho's thread and
only emits signals.  The bridge lives in the GUI thread, so Qt queues each
emission to the GUI thread (AutoConnection across threads); widgets never see
another thread.  Connection state is polled from a GUI-thread timer (reading
a threading.Event, which never blocks) and reported on change.
"""

from __future__ import annotations

from collections.abc import Callable

from PyQt6.QtCore import QObject, QTimer, pyqtSignal, pyqtSlot

from mqtt.messages import Arrival, Claim
from mqtt.receiver import Delivery

CONNECTION_POLL_MS = 200


class PadBridge(QObject):
    """Signals carrying our message dataclasses.

    Signals:
        arrival_received(Arrival): a new arrival (already checked and de-duplicated).
        claim_received(Claim): some RM claimed or released a visit (ours included).
        message_received(Message): every accepted message, for plug-in pages.
        connection_changed(bool): the broker connection went up (True) or down.
    """

    arrival_received = pyqtSignal(object)
    claim_received = pyqtSignal(object)
    message_received = pyqtSignal(object)
    connection_changed = pyqtSignal(bool)

    def __init__(self, is_connected: Callable[[], bool] | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._is_connected = is_connected
        self.online: bool | None = None
        self._poll = QTimer(self)
        self._poll.setInterval(CONNECTION_POLL_MS)
        self._poll.timeout.connect(self.on_poll_timeout)

    def watch(self, is_connected: Callable[[], bool]) -> None:
        self._is_connected = is_connected
        self._poll.start()
        self.on_poll_timeout()

    def deliver(self, delivery: Delivery) -> None:
        """Receiver handler: called on the MQTT thread; emits only."""
        message = delivery.message
        if isinstance(message, Arrival):
            self.arrival_received.emit(message)
        elif isinstance(message, Claim):
            self.claim_received.emit(message)
        self.message_received.emit(message)

    @pyqtSlot()
    def on_poll_timeout(self) -> None:
        if self._is_connected is None:
            return
        now = bool(self._is_connected())
        if now != self.online:
            self.online = now
            self.connection_changed.emit(now)
