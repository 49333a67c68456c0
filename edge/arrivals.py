"""Building arrival events: the single place where what the store knows about
a customer becomes the message an RM's PAD shows.

Until the portrait/recommendation work lands, the portrait holds what the store
has (name, tier, RM); richer portraits plug in here, nowhere else.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import cv2
import numpy as np

from edge.store import Customer
from mqtt.messages import MAX_IMAGE_B64, Arrival, CustomerCard, Portrait

ARRIVAL_TTL = timedelta(minutes=15)
THUMBNAIL_SIDE = 112
THUMBNAIL_MAX_BYTES = 16 * 1024


@dataclass(frozen=True)
class Sighting:
    camera_id: str
    seen_at: datetime
    face_crop: np.ndarray | None  # BGR crop of the live face, or None


def thumbnail_b64(crop: np.ndarray, max_bytes: int = THUMBNAIL_MAX_BYTES) -> str:
    """A small JPEG of the live face, base64, lowering quality until it fits."""
    side = THUMBNAIL_SIDE
    small = cv2.resize(crop, (side, side), interpolation=cv2.INTER_AREA)
    for quality in (85, 70, 55, 40):
        ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok and len(buf) <= max_bytes:
            encoded = base64.b64encode(bytes(buf)).decode("ascii")
            if len(encoded) <= MAX_IMAGE_B64:
                return encoded
    raise ValueError("face thumbnail does not fit the arrival's size budget")


def build_arrival(
    branch_id: str, customer: Customer, sighting: Sighting, visit_id: str | None = None
) -> Arrival:
    return Arrival(
        branch_id=branch_id,
        expires_at=sighting.seen_at + ARRIVAL_TTL,
        visit_id=visit_id or str(uuid.uuid4()),
        camera_id=sighting.camera_id,
        seen_at=sighting.seen_at,
        customer=CustomerCard(
            customer_id=customer.customer_id,
            display_name=customer.display_name or "",
            tier=customer.tier or "",
            masked_id_number="",
            masked_account="",
        ),
        assigned_rm=customer.assigned_rm or None,
        thumbnail_jpeg_b64=thumbnail_b64(sighting.face_crop) if sighting.face_crop is not None else None,
        portrait=Portrait(segment=customer.tier or "", aum_band="", risk_level=""),
    )
