"""The pure header reader: the size every supported format states, and only ImageError on junk."""

from __future__ import annotations

import contextlib
import struct

import cv2
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.core.errors import ImageError
from edge.core.image_header import check_header, jpeg_end, read_header, suffix_matches
from tests.image_bombs import BOMBS, SIDE

FORMATS = {"jpeg": ".jpg", "png": ".png", "gif": ".gif", "bmp": ".bmp", "webp": ".webp", "tiff": ".tiff"}


def encoded(ext: str, width: int = 37, height: int = 23, params: tuple[int, ...] = ()) -> bytes:
    image = (np.arange(width * height * 3) % 251).astype(np.uint8).reshape(height, width, 3)
    ok, data = cv2.imencode(ext, image, list(params))
    assert ok
    return data.tobytes()


@pytest.mark.parametrize(("kind", "ext"), FORMATS.items())
def test_reads_the_size_that_the_decoder_will_produce(kind: str, ext: str) -> None:
    data = encoded(ext)
    header = read_header(data)
    assert (header.format, header.width, header.height) == (kind, 37, 23)
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape[:2] == (header.height, header.width)


@pytest.mark.parametrize("params", [(cv2.IMWRITE_WEBP_QUALITY, 80), (cv2.IMWRITE_WEBP_QUALITY, 101)])
def test_webp_lossy_and_lossless_headers(params: tuple[int, int]) -> None:
    header = read_header(encoded(".webp", params=params))
    assert (header.width, header.height) == (37, 23)


def test_progressive_jpeg_and_real_photos(data_dir) -> None:
    progressive = encoded(".jpg", params=(cv2.IMWRITE_JPEG_PROGRESSIVE, 1))
    assert (read_header(progressive).width, jpeg_end(progressive)) == (37, len(progressive))
    for path in sorted((data_dir / "faces_asia").glob("*/*.jpg"))[:20]:
        data = path.read_bytes()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        header = read_header(data)
        assert (header.height, header.width) == image.shape[:2]
        assert jpeg_end(data) == len(data)



def decoded_size(data: bytes) -> tuple[int, int]:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    assert image is not None
    return image.shape[1], image.shape[0]


def test_bmp_top_down_and_os2_headers() -> None:
    # OpenCV writes a bottom-up BITMAPINFOHEADER; a negative height is a top-down bitmap.
    top_down = bytearray(encoded(".bmp"))
    assert struct.unpack_from("<Iii", top_down, 14) == (40, 37, 23)
    struct.pack_into("<i", top_down, 22, -23)
    assert (read_header(bytes(top_down)).width, read_header(bytes(top_down)).height) == (37, 23)
    assert decoded_size(bytes(top_down)) == (37, 23)
    # OS/2 BITMAPCOREHEADER (12 bytes): unsigned 16-bit width and height at 18 and 20.
    row = (37 * 3 + 3) // 4 * 4
    pixels = bytes(row * 23)
    os2 = b"BM" + struct.pack("<IHHI", 26 + len(pixels), 0, 0, 26) + struct.pack("<IHHHH", 12, 37, 23, 1, 24)
    header = read_header(os2 + pixels)
    assert (header.format, header.width, header.height) == ("bmp", 37, 23)
    assert decoded_size(os2 + pixels) == (37, 23)


def tiff(width: int, height: int, order: str, side_type: int) -> bytes:
    """An uncompressed 8-bit grey TIFF, one strip, in either byte order; ``side_type`` 3 writes
    the width and height as SHORT, 4 as LONG."""
    pixels = bytes(width * height)
    side = "H2x" if side_type == 3 else "I"
    entries = [(256, side_type, side, width), (257, side_type, side, height), (258, 3, "H2x", 8),
               (259, 3, "H2x", 1), (262, 3, "H2x", 1), (273, 4, "I", 0), (277, 3, "H2x", 1),
               (278, 4, "I", height), (279, 4, "I", len(pixels))]
    start = 8 + 2 + 12 * len(entries) + 4  # the pixels follow the one IFD
    ifd = struct.pack(order + "H", len(entries)) + b"".join(
        struct.pack(order + "HHI" + fmt, tag, kind, 1, start if tag == 273 else value)
        for tag, kind, fmt, value in entries) + struct.pack(order + "I", 0)
    magic = b"II*\x00" if order == "<" else b"MM\x00*"
    return magic + struct.pack(order + "I", 8) + ifd + pixels


@pytest.mark.parametrize(("width", "height", "order", "side_type"), [
    (37, 23, "<", 3), (37, 23, ">", 3), (37, 23, "<", 4), (37, 23, ">", 4),
    (70_000, 2, "<", 4), (2, 70_000, ">", 4),  # beyond 16 bits: only a LONG holds them
])
def test_tiff_sides_in_either_byte_order_as_short_or_long(width: int, height: int, order: str,
                                                          side_type: int) -> None:
    data = tiff(width, height, order, side_type)
    header = read_header(data)
    assert (header.format, header.width, header.height) == ("tiff", width, height)
    assert decoded_size(data) == (width, height)

@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_a_small_file_claiming_a_huge_canvas_is_too_large(kind: str) -> None:
    bomb = BOMBS[kind]()
    assert len(bomb) < 300_000
    header = read_header(bomb)
    assert header.format == kind and header.pixels >= SIDE * SIDE
    with pytest.raises(ImageError, match="pixel limit") as caught:
        check_header(bomb, "bomb", max_pixels=50_000_000)
    assert caught.value.code == "too_large"


def test_jpeg_end_finds_the_end_marker_before_padding_and_none_when_cut() -> None:
    data = encoded(".jpg")
    assert jpeg_end(data + b"\x00" * 5000) == len(data)
    assert jpeg_end(data + b"\xff\xd9" * 3) == len(data)
    assert jpeg_end(data[:-2]) is None
    assert jpeg_end(data[: len(data) // 2]) is None


def test_suffix_matches() -> None:
    assert suffix_matches("C1/a.JPG", "jpeg") and suffix_matches("C1/a", "gif")
    assert not suffix_matches("C1/a.jpg", "gif")
    assert suffix_matches("dir.v2/photo", "png")


@given(data=st.binary(max_size=600), prefix=st.sampled_from(
    [b"", b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF89a", b"BM", b"RIFF\x00\x00\x00\x00WEBPVP8X",
     b"RIFF\x00\x00\x00\x00WEBPVP8 ", b"RIFF\x00\x00\x00\x00WEBPVP8L", b"II*\x00", b"MM\x00*"]))
def test_any_bytes_give_a_header_or_an_image_error(data: bytes, prefix: bytes) -> None:
    jpeg_end(prefix + data)  # never raises
    try:
        header = read_header(prefix + data)
    except ImageError as err:
        refusal = err
    else:
        assert header.width > 0 and header.height > 0
        return
    assert refusal.code in ("not_an_image", "corrupt") and str(refusal)


@given(data=st.data())
def test_mutated_headers_give_a_header_or_an_image_error(data: st.DataObject) -> None:
    buf = bytearray(encoded(data.draw(st.sampled_from(sorted(FORMATS.values())))))
    for _ in range(data.draw(st.integers(1, 8))):
        buf[data.draw(st.integers(0, min(len(buf) - 1, 64)))] = data.draw(st.integers(0, 255))
    buf = buf[: data.draw(st.integers(0, len(buf)))]
    with contextlib.suppress(ImageError):
        read_header(bytes(buf))
    jpeg_end(bytes(buf))
