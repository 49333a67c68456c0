"""Small files whose headers claim huge canvases ("image bombs"), one per format the decoder reads.

Each is a few hundred bytes; decoding one would allocate what its header says
(30000x30000x3 = 2.7 GB).  The tests assert that the header check refuses them
without the decoder ever being called.
"""

from __future__ import annotations

import struct
import zlib

import cv2
import numpy as np

SIDE = 30_000


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def png_bomb(side: int = SIDE) -> bytes:
    """A valid PNG header (CRC-correct IHDR) for side x side RGB, with a few rows of data."""
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\x00" * (1 + 3 * side) * 4)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", rows) + _chunk(b"IEND", b"")


def _encoded(ext: str) -> bytearray:
    ok, data = cv2.imencode(ext, np.zeros((8, 8, 3), np.uint8))
    assert ok
    return bytearray(data.tobytes())


def jpeg_bomb(side: int = 60_000) -> bytes:
    jpeg = _encoded(".jpg")
    sof = jpeg.index(b"\xff\xc0")
    jpeg[sof + 5: sof + 9] = side.to_bytes(2, "big") * 2
    return bytes(jpeg)


def gif_bomb(side: int = 65_535) -> bytes:
    gif = _encoded(".gif")
    gif[6:10] = side.to_bytes(2, "little") * 2
    return bytes(gif)


def bmp_bomb(side: int = SIDE) -> bytes:
    bmp = _encoded(".bmp")
    bmp[18:26] = side.to_bytes(4, "little") * 2
    return bytes(bmp[:200])


def webp_bomb(side: int = SIDE) -> bytes:
    vp8x = b"VP8X" + struct.pack("<I", 10) + b"\x00" * 4 + (side - 1).to_bytes(3, "little") * 2
    return b"RIFF" + struct.pack("<I", 4 + len(vp8x)) + b"WEBP" + vp8x


def tiff_bomb(side: int = SIDE) -> bytes:
    entries = b"".join(struct.pack("<HHII", tag, 4, 1, side) for tag in (256, 257))
    return b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 2) + entries + b"\x00" * 4


BOMBS = {"png": png_bomb, "jpeg": jpeg_bomb, "gif": gif_bomb, "bmp": bmp_bomb, "webp": webp_bomb,
         "tiff": tiff_bomb}
