"""An image's format and size from its header, before anything is decoded.

A decoder allocates what the header claims: a 2.7 MB PNG that says
30000x30000 costs 2.7 GB of pixels (and tens of seconds) before anyone can
look at its size.  Everything that decodes outside images (enrolment photos,
the authorization request's JPEGs, arrival thumbnails on the PAD, card
photos) reads the header here first and refuses a canvas over its limit
without calling the decoder.

Pure: bytes in, an :class:`ImageHeader` or an :class:`~edge.core.errors.ImageError`
out; stdlib only, so the PAD app uses the same function.  Formats: JPEG, PNG,
GIF, BMP, WebP and TIFF, the ones the decoder is ever given; anything else is
``not_an_image``.  Every read is bounds-checked and every loop advances, so
hostile headers end in ``corrupt``, never in another exception.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from edge.core.errors import ImageError

# The largest side any supported format can state (JPEG: 16 bits; WebP VP8X: 24 bits).
MAX_SIDE = 65_535

_PNG = b"\x89PNG\r\n\x1a\n"
_MAGIC = (("jpeg", b"\xff\xd8\xff"), ("png", _PNG), ("gif", b"GIF87a"), ("gif", b"GIF89a"),
          ("bmp", b"BM"), ("tiff", b"II*\x00"), ("tiff", b"MM\x00*"))
# JPEG start-of-frame markers (SOF0-3, 5-7, 9-11, 13-15): they carry the frame size.
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})  # TEM and RSTn have no length field
_SOI, _EOI, _SOS = 0xD8, 0xD9, 0xDA
# In entropy-coded data 0xFF is followed by 0x00 (stuffing), RSTn or fill 0xFF;
# anything else is the next marker.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_MAX_TIFF_ENTRIES = 4096
_MAX_GIF_BLOCKS = 100_000

FORMAT_SUFFIXES = {
    "jpeg": (".jpg", ".jpeg", ".jpe", ".jfif"), "png": (".png",), "gif": (".gif",),
    "bmp": (".bmp", ".dib"), "webp": (".webp",), "tiff": (".tif", ".tiff"),
}


@dataclass(frozen=True)
class ImageHeader:
    format: str  # jpeg | png | gif | bmp | webp | tiff
    width: int
    height: int

    @property
    def pixels(self) -> int:
        return self.width * self.height


def sniff_format(data: bytes) -> str | None:
    """The format named by the magic number, or None."""
    if data.startswith(b"RIFF"):
        return "webp" if data[8:12] == b"WEBP" else None
    return next((kind for kind, magic in _MAGIC if data.startswith(magic)), None)


def read_header(data: bytes, name: str = "<bytes>") -> ImageHeader:
    """Format, width and height from the header; ImageError ``not_an_image`` or ``corrupt``."""
    kind = sniff_format(data)
    if kind is None:
        raise ImageError(f"{name}: not an image (JPEG, PNG, GIF, BMP, WebP or TIFF expected)",
                         "not_an_image")
    size = _READERS[kind](data)
    if size is None:
        raise ImageError(f"{name}: corrupt or truncated {kind.upper()} header")
    width, height = size
    if width <= 0 or height <= 0:
        raise ImageError(f"{name}: {kind.upper()} header states an empty {width}x{height} image")
    return ImageHeader(kind, width, height)


def check_header(data: bytes, name: str, max_pixels: int, max_bytes: int | None = None) -> ImageHeader:
    """:func:`read_header`, then ``too_large`` when the bytes or the canvas exceed the limits."""
    if not data:
        raise ImageError(f"{name}: empty file", "empty")
    if max_bytes is not None and len(data) > max_bytes:
        raise ImageError(f"{name}: {len(data)} bytes is larger than the {max_bytes} byte limit",
                         "too_large")
    header = read_header(data, name)
    if header.pixels > max_pixels or max(header.width, header.height) > MAX_SIDE:
        raise ImageError(f"{name}: {header.width}x{header.height} pixels is larger than the "
                         f"{max_pixels} pixel limit", "too_large")
    return header


def suffix_matches(name: str, kind: str) -> bool:
    """Whether ``name`` ends with a suffix of ``kind`` (a name without a suffix matches anything)."""
    dot = name.rfind(".")
    if dot <= max(name.rfind("/"), name.rfind("\\")):
        return True
    return name[dot:].lower() in FORMAT_SUFFIXES.get(kind, ())


def jpeg_end(data: bytes) -> int | None:
    """The offset just after the JPEG's end-of-image marker, or None when the data ends first.

    Walks the marker segments and, after each start-of-scan, the entropy-coded
    data to the next marker, as a decoder does; bytes after the returned offset
    are trailing padding, not part of the image.
    """
    pos = 2
    while (found := _marker_at(data, pos)) is not None:
        marker, pos = found
        if marker == _EOI:
            return pos
        if marker in _STANDALONE:
            continue
        length = None if marker == _SOI else _segment_length(data, pos)
        if length is None:
            return None
        pos += length
        if marker == _SOS:
            after_scan = _NEXT_MARKER.search(data, pos)
            if after_scan is None:
                return None
            pos = after_scan.start()
    return None


def _marker_at(data: bytes, pos: int) -> tuple[int, int] | None:
    """(marker, offset after it) when a marker (after optional fill bytes) starts at ``pos``."""
    if pos >= len(data) or data[pos] != 0xFF:
        return None
    while pos < len(data) and data[pos] == 0xFF:
        pos += 1
    return (data[pos], pos + 1) if pos < len(data) else None


def _segment_length(data: bytes, pos: int) -> int | None:
    length = int.from_bytes(data[pos:pos + 2], "big") if pos + 2 <= len(data) else 0
    return length if length >= 2 else None


# --- per-format header readers: (width, height) or None when the header is cut or malformed --


Order = Literal["little", "big"]


def _u16(data: bytes, at: int, order: Order) -> int | None:
    return int.from_bytes(data[at:at + 2], order) if at + 2 <= len(data) else None


def _u32(data: bytes, at: int, order: Order) -> int | None:
    return int.from_bytes(data[at:at + 4], order) if at + 4 <= len(data) else None


def _jpeg(data: bytes) -> tuple[int, int] | None:
    pos = 2
    while (found := _marker_at(data, pos)) is not None:
        marker, pos = found
        if marker in _STANDALONE:
            continue
        # Image data (or its end) before any frame header is not a JPEG we can size.
        length = None if marker in (_SOI, _EOI, _SOS) else _segment_length(data, pos)
        if length is None:
            return None
        if marker in _SOF:
            if length < 8 or pos + 7 > len(data):
                return None
            return int.from_bytes(data[pos + 5:pos + 7], "big"), int.from_bytes(data[pos + 3:pos + 5], "big")
        pos += length
    return None


def _png(data: bytes) -> tuple[int, int] | None:
    if len(data) < 24 or data[12:16] != b"IHDR":
        return None
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def _gif(data: bytes) -> tuple[int, int] | None:
    """The larger of the logical screen and the first frame's extent."""
    if len(data) < 13:
        return None
    width, height = int.from_bytes(data[6:8], "little"), int.from_bytes(data[8:10], "little")
    pos = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    for _ in range(_MAX_GIF_BLOCKS):
        if pos >= len(data):
            return None
        block = data[pos]
        if block == 0x2C:  # image descriptor: left, top, width, height
            if pos + 10 > len(data):
                return None
            left, top, w, h = (int.from_bytes(data[pos + 1 + 2 * i:pos + 3 + 2 * i], "little")
                               for i in range(4))
            return max(width, left + w), max(height, top + h)
        if block != 0x21 or pos + 2 > len(data):  # only extensions may come before the frame
            return None
        pos += 2
        while pos < len(data) and data[pos]:  # sub-blocks up to the zero terminator
            pos += data[pos] + 1
        pos += 1
    return None


def _bmp(data: bytes) -> tuple[int, int] | None:
    dib = _u32(data, 14, "little")
    if dib == 12:  # OS/2 BITMAPCOREHEADER: unsigned 16-bit sides
        width, height = _u16(data, 18, "little"), _u16(data, 20, "little")
        return None if width is None or height is None else (width, height)
    if dib is None or dib < 40 or len(data) < 26:
        return None
    width = int.from_bytes(data[18:22], "little", signed=True)
    height = int.from_bytes(data[22:26], "little", signed=True)
    return width, abs(height)  # a negative height is a top-down bitmap


def _webp(data: bytes) -> tuple[int, int] | None:
    chunk = data[12:16]
    if chunk == b"VP8 " and len(data) >= 30 and data[23:26] == b"\x9d\x01\x2a":
        return (int.from_bytes(data[26:28], "little") & 0x3FFF,
                int.from_bytes(data[28:30], "little") & 0x3FFF)
    if chunk == b"VP8L" and len(data) >= 25 and data[20] == 0x2F:
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X" and len(data) >= 30:
        return int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
    return None


def _tiff(data: bytes) -> tuple[int, int] | None:
    order: Order = "little" if data.startswith(b"II") else "big"
    ifd = _u32(data, 4, order)
    count = None if ifd is None else _u16(data, ifd, order)
    if ifd is None or count is None or count > _MAX_TIFF_ENTRIES:
        return None
    sides: dict[int, int] = {}
    for entry in range(ifd + 2, ifd + 2 + 12 * count, 12):
        tag, kind = _u16(data, entry, order), _u16(data, entry + 2, order)
        if tag is None or kind is None or entry + 12 > len(data):
            return None
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            value = _u16(data, entry + 8, order) if kind == 3 else _u32(data, entry + 8, order)
            if kind not in (3, 4) or value is None:
                return None
            sides[tag] = value
    if 256 not in sides or 257 not in sides:
        return None
    return sides[256], sides[257]


_READERS = {"jpeg": _jpeg, "png": _png, "gif": _gif, "bmp": _bmp, "webp": _webp, "tiff": _tiff}
