"""A fake ID-card reader that speaks the real protocol, for tests, demos and the UI.

It answers on a pseudo-terminal (serial variant) or a packet socket (HID
variant) with the same frames a reader sends, following the reader's state
machine ``IDLE -> PRESENT -> SELECTED -> READ_DONE``: after a read the card must
leave the field (``remove_after`` seconds later, as if the teller lifted it)
before the next find succeeds; the next card in the file is then placed.

Cards come from a TOML or JSON file (``[[cards]]`` tables of card fields and a
``photo`` image path, relative to the file); faults come from its ``[faults]``
table or :meth:`ReaderSimulator.set_fault`:

``no_card``, ``read_fail`` (0x41), ``auth_fail`` (0x32), ``sam_fail`` (0x60 to
everything), ``bad_checksum`` and ``truncated`` (on the read reply), ``slow``
(seconds of delay before each reply), ``card_not_removed``, ``garbage``
(line noise before every reply) and ``short_reply`` (every reply a frame with
a valid checksum but a one-byte body, too short for a status word).
"""

from __future__ import annotations

import json
import logging
import os
import select
import socket
import threading
import time
import tomllib
import tty
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge.core import idcard_rules as rules
from edge.core.errors import BranchEdgeError
from edge.core.files import UnsafeFileError, read_regular_file
from ui.devices.idcard.card import IdCard, card_from_text, encode_text
from ui.devices.idcard.frames import PREAMBLE, Command, FrameReceiver, Response
from ui.devices.idcard.photo import SimulatorPhotoDecoder

log = logging.getLogger(__name__)

MAX_CARD_FILE_BYTES = 1024 * 1024
MAX_PHOTO_BYTES = 50 * 1024 * 1024
FAULTS = ("no_card", "read_fail", "auth_fail", "sam_fail", "bad_checksum", "truncated", "slow",
          "card_not_removed", "garbage", "short_reply")
# LEN 00 02, one body byte, CHK = 00 ^ 02 ^ 90: well formed, but no room for SW1 SW2 SW3.
SHORT_REPLY = PREAMBLE + bytes.fromhex("00029092")
# Line noise sent before every reply under the "garbage" fault: a broken
# preamble, a preamble with an impossible length and one with a bad checksum.
NOISE = (bytes.fromhex("00AAAA13AAAAAA96FF") + PREAMBLE + b"\xff\xff"
         + PREAMBLE + bytes.fromhex("000400009000"))
FP_LEN = 1024


class SimulatorError(BranchEdgeError):
    """The simulator's card file is unusable."""


@dataclass
class SimCard:
    card: IdCard
    image: bytes = b""
    fingerprint: bool = False


@dataclass
class CardDeck:
    cards: list[SimCard]
    faults: dict[str, float] = field(default_factory=dict)
    remove_after: float = 0.3
    cycle: bool = True
    sam_id: bytes = bytes(range(16))

    def decoder(self) -> SimulatorPhotoDecoder:
        return SimulatorPhotoDecoder(c.image for c in self.cards if c.image)


def _sim_card(entry: dict[str, Any], base: Path, decoder: SimulatorPhotoDecoder) -> SimCard:
    entry = dict(entry)
    named = str(entry.pop("type", "resident"))
    kind = rules.KIND_BY_NAME.get(named) or rules.KIND_BY_FLAG.get(named)
    if kind is None:
        raise SimulatorError(f"card type must be one of {', '.join(rules.KIND_BY_NAME)} "
                             f"(or its flag at byte 248), got {named[:20]!r}")
    image = b""
    if photo := entry.pop("photo", None):
        path = base / str(photo)
        try:
            image = read_regular_file(path, MAX_PHOTO_BYTES, "card photo")
        except UnsafeFileError as exc:
            raise SimulatorError(str(exc)) from exc
    fingerprint = bool(entry.pop("fingerprint", False))
    wlt = decoder.add(image) if image else bytes(1024)
    try:
        text = {k: str(v) for k, v in entry.items()}
        card = card_from_text({**text, "card_type": kind.flag}, photo_wlt=wlt)
        encode_text(card)
    except (TypeError, ValueError) as exc:
        raise SimulatorError(f"bad card entry: {exc}") from exc
    return SimCard(card, image, fingerprint)


def load_cards(path: Path) -> CardDeck:
    """Read a card file (TOML, or JSON when it ends in .json)."""
    try:
        text = read_regular_file(path, MAX_CARD_FILE_BYTES, "card file").decode("utf-8")
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except UnsafeFileError as exc:
        raise SimulatorError(str(exc)) from exc
    except (ValueError, RecursionError) as exc:
        raise SimulatorError(f"cannot read the card file {path}: {exc}") from exc
    decoder = SimulatorPhotoDecoder()
    cards = [_sim_card(entry, path.parent, decoder) for entry in data.get("cards", [])]
    faults = {str(k): float(v) for k, v in data.get("faults", {}).items()}
    unknown = set(faults) - set(FAULTS)
    if unknown:
        raise SimulatorError(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
    reader = data.get("reader", {})
    return CardDeck(cards, faults, float(reader.get("remove_after", 0.3)), bool(reader.get("cycle", True)))


def read_reply(sim_card: SimCard, fingerprint_command: bool) -> bytes:
    """The data of a successful 0x30 read: length words, text, photo (and fingerprint).

    The 0x30 0x10 reply has a third length word, 0 for a card without fingerprints.
    """
    text, photo = encode_text(sim_card.card), sim_card.card.photo_wlt
    blocks = [text, photo]
    if fingerprint_command:
        blocks.append(bytes((i * 7) & 0xFF for i in range(FP_LEN)) if sim_card.fingerprint else b"")
    return b"".join(len(b).to_bytes(2, "big") for b in blocks) + b"".join(blocks)


class ReaderSimulator:
    """The reader's state machine; ``handle`` turns one command into reply bytes."""

    def __init__(self, deck: CardDeck) -> None:
        self.deck = deck
        self.faults = dict(deck.faults)
        self.state = "IDLE"
        self.index = 0
        self.reads = 0
        self._removed_at: float | None = None
        self._lock = threading.Lock()
        if deck.cards:
            self.state = "PRESENT"

    def set_fault(self, name: str, value: float = 1.0) -> None:
        if name not in FAULTS:
            raise SimulatorError(f"unknown fault {name!r}; known: {', '.join(FAULTS)}")
        with self._lock:
            if value:
                self.faults[name] = value
            else:
                self.faults.pop(name, None)

    def place(self, index: int) -> None:
        with self._lock:
            self.index, self.state, self._removed_at = index, "PRESENT", None

    def remove(self) -> None:
        with self._lock:
            self.state, self._removed_at = "IDLE", None

    def _advance(self) -> None:
        """The teller lifts the card some time after a read; the next card goes on."""
        if self._removed_at is None or time.monotonic() < self._removed_at:
            return
        self._removed_at = None
        nxt = self.index + 1
        if nxt < len(self.deck.cards) or self.deck.cycle:
            self.index, self.state = nxt % len(self.deck.cards), "PRESENT"
        else:
            self.state = "IDLE"

    def handle(self, command: Command) -> bytes:
        delay = self.faults.get("slow", 0.0)
        if delay:
            time.sleep(delay)
        with self._lock:
            self._advance()
            reply = self._respond(command)
            return NOISE + reply if "garbage" in self.faults else reply

    def _respond(self, command: Command) -> bytes:
        if "short_reply" in self.faults:
            return SHORT_REPLY
        if "sam_fail" in self.faults:
            return Response(0x60).encode()
        handlers = {
            (0x10, 0xFF): lambda: Response(0x90).encode(),
            (0x11, 0xFF): lambda: Response(0x90).encode(),
            (0x12, 0xFF): lambda: Response(0x90, self.deck.sam_id).encode(),
            (0x20, 0x01): self._find,
            (0x20, 0x02): self._select,
            (0x30, 0x01): lambda: self._read(fingerprint=False),
            (0x30, 0x10): lambda: self._read(fingerprint=True),
            (0x30, 0x03): self._appended_address,
        }
        handler = handlers.get((command.cmd, command.para))
        return handler() if handler else Response(0x21).encode()

    def _select(self) -> bytes:
        if self.state not in ("PRESENT", "SELECTED"):
            return Response(0x81).encode()
        self.state = "SELECTED"
        return Response(0x90, bytes(8)).encode()

    def _appended_address(self) -> bytes:
        address = self.deck.cards[self.index].card.appended_address if self.deck.cards else ""
        return Response(0x90, address.encode("utf-16-le")).encode() if address else Response(0x91).encode()

    def _find(self) -> bytes:
        if "no_card" in self.faults or self.state in ("IDLE", "READ_DONE"):
            return Response(0x80).encode()
        self.state = "PRESENT"
        return Response(0x9F, bytes(4)).encode()

    def _read(self, fingerprint: bool) -> bytes:
        if self.state != "SELECTED":
            return Response(0x41).encode()
        if "read_fail" in self.faults or "auth_fail" in self.faults:
            self.state = "PRESENT"
            return Response(0x41 if "read_fail" in self.faults else 0x32).encode()
        frame = bytearray(Response(0x90, read_reply(self.deck.cards[self.index], fingerprint)).encode())
        self.state, self.reads = "READ_DONE", self.reads + 1
        if "card_not_removed" not in self.faults:
            self._removed_at = time.monotonic() + self.deck.remove_after
        if "bad_checksum" in self.faults:
            frame[-1] ^= 0x5A
        if "truncated" in self.faults:
            del frame[len(frame) // 2:]
        return bytes(frame)


class _Server:
    """Runs a simulator on one file descriptor in a daemon thread."""

    def __init__(self, sim: ReaderSimulator, fd: int, hid: bool) -> None:
        self.sim, self._fd, self._hid = sim, fd, hid
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="idcard-sim", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        receiver = FrameReceiver()
        while not self._stop.is_set():
            ready, _, _ = select.select([self._fd], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self._fd, 4096)
            except OSError:  # the host closed its end (pty EIO); wait for the next open
                time.sleep(0.05)
                continue
            if self._hid:
                data = PREAMBLE + data
            for body in receiver.feed(data):
                self._reply(self.sim.handle(Command.decode_body(body)))

    def _reply(self, frame: bytes) -> None:
        out = frame[len(PREAMBLE) + 2:] if self._hid else frame
        try:
            os.write(self._fd, out)
        except OSError as exc:
            log.debug("simulator write failed: %s", exc)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


class PtySimulator:
    """The simulator on a pseudo-terminal; ``path`` is the port to open (serial variant)."""

    def __init__(self, deck: CardDeck) -> None:
        self.sim = ReaderSimulator(deck)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)  # no echo, no line discipline before the host opens it
        self.path = os.ttyname(self._slave)
        self._server = _Server(self.sim, self._master, hid=False)

    def close(self) -> None:
        self._server.stop()
        os.close(self._master)
        os.close(self._slave)

    def __enter__(self) -> PtySimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class HidSimulator:
    """The HID variant on a SOCK_SEQPACKET pair: ``host_fd`` behaves like a hidraw device."""

    def __init__(self, deck: CardDeck) -> None:
        self.sim = ReaderSimulator(deck)
        self._device, self._host = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.host_fd = self._host.detach()
        self._server = _Server(self.sim, self._device.fileno(), hid=True)

    def close(self) -> None:
        self._server.stop()
        self._device.close()

    def __enter__(self) -> HidSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
