"""Bad image files are rejected with a clear message, never a traceback."""

from __future__ import annotations

import pytest

from edge.core.errors import ImageError
from edge.vision.imageio import decode_image, load_image


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
