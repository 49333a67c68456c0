"""Decoders for the card photo (the 1024-byte encrypted "WLT" blob).

Only the vendor's licensed library can decode a real WLT blob, and the project
cannot ship one; :class:`VendorWltDecoder` loads it through ctypes when it is
configured.  :class:`SimulatorPhotoDecoder` decodes the blobs the simulator
makes, which name an ordinary image file, so every layer above runs in tests.
Every decoder returns JPEG bytes (102x126 for real cards).
"""

from __future__ import annotations

import ctypes
import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from edge.core.errors import ImageError
from edge.core.image_header import ImageHeader, check_header
from ui.devices.idcard.card import CardReadError

WLT_LEN = 1024
PHOTO_W, PHOTO_H = 102, 126
# Sizes read from the header before anything is decoded: a decoded chip photo is
# 102x126 (a megapixel is far above any vendor's output); the simulator's card
# photos are ordinary image files, up to a 50-megapixel phone photo.
MAX_PHOTO_PIXELS = 1_000_000
MAX_SOURCE_PIXELS = 50_000_000
BMP_LEN = 38862  # 54-byte header + 126 rows of 308 bytes
RAW_LEN = PHOTO_W * PHOTO_H * 3
SIM_MAGIC = b"SIMWLT\x01\x00"


class PhotoDecoder(Protocol):
    def decode(self, wlt: bytes) -> bytes:
        """JPEG bytes of the photo; CardReadError(code='photo_decode') when it cannot."""
        ...


def checked_photo(image_bytes: bytes, what: str, max_pixels: int = MAX_PHOTO_PIXELS) -> ImageHeader:
    """The photo's header, or CardReadError(photo_decode) when it is not an image or too large."""
    try:
        return check_header(image_bytes, what, max_pixels)
    except ImageError as exc:
        raise CardReadError(f"the card photo cannot be used: {exc}", "photo_decode") from exc


def to_jpeg(image_bytes: bytes) -> bytes:
    """Any image file (BMP, PNG, JPEG) of at most a megapixel -> JPEG bytes."""
    import cv2  # noqa: PLC0415 - OpenCV only when a photo is decoded
    import numpy as np  # noqa: PLC0415

    if checked_photo(image_bytes, "decoded card photo").format == "jpeg":
        return image_bytes
    image = cv2.imdecode(np.frombuffer(image_bytes, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise CardReadError("the decoded card photo is not an image", "photo_decode")
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise CardReadError("the card photo could not be encoded as JPEG", "photo_decode")
    return bytes(encoded.tobytes())


def card_sized_jpeg(image_bytes: bytes) -> bytes:
    """Any image -> a 102x126 JPEG like a decoded chip photo (centre crop to 102:126, resize)."""
    import cv2  # noqa: PLC0415 - OpenCV only when a photo is decoded
    import numpy as np  # noqa: PLC0415

    checked_photo(image_bytes, "simulator card photo", MAX_SOURCE_PIXELS)
    image = cv2.imdecode(np.frombuffer(image_bytes, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise CardReadError("the simulator's card photo is not an image", "photo_decode")
    height, width = image.shape[:2]
    crop_w = min(width, round(height * PHOTO_W / PHOTO_H))
    crop_h = min(height, round(crop_w * PHOTO_H / PHOTO_W))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    image = cv2.resize(image[top:top + crop_h, left:left + crop_w], (PHOTO_W, PHOTO_H),
                       interpolation=cv2.INTER_AREA)
    return raw_bgr_to_jpeg(image.tobytes())


def raw_bgr_to_jpeg(raw: bytes) -> bytes:
    import cv2  # noqa: PLC0415 - OpenCV only when a photo is decoded
    import numpy as np  # noqa: PLC0415

    image = np.frombuffer(raw[:RAW_LEN], np.uint8).reshape(PHOTO_H, PHOTO_W, 3)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise CardReadError("the card photo could not be encoded as JPEG", "photo_decode")
    return bytes(encoded.tobytes())


# --- simulator -----------------------------------------------------------------

def simulated_wlt(image_bytes: bytes) -> bytes:
    """An opaque 1024-byte blob standing for ``image_bytes`` (what the simulator sends)."""
    digest = hashlib.sha256(image_bytes).digest()
    filler = hashlib.sha256(b"filler" + digest).digest() * (WLT_LEN // 32)
    return (SIM_MAGIC + digest + filler)[:WLT_LEN]


class SimulatorPhotoDecoder:
    """Test decoder: knows the images behind the simulator's blobs.

    Like a real decoder it returns a 102x126 photo, whatever the image's size.
    """

    def __init__(self, images: Iterable[bytes] = ()) -> None:
        self._images: dict[bytes, bytes] = {}
        for image in images:
            self.add(image)

    def add(self, image_bytes: bytes) -> bytes:
        blob = simulated_wlt(image_bytes)
        self._images[blob] = image_bytes
        return blob

    def decode(self, wlt: bytes) -> bytes:
        image = self._images.get(bytes(wlt))
        if image is None:
            raise CardReadError("the photo is not one of the simulator's test photos", "photo_decode")
        return card_sized_jpeg(image)


# --- vendor library --------------------------------------------------------------

class VendorWltDecoder:
    """A vendor WLT library through ctypes (loaded only when configured).

    ``entry`` names the export; two calling conventions are known:
    ``unpack(wlt, out, flag) -> 1`` (libwlt.so, ZKID_PHunpack) and
    ``DecodingPhotos(in, in_len, out, out_len) -> 38862`` (lib100UD.so).
    The output is a BMP file or raw 102x126 BGR; both are converted to JPEG.
    """

    def __init__(self, library: str | Path, entry: str = "unpack", flag: int = 1) -> None:
        path = Path(library)
        if not path.is_file():
            raise CardReadError(f"the photo decoder library {path} does not exist; install the reader "
                                "vendor's WLT library and point idcard.photo_decoder at it",
                                "decoder_missing")
        try:
            lib = ctypes.CDLL(str(path))
            self._func = getattr(lib, entry)
        except (OSError, AttributeError) as exc:
            raise CardReadError(f"cannot load {entry} from the photo decoder library {path}: {exc}",
                                "decoder_missing") from exc
        self._entry, self._flag = entry, flag
        self._func.restype = ctypes.c_int

    def decode(self, wlt: bytes) -> bytes:
        out = ctypes.create_string_buffer(BMP_LEN + 1024)
        source = ctypes.create_string_buffer(bytes(wlt), len(wlt))
        if self._entry == "DecodingPhotos":
            result = self._func(source, ctypes.c_int(len(wlt)), out, ctypes.c_int(len(out)))
            ok = result == BMP_LEN
        else:
            ok = self._func(source, out, ctypes.c_int(self._flag)) == 1
        if not ok:
            raise CardReadError("the vendor library could not decode the card photo "
                                "(is an authorised reader attached?)", "photo_decode")
        data = out.raw
        return to_jpeg(data[:BMP_LEN]) if data[:2] == b"BM" else raw_bgr_to_jpeg(data)


def load_decoder(spec: str | None) -> PhotoDecoder | None:
    """``vendor:/path/libwlt.so[:entry]``, ``simulator:cards.toml`` or None."""
    if not spec:
        return None
    kind, _, rest = spec.partition(":")
    if kind == "vendor" and rest:
        library, _, entry = rest.partition(":")
        return VendorWltDecoder(library, entry or "unpack")
    if kind == "simulator" and rest:
        from ui.devices.idcard.simulator import load_cards  # noqa: PLC0415 - the simulator imports this module

        return load_cards(Path(rest)).decoder()
    raise CardReadError(f"photo decoder {spec!r}: use vendor:/path/lib.so[:entry] or "
                        "simulator:cards.toml", "decoder_missing")
