"""Reasons and talking points, in zh-CN (default) and English.

Every sentence comes from a fixed template filled with the customer's facts:
product names and terms from the catalogue, dates from holdings and the
customer record, amounts rounded to bands (``edge.core.bands``).  Nothing is
invented: a fact that is missing leaves its sentence out.
"""

from __future__ import annotations

from datetime import date

from edge.core import life_events as le
from edge.core.bands import amount_band
from edge.crm.catalogue import Product, category_name
from edge.crm.recommend import Recommended

LANGUAGES = ("zh-CN", "en")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

REASONS = {
    "assessment": ("风险评估已于{on}过期，请先为客户重新评估，再推荐产品",
                   "Risk assessment expired on {on}: redo it before offering any product"),
    "assessment_missing": ("客户没有有效的风险评估，请先完成评估",
                           "No valid risk assessment: complete one first"),
    "maturity": ("{from_name}于{on}到期（约{band}），可转入{name}",
                 "{from_name} matures on {on} (about {band}): roll into {name}"),
    "idle_balance": ("活期余额约{band}，可配置{name}",
                     "About {band} idle in the current account: consider {name}"),
    "peers": ("{share}%的同类客户（{segment}）持有{name}",
              "{share}% of customers like this ({segment}) hold {name}"),
    "peers_recent": ("近一年{share}%的同类客户（{segment}）买了{name}",
                     "{share}% of customers like this ({segment}) bought {name} in the last year"),
    "peers_take_up": ("近一年同类客户（{segment}）新开的产品中{share}%是{name}",
                      "{share}% of the products customers like this ({segment}) took up in the last year "
                      "were {name}"),
    "peers_everyone": ("近一年所有客户新开的产品中{share}%是{name}",
                       "{share}% of all the products customers took up in the last year were {name}"),
    "renewal": ("客户持有的{name}于{on}到期（约{band}），可续作",
                "The customer's {name} matures on {on} (about {band}): renew it"),
    "top_up": ("客户已持有{name}（约{band}），可续作或追加",
               "The customer already holds {name} (about {band}): renew or top it up"),
    "pattern": ("持有{from_name}的客户开通{name}的比例是平均的{lift}倍",
                "Customers who hold {from_name} take up {name} {lift}× as often as average"),
}

EVENTS = {
    le.MATURITY: ("您的{name}将于{on}到期，金额约{band}，到期资金可以提前规划。",
                  "Your {name} matures on {on}, about {band}; we can plan the funds ahead."),
    le.IDLE_BALANCE: ("您活期账户里约有{band}，可以考虑做些稳妥的安排。",
                      "You have about {band} in your current account; it could be put to work."),
    le.BIRTHDAY: ("{on}是您的生日，提前祝您生日快乐！",
                  "Your birthday is on {on}: happy birthday in advance!"),
    le.ASSESSMENT_EXPIRING: ("您的风险评估将于{on}到期，今天可以顺便更新。",
                             "Your risk assessment expires on {on}; we can renew it today."),
    le.ASSESSMENT_EXPIRED: ("您的风险评估已于{on}过期，购买投资产品前需要重新评估。",
                            "Your risk assessment expired on {on}; it must be renewed before investing."),
    "assessment_missing": ("您目前没有有效的风险评估，购买投资产品前需要先完成评估。",
                           "There is no valid risk assessment on file; one is needed before investing."),
}

PRODUCT = ("{name}：{category}，风险等级{risk}，{minimum}{tenure}。",
           "{name}: {category}, risk rating {risk}, {minimum}{tenure}.")


def pick(pair: tuple[str, str], language: str) -> str:
    return pair[1] if language == "en" else pair[0]


def say_date(day: date, today: date, language: str) -> str:
    """12月5日 / 5 Dec; the year is added when it is not this year."""
    if language == "en":
        text = f"{day.day} {MONTHS[day.month - 1]}"
        return text if day.year == today.year else f"{text} {day.year}"
    text = f"{day.month}月{day.day}日"
    return text if day.year == today.year else f"{day.year}年{text}"


def say_minimum(amount: float, language: str) -> str:
    if amount <= 1:
        return "无起购门槛" if language != "en" else "no minimum"
    if language == "en":
        return f"from CNY {amount:,.0f}"
    return f"{amount / 10_000:g}万元起购" if amount >= 10_000 else f"{amount:,.0f}元起购"


def say_tenure(days: int, language: str) -> str:
    if not days:
        return ""
    if language == "en":
        years = days // 365
        if days < 365 or days % 365:
            return f", term {days} days"
        return f", term {years} year" if years == 1 else f", term {years} years"
    return f"，期限{days}天" if days < 365 or days % 365 else f"，期限{days // 365}年"


def reason(rec: Recommended, names: dict[str, Product], today: date, language: str) -> str:
    facts = rec.facts
    name = rec.product.name(language) if rec.product else ""
    if rec.why == "assessment":
        if not facts.get("expires_on"):
            return pick(REASONS["assessment_missing"], language)
        return pick(REASONS["assessment"], language).format(
            on=say_date(date.fromisoformat(str(facts["expires_on"])), today, language))
    if rec.why in ("maturity", "idle_balance"):
        source = names.get(str(facts.get("from_product", "")))
        from_name = source.name(language) if source else category_name(str(facts.get("category")), language)
        on = say_date(date.fromisoformat(str(facts["on"])), today, language) if facts.get("on") else ""
        return pick(REASONS[rec.why], language).format(
            from_name=from_name, on=on, band=amount_band(float(facts["amount"]), language), name=name)
    if rec.why == "renewal":
        on = say_date(date.fromisoformat(str(facts["on"])), today, language) if facts.get("on") else ""
        return pick(REASONS["renewal" if on else "top_up"], language).format(
            on=on, band=amount_band(float(facts.get("amount", 0)), language), name=name)
    if rec.why == "pattern":
        source = names.get(str(facts.get("from_product", "")))
        return pick(REASONS["pattern"], language).format(
            from_name=source.name(language) if source else str(facts.get("from_product", "")),
            name=name, lift=facts.get("lift", ""))
    basis = facts.get("basis")
    key = "peers_take_up" if basis == "take_up" else "peers_everyone" if basis == "everyone" else (
        "peers_recent" if facts.get("recent") else "peers")
    segment = facts.get("segment_en" if language == "en" else "segment_zh", "")
    return pick(REASONS[key], language).format(share=facts.get("share", 0), segment=segment, name=name)


def product_point(product: Product, language: str) -> str:
    return pick(PRODUCT, language).format(
        name=product.name(language), category=category_name(product.category, language),
        risk=product.risk_rating, minimum=say_minimum(product.min_amount, language),
        tenure=say_tenure(product.tenure_days, language))


def event_point(trigger: le.Trigger, names: dict[str, Product], today: date, language: str) -> str:
    template = pick(EVENTS[trigger.kind if trigger.on or trigger.kind != le.ASSESSMENT_EXPIRED
                           else "assessment_missing"], language)
    product = names.get(trigger.product_id)
    name = product.name(language) if product else category_name(trigger.category, language)
    on = say_date(trigger.on, today, language) if trigger.on else ""
    return template.format(name=name, on=on, band=amount_band(trigger.amount, language))


def talking_points(triggers: list[le.Trigger], recs: list[Recommended], names: dict[str, Product], *,
                   today: date, language: str, limit: int = 20) -> list[str]:
    """Life events first (they open the conversation), then one point per product."""
    points = [event_point(t, names, today, language) for t in triggers]
    points += [product_point(r.product, language) for r in recs if r.product is not None]
    return points[:limit]
