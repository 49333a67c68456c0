"""Talking points and reasons in zh-CN and English: every sentence from a template
filled with the customer's facts, nothing invented."""

from __future__ import annotations

import re
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from edge.core import life_events as le
from edge.core.bands import BANDS, amount_band
from edge.crm.catalogue import Product
from edge.crm.recommend import Recommended
from edge.crm.talking_points import reason, say_date, talking_points

TODAY = date(2026, 12, 28)
TD = Product("TD-1Y", "一年期定期存款", "1-year time deposit", "deposit", "R1", 50, 365, None, None, ())
WM = Product("WM-90", "稳享90天理财", "Steady 90-day plan", "wealth", "R2", 10_000, 90, None, None, ())
NAMES = {p.product_id: p for p in (TD, WM)}
TRIGGERS = [
    le.Trigger(le.ASSESSMENT_EXPIRING, date(2027, 1, 10)),
    le.Trigger(le.MATURITY, date(2027, 1, 5), 250_000, "TD-1Y", "deposit"),
    le.Trigger(le.IDLE_BALANCE, None, 900_000),
    le.Trigger(le.BIRTHDAY, date(2027, 1, 2)),
]
RECS = [
    Recommended("TD-1Y", 0.9, "maturity", {"on": "2027-01-05", "amount": 250_000.0,
                                           "from_product": "TD-1Y", "category": "deposit"}, TD),
    Recommended("WM-90", 0.4, "peers", {"share": 40, "recent": 1, "segment_zh": "稳健型·定期存款为主",
                                        "segment_en": "conservative, mostly time deposit"}, WM),
]
CJK = re.compile(r"[\u4e00-\u9fff]")


def test_chinese_points_follow_events_then_products() -> None:
    points = talking_points(TRIGGERS, RECS, NAMES, today=TODAY, language="zh-CN")
    assert points == [
        "您的风险评估将于2027年1月10日到期，今天可以顺便更新。",
        "您的一年期定期存款将于2027年1月5日到期，金额约20万-50万，到期资金可以提前规划。",
        "您活期账户里约有50万-100万，可以考虑做些稳妥的安排。",
        "2027年1月2日是您的生日，提前祝您生日快乐！",
        "一年期定期存款：定期存款，风险等级R1，50元起购，期限1年。",
        "稳享90天理财：理财产品，风险等级R2，1万元起购，期限90天。",
    ]


def test_english_points_say_the_same_facts_without_chinese() -> None:
    points = talking_points(TRIGGERS, RECS, NAMES, today=TODAY, language="en")
    assert points[1] == ("Your 1-year time deposit matures on 5 Jan 2027, about 200k-500k; "
                         "we can plan the funds ahead.")
    assert points[3] == "Your birthday is on 2 Jan 2027: happy birthday in advance!"
    assert points[5] == ("Steady 90-day plan: wealth management, risk rating R2, from CNY 10,000, "
                         "term 90 days.")
    assert not any(CJK.search(p) for p in points)


def test_reasons_in_both_languages_quote_the_facts() -> None:
    assert reason(RECS[0], NAMES, TODAY, "zh-CN") == (
        "一年期定期存款于2027年1月5日到期（约20万-50万），可转入一年期定期存款")
    assert reason(RECS[0], NAMES, TODAY, "en") == (
        "1-year time deposit matures on 5 Jan 2027 (about 200k-500k): roll into 1-year time deposit")
    assert reason(RECS[1], NAMES, TODAY, "zh-CN") == (
        "近一年40%的同类客户（稳健型·定期存款为主）买了稳享90天理财")
    assert reason(RECS[1], NAMES, TODAY, "en").startswith("40% of customers like this (conservative")


def test_no_facts_no_sentences() -> None:
    assert talking_points([], [], NAMES, today=TODAY, language="zh-CN") == []
    only_product = talking_points([], RECS[1:], NAMES, today=TODAY, language="en")
    assert len(only_product) == 1 and "birthday" not in only_product[0]


def test_dates_carry_the_year_only_when_it_is_not_this_year() -> None:
    assert say_date(date(2026, 12, 31), TODAY, "zh-CN") == "12月31日"
    assert say_date(date(2027, 1, 1), TODAY, "zh-CN") == "2027年1月1日"
    assert say_date(date(2026, 12, 31), TODAY, "en") == "31 Dec"
    assert say_date(date(2027, 1, 1), TODAY, "en") == "1 Jan 2027"


@given(amount=st.floats(0, 5e7), offset=st.integers(0, 30), language=st.sampled_from(["zh-CN", "en"]))
def test_every_number_in_a_point_is_traceable_to_data(amount: float, offset: int, language: str) -> None:
    on = date.fromordinal(TODAY.toordinal() + offset)
    trigger = le.Trigger(le.MATURITY, on, amount, "TD-1Y", "deposit")
    (point,) = talking_points([trigger], [], NAMES, today=TODAY, language=language)
    band = amount_band(amount, language)
    assert band in point and say_date(on, TODAY, language) in point
    rest = point.replace(band, "").replace(say_date(on, TODAY, language), "").replace(TD.name(language), "")
    assert not re.search(r"\d", rest), rest  # no number that did not come from the data
    assert sum(b in point for b in BANDS[language]) >= 1
