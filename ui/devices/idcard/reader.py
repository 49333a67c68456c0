"""High-level reading: one card (``read_card``) or a polling reader for the UI (``IdReader``)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from ui.devices.idcard.card import CardReadError, IdCard, card_from_blocks
from ui.devices.idcard.photo import PhotoDecoder, checked_photo
from ui.devices.idcard.protocol import ReaderSession, Timeouts
from ui.devices.idcard.transport import HidTransport, SerialTransport, Transport

log = logging.getLogger(__name__)


def open_transport(port: str | int, hid: bool = False, baudrate: int = 115200) -> Transport:
    """A serial port / pty path, or with ``hid`` a hidraw path or packet fd."""
    if hid:
        return HidTransport(port)
    return SerialTransport(str(port), baudrate)


def decode_photo(card: IdCard, decoder: PhotoDecoder | None) -> IdCard:
    """The card with ``photo_jpeg`` filled in, or ``photo_error`` saying why not."""
    if decoder is None:
        return card.with_photo(None, "no photo decoder configured")
    try:
        jpeg = decoder.decode(card.photo_wlt)
        if checked_photo(jpeg, "decoded card photo").format != "jpeg":
            raise CardReadError("the photo decoder did not return a JPEG", "photo_decode")
        return card.with_photo(jpeg)
    except CardReadError as exc:
        return card.with_photo(None, str(exc))


def read_card(port: str | int, timeout: float = 5.0, decoder: PhotoDecoder | None = None, *,
              hid: bool = False, fingerprint: bool = False, appended_address: bool = False) -> IdCard:
    """Wait up to ``timeout`` s for a card on the reader at ``port`` and read it."""
    transport = open_transport(port, hid)
    try:
        session = ReaderSession(transport)
        card = session.read_card(wait=timeout, fingerprint=fingerprint)
        if appended_address:
            card = replace(card, appended_address=session.read_appended_address())
    finally:
        transport.close()
    return decode_photo(card, decoder)


@dataclass(frozen=True)
class ReaderEvent:
    """What the polling reader saw: ``kind`` is 'card', 'error' or 'status'."""

    kind: str
    status: str
    card: IdCard | None = None
    error: CardReadError | None = None


class IdReader:
    """Polls a reader in a worker thread; the UI calls :meth:`poll` from its timer.

    ``status`` is one of ``connecting``, ``waiting`` (no card), ``reading``,
    ``remove_card`` (card read, lift it before the next), ``error`` and
    ``stopped``.  A card is reported once: the same card is not reported again
    until the reader has seen the field empty (the "card must leave" rule,
    enforced here too for readers that do not enforce it themselves).

    Whatever goes wrong (a reader fault, a malformed answer, an unplugged cable,
    or a bug in a parser) is reported as an ``error`` event and the thread
    reconnects: after ``n`` failures in a row it waits :func:`backoff_delay`
    (0.1 s doubling to 5 s), and one good answer resets the count.  While it
    reconnects the status stays ``error`` (the teller keeps seeing why) until the
    reader answers again.  ``failures``
    counts every error since the start; an unexpected exception is logged with
    its traceback once per exception type.
    """

    def __init__(self, transport_factory: Callable[[], Transport], decoder: PhotoDecoder | None = None,
                 timeouts: Timeouts | None = None) -> None:
        self._factory, self._decoder = transport_factory, decoder
        self._timeouts = timeouts or Timeouts()
        self._events: queue.Queue[ReaderEvent] = queue.Queue()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.status = "stopped"
        self.failures = 0
        self._in_a_row = 0
        self._logged: set[str] = set()

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="idcard-reader", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self.status = "stopped"

    def poll(self) -> ReaderEvent | None:
        """The next event, or None; never blocks."""
        try:
            return self._events.get_nowait()
        except queue.Empty:
            return None

    def _set(self, status: str, card: IdCard | None = None, error: CardReadError | None = None) -> None:
        kind = "card" if card is not None else "error" if error is not None else "status"
        if kind == "status" and status == self.status:
            return
        self.status = status
        self._events.put(ReaderEvent(kind, status, card, error))

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self.status != "error":  # after a failure the error stays shown until the reader answers
                self._set("connecting")
            try:
                transport = self._factory()
            except Exception as exc:  # the port is absent, busy, refused: report and retry
                self._failed(exc)
                continue
            try:
                self._poll_loop(ReaderSession(transport, self._timeouts))
            except Exception as exc:  # a reader fault or a parser bug: never the end of the thread
                self._failed(exc)
            finally:
                try:
                    transport.close()
                except Exception as exc:  # a port that fails to close is already gone
                    log.debug("closing the reader's port failed: %s", exc)

    def _failed(self, exc: Exception) -> None:
        self.failures += 1
        self._in_a_row += 1
        if not isinstance(exc, CardReadError):
            kind = type(exc).__name__
            if kind not in self._logged:
                self._logged.add(kind)
                log.error("ID-card reader: unexpected %s; reconnecting", kind, exc_info=exc)
            exc = CardReadError(f"The reader's answer could not be handled ({kind}); place the card "
                                "again, and have the reader checked if it keeps happening", "reader_fault")
        self._set("error", error=exc)
        self._stop.wait(backoff_delay(self._in_a_row, self._timeouts.poll_interval))

    def _poll_loop(self, session: ReaderSession) -> None:
        field_empty_seen = True
        while not self._stop.is_set():
            present = session.find()
            self._in_a_row = 0  # the reader answers: the next failure starts the back-off again
            if not present:
                field_empty_seen = True
                self._set("remove_card" if session.awaiting_removal else "waiting")
            elif field_empty_seen:
                self._set("reading")
                session.awaiting_removal = False
                session.select()
                text_card = _read_after_select(session)
                field_empty_seen = False
                session.awaiting_removal = True
                self._set("remove_card", card=decode_photo(text_card, self._decoder))
                continue
            self._stop.wait(self._timeouts.poll_interval)


MAX_BACKOFF_S = 5.0


def backoff_delay(failures_in_a_row: int, base: float, cap: float = MAX_BACKOFF_S) -> float:
    """Seconds to wait before reconnecting after the ``n``-th failure in a row (n >= 1)."""
    return float(min(cap, base * 2.0 ** min(max(failures_in_a_row - 1, 0), 30)))


def _read_after_select(session: ReaderSession) -> IdCard:
    text, photo, fp = session.read_blocks()
    return card_from_blocks(text, photo, fp)
