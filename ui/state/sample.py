"""A fictional, fully populated arrival with a drawn (not photographed) face.

For screenshots, tests and trying the app without a camera: no real person's
photo or data is involved.
"""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
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


# --- the demo branch's visitors (``branch-pad --demo``) ------------------------------------


@dataclass(frozen=True)
class DemoVisitor:
    """A fictional customer as the edge would describe them, in both languages where the edge
    writes sentences (recommendation reasons, talking points)."""

    customer_id: str
    name: str
    tier: str
    assigned_rm: str | None
    segment: str
    aum_band: str
    risk_level: str
    risk_assessment: str
    holdings: tuple[tuple[str, str], ...]
    preferences: tuple[str, ...]
    interactions: tuple[tuple[int, str, str], ...]  # days ago, channel code, summary
    events: tuple[tuple[str, int], ...]  # life event code, in days
    recommendations: tuple[tuple[str, str, str, str, str], ...]  # id, name, risk, reason zh, reason en
    points: tuple[str, ...]
    points_en: tuple[str, ...]


DEMO_VISITORS: tuple[DemoVisitor, ...] = (
    DemoVisitor(
        "C202600001", "王晓明", "私人银行", "rm-1", "稳健增值", "500万-1000万", "C3", "expiring",
        (("存款", "100万-500万"), ("理财", "50万-100万")), ("上午来访", "中文服务"),
        ((21, "call", "询问理财收益"), (60, "visit", "办理定期续存")),
        (("maturity", 6), ("birthday", 2), ("assessment_expiring", 20)),
        (("TD-3Y", "三年期大额存单", "R1", "定期存款6天后到期（约200万）：可转入三年期大额存单",
          "A time deposit matures in 6 days (about CNY 2M): roll it into the 3-year CD"),
         ("WM-180", "稳健180天理财", "R2", "70%的同类客户（稳健增值）持有稳健180天理财",
          "70% of customers like this (steady growth) hold the Prudent 180-day plan")),
        ("您的一年期定期存款6天后到期，金额约200万元，到期资金可以提前规划。",
         "两天后是您的生日，提前祝您生日快乐！",
         "您的风险评估20天后到期，今天可以顺便更新。"),
        ("Your 1-year time deposit matures in 6 days, about CNY 2M; we can plan the funds ahead.",
         "Your birthday is in two days: happy birthday in advance!",
         "Your risk assessment expires in 20 days; we can renew it today."),
    ),
    DemoVisitor(
        "C202600002", "李静怡", "财富管理", "rm-2", "家庭保障", "100万-500万", "C2", "valid",
        (("存款", "50万-100万"), ("保险", "10万-50万")), ("周末来访",),
        ((9, "message", "咨询子女教育金"),),
        (("idle_balance", 0),),
        (("IN-EDU", "子女教育金保险", "R2", "活期余额约60万，可配置子女教育金保险",
          "About CNY 600K idle in the current account: consider the children's education plan"),),
        ("您活期账户里约有60万元，可以考虑做些稳妥的安排。",),
        ("You have about CNY 600K in your current account; it could be put to work.",),
    ),
    DemoVisitor(
        "C202600003", "陈建国", "贵宾", None, "退休稳健", "50万-100万", "C1", "expired",
        (("存款", "50万-100万"),), ("中文服务",),
        (),
        (("assessment_expired", -3),),
        (("RISK-ASSESS", "风险评估", "", "风险评估已于3天前过期，请先为客户重新评估，再推荐产品",
          "Risk assessment expired 3 days ago: redo it before offering any product"),),
        ("您的风险评估已过期，购买投资产品前需要重新评估。",),
        ("Your risk assessment has expired; it must be renewed before investing.",),
    ),
    DemoVisitor(
        "C202600004", "赵子涵", "财富管理", "rm-1", "积极成长", "100万-500万", "C4", "valid",
        (("基金", "100万-500万"), ("贵金属", "10万-50万")), ("下午来访", "英文服务"),
        ((3, "visit", "了解指数基金定投"),),
        (),
        (("FD-EQ", "沪深300指数基金", "R4", "近一年45%的同类客户（积极成长）买了沪深300指数基金",
          "45% of customers like this (growth) bought the CSI 300 index fund in the last year"),
         ("PM-GOLD", "积存金", "R3", "30%的同类客户（积极成长）持有积存金",
          "30% of customers like this (growth) hold the gold accumulation plan")),
        ("沪深300指数基金：基金，风险等级R4，1000元起购。",),
        ("CSI 300 index fund: fund, risk rating R4, from CNY 1,000.",),
    ),
    DemoVisitor(
        "C202600005", "周文博", "私人银行", "rm-3", "稳健增值", "1000万以上", "C3", "valid",
        (("理财", "500万-1000万"), ("存款", "100万-500万")), (),
        ((30, "event", "参加私行客户沙龙"),),
        (("maturity", 12),),
        (("WM-PB", "私享尊享理财", "R3", "稳享90天理财于12天后到期（约300万），可转入私享尊享理财",
          "The 90-day plan matures in 12 days (about CNY 3M): roll into the private banking plan"),),
        ("您的稳享90天理财12天后到期，金额约300万元，到期资金可以提前规划。",),
        ("Your Steady 90-day plan matures in 12 days, about CNY 3M; we can plan the funds ahead.",),
    ),
)


def demo_arrival(visitor: DemoVisitor, branch_id: str, *, seen_at: datetime | None = None,
                 ttl: timedelta = timedelta(minutes=15), seed: int = 0) -> Arrival:
    """A new visit of ``visitor`` as the edge would publish it."""
    seen = seen_at or utc_now()
    today = seen.date()
    expires = {"expiring": today + timedelta(days=20), "expired": today - timedelta(days=3)}
    portrait = Portrait(
        segment=visitor.segment, aum_band=visitor.aum_band, risk_level=visitor.risk_level,
        risk_assessment=visitor.risk_assessment,  # type: ignore[arg-type]  # one of the Literal's values
        risk_assessment_expires_on=expires.get(visitor.risk_assessment, today + timedelta(days=200)),
        holdings=[Holding(category=c, amount_band=b) for c, b in visitor.holdings],
        preferences=list(visitor.preferences),
        recent_interactions=[Interaction(on=today - timedelta(days=d), channel=ch, summary=s)
                             for d, ch, s in visitor.interactions],
        life_events=[LifeEvent(kind=k, on=today + timedelta(days=d), note=p)
                     for (k, d), p in zip(visitor.events, visitor.points, strict=False)],
    )
    return Arrival(
        branch_id=branch_id, sent_at=seen, expires_at=seen + ttl, visit_id=str(uuid.uuid4()),
        camera_id="lobby-1", seen_at=seen,
        customer=CustomerCard(customer_id=visitor.customer_id, display_name=visitor.name, tier=visitor.tier,
                              masked_id_number="3101**********" + visitor.customer_id[-4:],
                              masked_account="6222 **** **** " + visitor.customer_id[-4:]),
        assigned_rm=visitor.assigned_rm, thumbnail_jpeg_b64=drawn_face_jpeg(seed), portrait=portrait,
        recommendations=[Recommendation(product_id=pid, name=name, risk_rating=risk, reason=zh, reason_en=en)
                         for pid, name, risk, zh, en in visitor.recommendations],
        talking_points=list(visitor.points), talking_points_en=list(visitor.points_en),
    )
