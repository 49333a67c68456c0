"""The pure header reader: the size every supported format states, and only ImageError on junk."""

from __future__ import annotations

import contextlib

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
