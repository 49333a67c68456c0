"""Reading images with clear errors: missing, empty, not an image, corrupt, too large.

The size is checked from the header (:mod:`edge.core.image_header`) before the
decoder runs, so a small file claiming a huge canvas costs microseconds, not
gigabytes.  What a standard decoder reads completely within the limits is
accepted, oddities included (padding after a JPEG's end marker, a GIF saved
as ``.jpg``); they are returned as notes for the caller's report.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.core.errors import ImageError
from edge.core.files import UnsafeFileError, read_regular_file
from edge.core.image_header import ImageHeader, check_header, jpeg_end, suffix_matches

# Enrolment photos: a 50 MB, 50-megapixel phone photo is the largest accepted.
MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_PIXELS = 50_000_000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}
_FILE_CODES = {"missing": "missing", "is_a_folder": "not_an_image",
               "not_a_regular_file": "not_a_regular_file", "too_large": "too_large"}


@dataclass(frozen=True)
class DecodedImage:
    image: np.ndarray  # HxWx3 uint8 BGR
    header: ImageHeader
    notes: tuple[str, ...] = ()  # oddities a standard decoder accepted


def decode_checked(data: bytes, name: str = "<bytes>", *, max_pixels: int = MAX_PIXELS,
                   max_bytes: int = MAX_IMAGE_BYTES, formats: Collection[str] | None = None) -> DecodedImage:
    """Check the header against the limits (and ``formats``, when given), then decode;
    ImageError with a reason code otherwise."""
    header = check_header(data, name, max_pixels, max_bytes)
    if formats is not None and header.format not in formats:
        raise ImageError(f"{name}: a {header.format.upper()} image; expected "
                         f"{' or '.join(f.upper() for f in sorted(formats))}", "not_an_image")
    notes = []
    if not suffix_matches(name, header.format):
        notes.append(f"the file is a {header.format.upper()} image; its name says otherwise")
    if header.format == "jpeg":
        end = jpeg_end(data)
        if end is None:
            raise ImageError(f"{name}: corrupt or truncated image data (the JPEG ends before its "
                             "end marker)")
        if end < len(data):
            notes.append(f"{len(data) - end} bytes after the JPEG end marker (ignored)")
    try:
        image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as err:  # the decoder's own refusal of a header it does not like
        raise ImageError(f"{name}: image header refused by the decoder (corrupt)") from err
    if image is None or image.size == 0:
        raise ImageError(f"{name}: corrupt or truncated image data")
    if image.shape[0] * image.shape[1] > max_pixels:  # a decoder that read past its header
        raise ImageError(f"{name}: {image.shape[1]}x{image.shape[0]} pixels is too large", "too_large")
    return DecodedImage(image, header, tuple(notes))


def decode_image(data: bytes, name: str = "<bytes>", *, max_pixels: int = MAX_PIXELS,
                 max_bytes: int = MAX_IMAGE_BYTES, formats: Collection[str] | None = None) -> np.ndarray:
    """Decode encoded image bytes to an HxWx3 uint8 BGR array."""
    return decode_checked(data, name, max_pixels=max_pixels, max_bytes=max_bytes, formats=formats).image


def read_image_file(path: Path | str, name: str | None = None, max_bytes: int = MAX_IMAGE_BYTES) -> bytes:
    """The bytes of an image file: a regular file of at most ``max_bytes``, else ImageError."""
    try:
        return read_regular_file(path, max_bytes, "image")
    except UnsafeFileError as err:
        why = {"missing": "no such file", "is_a_folder": "is a folder, not an image",
               "not_a_regular_file": "not a regular file (a device, FIFO or socket)",
               "too_large": f"larger than the {max_bytes} byte limit"}.get(err.code, str(err))
        raise ImageError(f"{name or path}: {why}", _FILE_CODES.get(err.code, "unreadable")) from err


def load_image(path: Path | str) -> np.ndarray:
    return decode_image(read_image_file(path), str(path))


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ImageError("cannot encode image as JPEG")
    return bytes(buf)
