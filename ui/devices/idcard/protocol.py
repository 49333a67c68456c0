"""The find -> select -> read sequence over any transport, with clear errors.

:class:`ReaderSession` owns one transport.  Each step sends one command frame
and waits for one valid response frame; a status word (SW3) other than the
step's success code becomes a :class:`~ui.devices.idcard.card.CardReadError` whose
``code`` names the status and whose message says what the teller should do.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import NoReturn

from ui.devices.idcard.card import CardReadError, IdCard, card_from_blocks
from ui.devices.idcard.frames import Command, FrameError, FrameReceiver, Response
from ui.devices.idcard.transport import Transport

log = logging.getLogger(__name__)

RESET_SAM = Command(0x10, 0xFF)
SAM_STATUS = Command(0x11, 0xFF)
SAM_ID = Command(0x12, 0xFF)
FIND = Command(0x20, 0x01)
SELECT = Command(0x20, 0x02)
READ_BASE = Command(0x30, 0x01)
READ_APPENDED_ADDRESS = Command(0x30, 0x03)
READ_WITH_FINGERPRINT = Command(0x30, 0x10)

SW_OK, SW_NO_CONTENT, SW_FOUND = 0x90, 0x91, 0x9F

# SW3 -> (code, teller message).  GA/T 467 status words as vendors document them.
STATUS: dict[int, tuple[str, str]] = {
    0x10: ("reader_checksum", "The reader received a damaged command; try again"),
    0x11: ("reader_length", "The reader received a command of the wrong length; try again"),
    0x21: ("reader_command", "The reader rejected the command; check the reader model and firmware"),
    0x23: ("not_permitted", "The reader refused the operation (not permitted)"),
    0x24: ("reader_unknown_error", "The reader reported an unknown error; try again"),
    0x31: ("card_auth_failed",
           "The card did not accept the reader's security module: the card may be forged"),
    0x32: ("sam_auth_failed",
           "The reader could not authenticate the card: the card may be forged or damaged"),
    0x33: ("verify_failed", "The card's data failed verification: the card may be forged or damaged"),
    0x37: ("fingerprint_failed", "The fingerprint data failed verification"),
    0x3F: ("length_error", "The card returned data of the wrong length; place it again"),
    0x40: ("card_type_unknown", "The reader does not recognise this card type"),
    0x41: ("read_failed", "Reading the card failed: hold the card still on the reader and try again"),
    0x47: ("random_failed", "The reader could not get a random number from the card; place it again"),
    0x60: ("sam_self_test_failed",
           "The reader's security module failed its self-test: the reader needs service"),
    0x66: ("sam_not_authorised", "The reader's security module is not authorised: the reader needs service"),
    0x80: ("no_card", "No card on the reader: place the card flat on the reader"),
    0x81: ("select_failed", "The card could not be selected: lift it off and place it again"),
    0x91: ("no_content", "The card has no data for this item"),
}
CARD_NOT_REMOVED = ("card_not_removed",
                    "The card was already read: lift it off the reader and place it again")


def status_error(sw3: int, step: str) -> CardReadError:
    code, message = STATUS.get(sw3, ("reader_status", "The reader returned an unexpected status"))
    return CardReadError(f"{message} (status 0x{sw3:02X} during {step})", code)


@dataclass(frozen=True)
class Timeouts:
    """Seconds to wait for each reply (vendors: ~0.1 s find/select, ~2 s read, 3 s = dead)."""

    find: float = 0.5
    select: float = 0.5
    read: float = 3.0
    fingerprint: float = 4.0
    sam: float = 1.0
    poll_interval: float = 0.1
    # Once bytes flow, a reply arrives in one burst (1295 bytes take ~0.11 s at
    # 115200 baud); this long a silence after a damaged or partial frame ends the wait.
    stall: float = 0.5


class ReaderSession:
    """One reader on one transport; not thread-safe (give it to one thread)."""

    def __init__(self, transport: Transport, timeouts: Timeouts | None = None) -> None:
        self.transport = transport
        self.timeouts = timeouts or Timeouts()
        # After a read the card must leave the field before the next one counts.
        self.awaiting_removal = False

    def exchange(self, command: Command, timeout: float, step: str) -> Response:
        self.transport.discard_input()
        self.transport.write(command.encode())
        receiver = FrameReceiver()
        deadline = last_data = time.monotonic()
        deadline += timeout
        while (left := deadline - time.monotonic()) > 0:
            data = self.transport.read(min(left, 0.05))
            now = time.monotonic()
            if data:
                last_data = now
            if bodies := receiver.feed(data):
                return _response(bodies[0], step)
            if (receiver.rejected or receiver.pending()) and now - last_data > self.timeouts.stall:
                break
        return self._no_reply(receiver, timeout, step)

    @staticmethod
    def _no_reply(receiver: FrameReceiver, timeout: float, step: str) -> NoReturn:
        if receiver.rejected:
            raise CardReadError(f"The reader's answer was damaged (checksum) during {step}; "
                                "place the card again", "bad_frame")
        if receiver.pending():
            raise CardReadError(f"The reader's answer was cut short during {step}; check the cable "
                                "and place the card again", "truncated")
        raise CardReadError(f"The reader did not answer within {timeout:.1f} s during {step}; "
                            "check that it is connected and powered", "timeout")

    def sam_status(self) -> None:
        response = self.exchange(SAM_STATUS, self.timeouts.sam, "SAM status")
        if response.sw3 != SW_OK:
            raise status_error(response.sw3, "SAM status")

    def sam_id(self) -> str:
        response = self.exchange(SAM_ID, self.timeouts.sam, "read SAM ID")
        if response.sw3 != SW_OK:
            raise status_error(response.sw3, "read SAM ID")
        if len(response.data) < 16:
            raise CardReadError("The reader's SAM ID answer is too short; the reader may need service",
                                "length_error")
        return format_sam_id(response.data[:16])

    def find(self) -> bool:
        """True when a (new) card is in the field, False when none is."""
        response = self.exchange(FIND, self.timeouts.find, "find card")
        if response.sw3 == SW_FOUND:
            return True
        if response.sw3 == 0x80:
            return False
        raise status_error(response.sw3, "find card")

    def select(self) -> None:
        response = self.exchange(SELECT, self.timeouts.select, "select card")
        if response.sw3 != SW_OK:
            raise status_error(response.sw3, "select card")

    def read_blocks(self, fingerprint: bool = False) -> tuple[bytes, bytes, bytes]:
        command = READ_WITH_FINGERPRINT if fingerprint else READ_BASE
        timeout = self.timeouts.fingerprint if fingerprint else self.timeouts.read
        response = self.exchange(command, timeout, "read card")
        if response.sw3 != SW_OK:
            raise status_error(response.sw3, "read card")
        return split_read_data(response.data, fingerprint)

    def read_appended_address(self) -> str:
        response = self.exchange(READ_APPENDED_ADDRESS, self.timeouts.read, "read appended address")
        if response.sw3 == SW_NO_CONTENT:
            return ""
        if response.sw3 != SW_OK:
            raise status_error(response.sw3, "read appended address")
        return response.data.decode("utf-16-le", errors="replace").replace("\x00", " ").strip()

    def wait_for_card(self, wait: float) -> None:
        """Poll find until a card is present; CardReadError(no_card) after ``wait`` s."""
        deadline = time.monotonic() + wait
        while True:
            if self.find():
                self.awaiting_removal = False
                return
            if time.monotonic() >= deadline:
                if self.awaiting_removal:
                    raise CardReadError(CARD_NOT_REMOVED[1], CARD_NOT_REMOVED[0])
                raise status_error(0x80, "find card")
            time.sleep(self.timeouts.poll_interval)

    def read_card(self, wait: float = 0.0, fingerprint: bool = False) -> IdCard:
        """find -> select -> read of the card on the reader, parsed (photo not decoded)."""
        self.wait_for_card(wait)
        self.select()
        text, photo, fp = self.read_blocks(fingerprint)
        card = card_from_blocks(text, photo, fp)
        self.awaiting_removal = True
        log.info("card read: type %r", card.card_type)
        return card


def _response(body: bytes, step: str) -> Response:
    """The response in a frame body with a valid checksum; CardReadError when it is too short
    to hold a status (a reader fault or line noise that happened to checksum)."""
    try:
        return Response.decode_body(body)
    except FrameError as exc:
        raise CardReadError(f"The reader's answer was malformed during {step} ({exc}); place the "
                            "card again, and have the reader checked if it keeps happening",
                            "bad_reply") from exc


def split_read_data(data: bytes, fingerprint: bool) -> tuple[bytes, bytes, bytes]:
    """Text, photo and fingerprint blocks of a read reply, checked against its length words."""
    words = 3 if fingerprint else 2
    if len(data) < 2 * words:
        raise CardReadError("The card returned data of the wrong length; place it again", "length_error")
    lengths = [int.from_bytes(data[2 * i:2 * i + 2], "big") for i in range(words)]
    if 2 * words + sum(lengths) != len(data):
        raise CardReadError("The card returned data of the wrong length; place it again", "length_error")
    blocks, offset = [], 2 * words
    for size in lengths:
        blocks.append(data[offset:offset + size])
        offset += size
    return blocks[0], blocks[1], blocks[2] if fingerprint else b""


def format_sam_id(raw: bytes) -> str:
    """16 raw bytes -> 'AA-BB-CCCCCCCC-DDDDDDDDDD-EEEEEEEEEE' (vendor convention)."""
    parts = (int.from_bytes(raw[0:2], "little"), int.from_bytes(raw[2:4], "little"),
             int.from_bytes(raw[4:8], "little"), int.from_bytes(raw[8:12], "little"),
             int.from_bytes(raw[12:16], "little"))
    return f"{parts[0]:02d}-{parts[1]:02d}-{parts[2]:08d}-{parts[3]:010d}-{parts[4]:010d}"
