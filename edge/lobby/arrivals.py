"""Building arrival events: the single place where what the store knows about
a customer becomes the message an RM's PAD shows.

With a ``PortraitBuilder`` (``edge.crm.portrait``) and CRM data for the customer,
the arrival carries the full portrait, recommendations and talking points in
both languages; otherwise the portrait holds what the store has (tier).
"""

from __future__ import annotations

import base64
import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from edge.store.customers import Customer
from mqtt.messages import MAX_IMAGE_B64, Arrival, CustomerCard, Portrait

if TYPE_CHECKING:
    from edge.crm.portrait import PortraitBuilder, PortraitBundle

log = logging.getLogger(__name__)
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
    branch_id: str, customer: Customer, sighting: Sighting, visit_id: str | None = None, *,
    portraits: PortraitBuilder | None = None, today: date | None = None,
) -> Arrival:
    """``today`` (for life events) defaults to the sighting's date on this PC's clock."""
    visit = visit_id or str(uuid.uuid4())
    bundle = None
    if portraits is not None:
        day = today or sighting.seen_at.astimezone().date()
        try:
            bundle = portraits.build(customer.customer_id, day, visit_id=visit, rm_id=customer.assigned_rm)
        except Exception as err:  # a CRM problem must never cost the RM the arrival itself
            log.warning("portrait unavailable for arrival (visit %s): %s", visit, type(err).__name__)
            bundle = None
    return Arrival(
        branch_id=branch_id,
        expires_at=sighting.seen_at + ARRIVAL_TTL,
        visit_id=visit,
        camera_id=sighting.camera_id,
        seen_at=sighting.seen_at,
        customer=CustomerCard(
            customer_id=customer.customer_id,
            display_name=customer.display_name or "",
            tier=customer.tier or "",
            masked_id_number=bundle.masked_id_number if bundle else "",
            masked_account=bundle.masked_account if bundle else "",
        ),
        assigned_rm=customer.assigned_rm or None,
        thumbnail_jpeg_b64=thumbnail_b64(sighting.face_crop) if sighting.face_crop is not None else None,
        portrait=bundle.portrait if bundle else Portrait(segment=customer.tier or "", aum_band="",
                                                          risk_level=""),
        **_extras(bundle),
    )


def _extras(bundle: PortraitBundle | None) -> dict[str, Any]:
    if bundle is None:
        return {}
    return {"recommendations": bundle.recommendations, "talking_points": bundle.talking_points,
            "talking_points_en": bundle.talking_points_en}
