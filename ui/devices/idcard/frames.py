"""GA/T 467 business-terminal frame codec (the ``AA AA AA 96 69`` protocol).

::

    command:  AA AA AA 96 69 | LEN1 LEN2 | CMD PARA | DATA... | CHK
    response: AA AA AA 96 69 | LEN1 LEN2 | SW1 SW2 SW3 | DATA... | CHK

LEN is big-endian and counts every byte after itself, CHK included.  CHK is the
XOR of every byte from LEN1 to the last DATA byte.  The same codec serves
every transport; the HID transport adds back what its wire form leaves out.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import reduce

PREAMBLE = bytes.fromhex("AAAAAA9669")
# The largest frame a reader sends is text + photo + fingerprint (LEN 0x090A);
# a length far above it is garbage, not a frame to wait for.
MAX_LEN = 0x1000


class FrameError(ValueError):
    """Bytes that are not one well-formed frame."""


def xor(data: bytes) -> int:
    return reduce(lambda acc, b: acc ^ b, data, 0)


def _frame(body: bytes) -> bytes:
    """Preamble + length + body + CHK for ``body`` = the bytes between LEN and CHK."""
    length = (len(body) + 1).to_bytes(2, "big")
    return PREAMBLE + length + body + bytes([xor(length + body)])


@dataclass(frozen=True)
class Command:
    cmd: int
    para: int
    data: bytes = b""

    def encode(self) -> bytes:
        return _frame(bytes([self.cmd, self.para]) + self.data)

    @classmethod
    def decode_body(cls, body: bytes) -> Command:
        if len(body) < 2:
            raise FrameError("a command needs CMD and PARA")
        return cls(body[0], body[1], bytes(body[2:]))


@dataclass(frozen=True)
class Response:
    sw3: int
    data: bytes = b""
    sw1: int = 0
    sw2: int = 0

    def encode(self) -> bytes:
        return _frame(bytes([self.sw1, self.sw2, self.sw3]) + self.data)

    @classmethod
    def decode_body(cls, body: bytes) -> Response:
        if len(body) < 3:
            raise FrameError("a response needs SW1 SW2 SW3")
        return cls(body[2], bytes(body[3:]), body[0], body[1])


def decode_frame(frame: bytes) -> bytes:
    """The body (between LEN and CHK) of exactly one frame; FrameError otherwise."""
    if not frame.startswith(PREAMBLE):
        raise FrameError("frame does not start with AA AA AA 96 69")
    if len(frame) < 8:
        raise FrameError("frame shorter than preamble + length + checksum")
    length = int.from_bytes(frame[5:7], "big")
    if len(frame) != 7 + length:
        raise FrameError(f"length field says {7 + length} bytes, frame has {len(frame)}")
    if xor(frame[5:-1]) != frame[-1]:
        raise FrameError("checksum mismatch")
    return bytes(frame[7:-1])


class FrameReceiver:
    """Streaming receiver: feed bytes as they arrive, take whole frame bodies out.

    Garbage before a preamble is skipped; a frame with a bad checksum or an
    impossible length is dropped and the search restarts one byte after its
    preamble, so a real frame hidden inside garbage is still found.
    ``rejected`` counts the dropped frames (a host that saw one asks again).
    """

    def __init__(self, max_len: int = MAX_LEN) -> None:
        self._buf = bytearray()
        self._max_len = max_len
        self.rejected = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        bodies: list[bytes] = []
        while (body := self._next()) is not None:
            bodies.append(body)
        return bodies

    def pending(self) -> int:
        """Bytes of a frame that has started (preamble seen) but is not complete."""
        return len(self._buf) if self._buf.startswith(PREAMBLE) else 0

    def _next(self) -> bytes | None:
        while True:
            start = self._buf.find(PREAMBLE)
            if start < 0:
                # Keep a tail that may be the start of a preamble split across reads.
                del self._buf[: max(0, len(self._buf) - len(PREAMBLE) + 1)]
                return None
            del self._buf[:start]
            if len(self._buf) < 7:
                return None
            length = int.from_bytes(self._buf[5:7], "big")
            if length < 2 or length > self._max_len:
                self._drop_one()
                continue
            if len(self._buf) < 7 + length:
                return None
            frame = bytes(self._buf[: 7 + length])
            if xor(frame[5:-1]) != frame[-1]:
                self._drop_one()
                continue
            del self._buf[: 7 + length]
            return frame[7:-1]

    def _drop_one(self) -> None:
        self.rejected += 1
        del self._buf[:1]
