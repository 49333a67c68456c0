"""A fictional, fully populated arrival with a drawn (not photographed) face.

For screenshots, tests and trying the app without a camera: no real person's
photo or data is involved.
"""

from __future__ import annotations

import base64
import uuid
from datetime import date, datetime, timedelta

import cv2
import numpy as np

from mqtt.messages import (
    Arrival,
    CustomerCard,
    Holding,
    Interaction,
    LifeEvent,
    Portrait,
    Recommendation,
    utc_now,
)


def drawn_face_jpeg(seed: int = 0, side: int = 112) -> str:
    """A cartoon face (skin disc, hair, eyes, mouth) as base64 JPEG; colours vary with ``seed``."""
    rng = np.random.default_rng(seed)
    img = np.full((side, side, 3), (214, 222, 228), np.uint8)
    skin = tuple(int(v) for v in rng.integers((150, 170, 200), (190, 205, 240)))
    c = side // 2
    cv2.ellipse(img, (c, c + 8), (side // 3, side * 2 // 5), 0, 0, 360, skin, -1)
    cv2.ellipse(img, (c, c - 10), (side // 3 + 2, side // 4), 0, 180, 360, (40, 40, 50), -1)
    for dx in (-side // 8, side // 8):
        cv2.circle(img, (c + dx, c + 4), max(2, side // 28), (30, 30, 30), -1)
    cv2.ellipse(img, (c, c + 26), (side // 10, side // 24), 0, 0, 180, (60, 60, 140), 2)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 85])
    assert ok
    return base64.b64encode(bytes(buf)).decode("ascii")


def sample_arrival(
    branch_id: str = "b1",
    *,
    name: str = "王晓明",
    customer_id: str = "c-1001",
    assigned_rm: str | None = "rm-1",
    seen_at: datetime | None = None,
    ttl: timedelta = timedelta(minutes=15),
    seed: int = 0,
    visit_id: str | None = None,
) -> Arrival:
    seen = seen_at or utc_now()
    today = seen.date()
    maturity = today + timedelta(days=6)
    return Arrival(
        branch_id=branch_id,
        sent_at=seen,
        expires_at=seen + ttl,
        visit_id=visit_id or str(uuid.uuid4()),
        camera_id="lobby-1",
        seen_at=seen,
        customer=CustomerCard(customer_id=customer_id, display_name=name, tier="钻石",
                              masked_id_number="1101**********1234", masked_account="6222 **** **** 5678"),
        assigned_rm=assigned_rm,
        thumbnail_jpeg_b64=drawn_face_jpeg(seed),
        portrait=_portrait(today),
        recommendations=[
            Recommendation(product_id="td-3y", name="三年期大额存单", category="deposit", risk_rating="R1",
                           reason=f"定期存款将于 {maturity:%m-%d} 到期：可转存三年期大额存单",
                           reason_en=f"Deposit matures on {maturity:%m-%d}: roll it into the 3-year CD"),
            Recommendation(product_id="wm-r2-180", name="稳健理财180天", category="wealth", risk_rating="R2",
                           reason="70% 的同类客户持有此产品",
                           reason_en="70% of customers like this one hold it"),
        ],
        talking_points=["您的200万定期存款下周到期，可以了解一下三年期大额存单的续存方案。",
                        "生日快乐！本周来访可领取生日礼遇。"],
        talking_points_en=["Your 2M CNY deposit matures next week: the 3-year CD keeps the rate.",
                           "Happy birthday this week: a birthday gift is waiting at the counter."],
    )


def _portrait(today: date) -> Portrait:
    return Portrait(
        segment="稳健增值",
        aum_band="500万-1000万",
        risk_level="C3",
        risk_assessment="expiring",
        risk_assessment_expires_on=today + timedelta(days=20),
        holdings=[Holding(category="存款", amount_band="100万-500万"),
                  Holding(category="理财", amount_band="50万-100万")],
        preferences=["上午来访", "中文服务"],
        recent_interactions=[Interaction(on=today - timedelta(days=21), channel="电话",
                                         summary="询问理财收益")],
        life_events=[LifeEvent(kind="maturity", on=today + timedelta(days=6), note="定期存款 200万 CNY"),
                     LifeEvent(kind="birthday", on=today + timedelta(days=2), note="")],
    )
