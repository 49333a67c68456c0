"""Bad image files are rejected with a clear message, never a traceback."""

from __future__ import annotations

import os
import tracemalloc

import cv2
import numpy as np
import pytest

from edge.core.errors import ImageError
from edge.vision.imageio import MAX_IMAGE_BYTES, decode_checked, decode_image, load_image
from tests.image_bombs import BOMBS


@pytest.fixture
def photo_bytes(data_dir) -> bytes:
    return (data_dir / "faces" / "Adrien_Brody" / "Adrien_Brody_0001.jpg").read_bytes()


def test_reads_a_real_photo(data_dir):
    image = load_image(data_dir / "faces" / "Adrien_Brody" / "Adrien_Brody_0001.jpg")
    assert image.shape == (250, 250, 3)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b"name,tier\nA,gold\n", "not an image"),
        (b"%PDF-1.4 not a photo", "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, "corrupt"),
    ],
)
def test_rejects_non_images(tmp_path, content, message):
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageError, match=message):
        load_image(path)


def test_rejects_truncated_jpeg(tmp_path, photo_bytes):
    path = tmp_path / "cut.jpg"
    path.write_bytes(photo_bytes[: len(photo_bytes) // 2])
    with pytest.raises(ImageError, match="truncated"):
        load_image(path)


def test_rejects_missing_file_and_folder(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        load_image(tmp_path / "absent.jpg")
    with pytest.raises(ImageError, match="is a folder"):
        load_image(tmp_path)


def test_garbage_after_a_valid_header_is_corrupt(photo_bytes):
    with pytest.raises(ImageError, match="corrupt"):
        decode_image(photo_bytes[:20] + bytes(range(256)) * 8, "x.jpg")


# --- limits before decoding, and oddities a decoder reads completely ---------------------------


@pytest.fixture
def decoder_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records every call of cv2.imdecode (and still decodes)."""
    calls: list[int] = []
    real = cv2.imdecode

    def spy(buf, flags):  # type: ignore[no-untyped-def]
        calls.append(len(buf))
        return real(buf, flags)

    monkeypatch.setattr(cv2, "imdecode", spy)
    return calls


@pytest.mark.parametrize("kind", sorted(BOMBS))
def test_image_bombs_are_refused_from_the_header_without_decoding(kind: str, tmp_path,
                                                                  decoder_calls: list[int]) -> None:
    bomb = BOMBS[kind]()
    with pytest.raises(ImageError, match=r"too large|pixel limit") as caught:
        decode_image(bomb, f"bomb.{kind}")
    assert caught.value.code == "too_large"
    path = tmp_path / f"bomb.{kind}"
    path.write_bytes(bomb)
    with pytest.raises(ImageError) as from_file:
        load_image(path)
    assert from_file.value.code == "too_large"
    assert decoder_calls == []


def test_a_lower_pixel_limit_applies_before_decoding(photo_bytes: bytes, decoder_calls: list[int]) -> None:
    with pytest.raises(ImageError) as caught:
        decode_image(photo_bytes, "p.jpg", max_pixels=200 * 200)
    assert caught.value.code == "too_large" and decoder_calls == []
    assert decode_image(photo_bytes, "p.jpg", max_pixels=250 * 250).shape == (250, 250, 3)


def test_jpeg_with_padding_after_its_end_marker_is_accepted_with_a_note(photo_bytes: bytes) -> None:
    padded = photo_bytes + b"\x00" * 4096  # what some KYC exports do to round file sizes
    decoded = decode_checked(padded, "C1/padded.jpg")
    assert decoded.image.shape == (250, 250, 3)
    assert decoded.notes == ("4096 bytes after the JPEG end marker (ignored)",)
    assert np.array_equal(decoded.image, decode_image(photo_bytes))


def test_gif_saved_with_a_jpg_name_is_accepted_with_a_note(photo_bytes: bytes) -> None:
    ok, gif = cv2.imencode(".gif", decode_image(photo_bytes))
    assert ok
    decoded = decode_checked(gif.tobytes(), "C1/photo.jpg")
    assert decoded.header.format == "gif" and decoded.image.shape == (250, 250, 3)
    assert decoded.notes == ("the file is a GIF image; its name says otherwise",)


def test_a_jpeg_cut_before_its_end_marker_is_still_corrupt(photo_bytes: bytes) -> None:
    with pytest.raises(ImageError, match="end marker") as caught:
        decode_checked(photo_bytes[:-2] + b"\x00" * 4096, "cut.jpg")
    assert caught.value.code == "corrupt"


def test_devices_fifos_and_oversized_files_are_refused_without_reading(tmp_path) -> None:
    with pytest.raises(ImageError, match="not a regular file") as device:
        load_image("/dev/zero")
    assert device.value.code == "not_a_regular_file"
    fifo = tmp_path / "photo.jpg"
    os.mkfifo(fifo)
    with pytest.raises(ImageError, match="not a regular file"):
        load_image(fifo)  # would block forever on open without a writer
    big = tmp_path / "big.jpg"
    with big.open("wb") as out:
        out.truncate(MAX_IMAGE_BYTES + 1)  # sparse: no disk used
    tracemalloc.start()
    try:
        with pytest.raises(ImageError, match="byte limit") as large:
            load_image(big)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert large.value.code == "too_large"
    assert peak < MAX_IMAGE_BYTES // 10  # refused from its size, not read whole
