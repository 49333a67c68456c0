"""Byte transports below the one frame codec: serial (pyserial) and HID.

A transport moves whole protocol frames (with preamble) in both directions;
how they look on the wire is its own business:

- :class:`SerialTransport`: serial ports, USB-serial bridges and CDC devices
  (and the simulator's pseudo-terminal) carry the frames unchanged, 115200 8N1.
- :class:`HidTransport`: the HID adapters write the frame without its 5-byte
  preamble and answer one report per reply holding SW1 SW2 SW3 DATA CHK, without
  preamble and length; the transport adds both back so the codec sees a frame.
"""

from __future__ import annotations

import os
import re
import select
import termios
import time
from typing import Protocol

from ui.devices.idcard.card import CardReadError
from ui.devices.idcard.frames import PREAMBLE

BAUD_RATES = (115200, 57600, 38400, 19200, 9600)
ALLOW_URLS_ENV = "BRANCH_PAD_IDCARD_ALLOW_URLS"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class Transport(Protocol):
    def write(self, frame: bytes) -> None: ...

    def read(self, timeout: float) -> bytes:
        """Bytes that arrived within ``timeout`` seconds (b"" when none)."""
        ...

    def discard_input(self) -> None: ...

    def close(self) -> None: ...


def check_serial_port(port: str) -> None:
    """Refuse a pyserial URL (``socket://``, ``rfc2217://``, ``loop://``, any ``scheme://``).

    A reader is a local serial device; a URL would send ID-card data over the
    network or let a config point the reader at a fake one.  Tests that need a
    URL (``loop://``) set ``BRANCH_PAD_IDCARD_ALLOW_URLS=1``: test-only, never in
    a deployment.
    """
    if _URL.match(port) and os.environ.get(ALLOW_URLS_ENV) != "1":
        raise CardReadError(f"the reader port {port!r} is a network URL; only serial devices "
                            "(/dev/ttyUSB0, /dev/ttyACM0, a pty) are allowed", "bad_port")


class SerialTransport:
    """A serial port (or pty) through pyserial; never a URL (see :func:`check_serial_port`)."""

    def __init__(self, port: str, baudrate: int = 115200) -> None:
        import serial  # noqa: PLC0415 - pyserial only when a serial reader is opened

        if baudrate not in BAUD_RATES:
            raise CardReadError(f"baud rate {baudrate} is not one the reader accepts {BAUD_RATES}",
                                "bad_port")
        check_serial_port(port)
        try:
            if _URL.match(port):  # allowed for a test only
                self._port = serial.serial_for_url(port, baudrate=baudrate, bytesize=8, parity="N",
                                                   stopbits=1, timeout=0, exclusive=True)
            else:
                self._port = serial.Serial(port, baudrate=baudrate, bytesize=8, parity="N",
                                           stopbits=1, timeout=0, exclusive=True)
        except (serial.SerialException, OSError, ValueError) as exc:
            raise CardReadError(f"cannot open the reader on {port}: {exc}", "port_unavailable") from exc
        # a pseudo-terminal whose other end has gone fails flushes with termios.error (EIO)
        self._error: tuple[type[Exception], ...] = (serial.SerialException, termios.error, OSError)

    def write(self, frame: bytes) -> None:
        try:
            self._port.write(frame)
            self._port.flush()
        except self._error as exc:
            raise CardReadError(f"the reader connection failed: {exc}", "port_unavailable") from exc

    def read(self, timeout: float) -> bytes:
        try:
            self._port.timeout = max(0.0, timeout)
            first = self._port.read(1)
            if not first:
                return b""
            return first + self._port.read(self._port.in_waiting)
        except self._error as exc:
            raise CardReadError(f"the reader connection failed: {exc}", "port_unavailable") from exc

    def discard_input(self) -> None:
        try:
            self._port.reset_input_buffer()
        except self._error as exc:
            raise CardReadError(f"the reader connection failed: {exc}", "port_unavailable") from exc

    def close(self) -> None:
        self._port.close()


class HidTransport:
    """A HID reader through a report device (``/dev/hidrawN``, or any packet fd).

    Each ``os.read`` returns one report, i.e. one whole reply.  Readers whose
    replies span several reports need the vendor's framing; see the README.
    """

    REPORT_MAX = 4096

    def __init__(self, path_or_fd: str | int) -> None:
        if isinstance(path_or_fd, int):
            self._fd = path_or_fd
        else:
            try:
                self._fd = os.open(path_or_fd, os.O_RDWR | os.O_NONBLOCK)
            except OSError as exc:
                raise CardReadError(f"cannot open the HID reader {path_or_fd}: {exc}",
                                    "port_unavailable") from exc

    def write(self, frame: bytes) -> None:
        if not frame.startswith(PREAMBLE):
            raise ValueError("HidTransport.write expects a whole frame")
        try:
            os.write(self._fd, frame[len(PREAMBLE):])
        except OSError as exc:
            raise CardReadError(f"the HID reader failed: {exc}", "port_unavailable") from exc

    def read(self, timeout: float) -> bytes:
        ready, _, _ = select.select([self._fd], [], [], max(0.0, timeout))
        if not ready:
            return b""
        try:
            report = os.read(self._fd, self.REPORT_MAX)
        except BlockingIOError:
            return b""
        except OSError as exc:
            raise CardReadError(f"the HID reader failed: {exc}", "port_unavailable") from exc
        return PREAMBLE + len(report).to_bytes(2, "big") + report if report else b""

    def discard_input(self) -> None:
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline and self.read(0):
            pass

    def close(self) -> None:
        os.close(self._fd)
