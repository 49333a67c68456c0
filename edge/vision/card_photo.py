"""Make a photo look like the photo chip of a Chinese ID card.

The chip holds a 102x126 colour portrait, compressed to about 1 KB (WLT) and
often taken ten or twenty years before the card is read.  The 1:1 threshold
for card-vs-live comparisons is calibrated on pairs where one side went
through :func:`degrade_card`, and the tests build their "card photos" with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge.vision.types import Face

CARD_SIZE = (102, 126)  # width, height of the chip photo


@dataclass(frozen=True)
class CardLook:
    """How much ageing and loss a card photo suffers (defaults: a typical old card)."""

    jpeg_quality: int = 35  # the chip's ~1 KB WLT is harsher still; JPEG 35 is close in look
    contrast: float = 0.75  # faded print: pixel values pulled towards the mean
    warm_shift: float = 12.0  # yellowed: red up, blue down (BGR)
    grey: bool = False  # some old cards and scans are effectively monochrome
    face_height_share: float = 0.55  # detector box height / photo height on a card portrait


def card_crop(image: np.ndarray, face: Face, look: CardLook) -> np.ndarray:
    """A head-and-shoulders crop with the card's aspect ratio, resized to 102x126."""
    x1, y1, x2, y2 = (float(v) for v in face.bbox)
    height = (y2 - y1) / look.face_height_share
    width = height * CARD_SIZE[0] / CARD_SIZE[1]
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2 - 0.05 * height
    box = np.array([cx - width / 2, cy - height / 2, cx + width / 2, cy + height / 2])
    pad = int(max(0.0, -box.min(), box[2] - image.shape[1], box[3] - image.shape[0])) + 1
    padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    left, top, right, bottom = (int(np.rint(v)) + pad for v in box)
    crop = padded[top:bottom, left:right]
    return cv2.resize(crop, CARD_SIZE, interpolation=cv2.INTER_AREA)


def age_photo(photo: np.ndarray, look: CardLook) -> np.ndarray:
    """Fade, yellow (or grey) and JPEG-compress a small BGR photo."""
    pixels = photo.astype(np.float32)
    pixels = pixels.mean() + look.contrast * (pixels - pixels.mean())
    if look.grey:
        grey = cv2.cvtColor(np.clip(pixels, 0, 255).astype(np.uint8), cv2.COLOR_BGR2GRAY)
        pixels = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR).astype(np.float32)
    else:
        pixels += np.array([-look.warm_shift, 0.0, look.warm_shift], np.float32)
    aged = np.clip(pixels, 0, 255).astype(np.uint8)
    ok, encoded = cv2.imencode(".jpg", aged, [cv2.IMWRITE_JPEG_QUALITY, look.jpeg_quality])
    if not ok:
        raise ValueError("JPEG encoding of the card photo failed")
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    if decoded is None:
        raise ValueError("JPEG decoding of the card photo failed")
    return decoded


def degrade_card(image: np.ndarray, face: Face, look: CardLook = CardLook()) -> np.ndarray:
    """The card-chip version of ``image`` around ``face``: 102x126, aged, compressed."""
    return age_photo(card_crop(image, face, look), look)


def jpeg_bytes(image: np.ndarray, quality: int = 90) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(encoded.tobytes())
