"""Reading images with clear errors: missing, empty, not an image, corrupt, too large."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge.core.errors import ImageError

MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 50_000_000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
# Magic numbers of the formats OpenCV decodes for us.
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")


def decode_image(data: bytes, name: str = "<bytes>") -> np.ndarray:
    """Decode encoded image bytes to an HxWx3 uint8 BGR array."""
    if not data:
        raise ImageError(f"{name}: empty file", "empty")
    if len(data) > MAX_IMAGE_BYTES:
        limit = f"the {MAX_IMAGE_BYTES} byte limit"
        raise ImageError(f"{name}: {len(data)} bytes is larger than {limit}", "too_large")
    if not data.startswith(_SIGNATURES):
        raise ImageError(f"{name}: not an image (JPEG, PNG, BMP, WebP or TIFF expected)", "not_an_image")
    buf = np.frombuffer(data, dtype=np.uint8)
    try:
        image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    except cv2.error as err:  # OpenCV refuses headers that claim a huge canvas
        raise ImageError(f"{name}: image header refused by the decoder (too large or corrupt)",
                         "too_large") from err
    if image is None or image.size == 0:
        raise ImageError(f"{name}: corrupt or truncated image data")
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise ImageError(f"{name}: {image.shape[1]}x{image.shape[0]} pixels is too large", "too_large")
    if _looks_truncated(data):
        raise ImageError(f"{name}: corrupt or truncated image data (JPEG end marker missing)")
    return image


def _looks_truncated(data: bytes) -> bool:
    # libjpeg fills a truncated JPEG with grey and only warns; the end-of-image
    # marker tells us the file was cut short.
    return data.startswith(b"\xff\xd8") and b"\xff\xd9" not in data[-1024:]


def load_image(path: Path | str) -> np.ndarray:
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError as err:
        raise ImageError(f"{path}: no such file", "missing") from err
    except IsADirectoryError as err:
        raise ImageError(f"{path}: is a folder, not an image", "not_an_image") from err
    except OSError as err:
        raise ImageError(f"{path}: cannot read: {err.strerror}", "unreadable") from err
    return decode_image(data, str(path))


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageError("cannot encode image as JPEG")
    return bytes(buf)
