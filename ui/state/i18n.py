"""The app's words in zh-CN (default) and English: one table, looked up by key.

Plug-in pages add their own keys with :func:`register_texts`.  A key missing
in a language falls back to zh-CN, then to the key itself (so a missing
translation is visible, never a crash).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from mqtt.messages import CustomerCard

LANGUAGES = ("zh-CN", "en")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
DEFAULT_LANGUAGE = "zh-CN"

_TABLE: dict[str, dict[str, str]] = {
    "app.title": {"zh-CN": "网点助手", "en": "Branch PAD"},
    "header.staff": {"zh-CN": "{role} {staff}", "en": "{role} {staff}"},
    "role.rm": {"zh-CN": "客户经理", "en": "Relationship manager"},
    "role.teller": {"zh-CN": "柜员", "en": "Teller"},
    "role.supervisor": {"zh-CN": "主管", "en": "Supervisor"},
    "conn.online": {"zh-CN": "已连接", "en": "Connected"},
    "conn.offline": {"zh-CN": "连接中断，正在重连…", "en": "Disconnected, reconnecting…"},
    "conn.starting": {"zh-CN": "正在连接…", "en": "Connecting…"},
    "feed.title": {"zh-CN": "到访客户", "en": "Arrivals"},
    "feed.badge": {"zh-CN": "新到访 {n}", "en": "{n} new"},
    "feed.empty": {"zh-CN": "暂无到访客户", "en": "No arrivals yet"},
    "feed.mine": {"zh-CN": "我的客户", "en": "My customer"},
    "feed.seen_at": {"zh-CN": "{time} 到达", "en": "arrived {time}"},
    "card.none": {"zh-CN": "请选择一位到访客户", "en": "Choose a customer from the list"},
    "card.live": {"zh-CN": "现场抓拍", "en": "Live"},
    "card.enrolled": {"zh-CN": "登记照片", "en": "Enrolled photo"},
    "card.enrolled_missing": {"zh-CN": "登记照片\n未下发", "en": "Enrolled photo\nnot sent"},
    "card.no_live": {"zh-CN": "无抓拍", "en": "No live image"},
    "card.name_missing": {"zh-CN": "未登记姓名", "en": "Name missing"},
    "card.tier": {"zh-CN": "客户等级", "en": "Tier"},
    "card.rm": {"zh-CN": "客户经理", "en": "RM"},
    "card.no_rm": {"zh-CN": "未分配", "en": "none assigned"},
    "card.seen": {"zh-CN": "{time} 到达（{camera}）", "en": "arrived {time} ({camera})"},
    "card.customer_id": {"zh-CN": "客户号", "en": "Customer id"},
    "card.identity": {"zh-CN": "客户标识", "en": "Identifiers"},
    "card.why_now": {"zh-CN": "此刻要点", "en": "Why now"},
    "card.top_recommendation": {"zh-CN": "首选推荐", "en": "Top recommendation"},
    "card.more_recommendations": {"zh-CN": "其他推荐", "en": "More recommendations"},
    "card.more_points": {"zh-CN": "更多沟通要点", "en": "More talking points"},
    "card.no_crm": {"zh-CN": "客户关系系统中没有该客户的资料", "en": "The CRM has no data on this customer"},
    "card.list_sep": {"zh-CN": "，", "en": ", "},
    "card.field": {"zh-CN": "{name}：{value}", "en": "{name}: {value}"},
    "card.id_number": {"zh-CN": "证件号", "en": "ID number"},
    "card.account": {"zh-CN": "账号", "en": "Account"},
    "card.portrait": {"zh-CN": "客户画像", "en": "Portrait"},
    "card.segment": {"zh-CN": "客群", "en": "Segment"},
    "card.aum": {"zh-CN": "资产规模", "en": "AUM band"},
    "card.risk": {"zh-CN": "风险等级", "en": "Risk level"},
    "card.holdings": {"zh-CN": "持有产品", "en": "Holdings"},
    "card.preferences": {"zh-CN": "偏好", "en": "Preferences"},
    "card.interactions": {"zh-CN": "近期接触", "en": "Recent interactions"},
    "card.life_events": {"zh-CN": "重要日期", "en": "Important dates"},
    "card.recommendations": {"zh-CN": "推荐产品", "en": "Recommended products"},
    "claim.free": {"zh-CN": "尚未认领", "en": "Not claimed"},
    "claim.mine": {"zh-CN": "已由我认领", "en": "Claimed by me"},
    "claim.other": {"zh-CN": "已被 {rm} 认领", "en": "Claimed by {rm}"},
    "claim.button": {"zh-CN": "认领", "en": "Claim"},
    "claim.release": {"zh-CN": "释放", "en": "Release"},
    "outcome.button": {"zh-CN": "记录结果", "en": "Record outcome"},
    "outcome.title": {"zh-CN": "接待结果", "en": "Outcome"},
    "outcome.contacted": {"zh-CN": "已接触", "en": "Contacted"},
    "outcome.interested": {"zh-CN": "有意向", "en": "Interested"},
    "outcome.declined": {"zh-CN": "已拒绝", "en": "Declined"},
    "outcome.product_sold": {"zh-CN": "已成交", "en": "Sold"},
    "outcome.follow_up": {"zh-CN": "待跟进", "en": "Follow up"},
    "outcome.product": {"zh-CN": "成交产品", "en": "Product sold"},
    "outcome.follow_up_on": {"zh-CN": "跟进日期", "en": "Follow-up date"},
    "outcome.set_follow_up": {"zh-CN": "设定跟进日期", "en": "Set a follow-up date"},
    "outcome.note": {"zh-CN": "备注", "en": "Note"},
    "outcome.submit": {"zh-CN": "提交", "en": "Submit"},
    "outcome.cancel": {"zh-CN": "取消", "en": "Cancel"},
    "outcome.sent": {"zh-CN": "结果已记录", "en": "Outcome recorded"},
    "outcome.need_product": {"zh-CN": "请选择成交产品", "en": "Choose the product sold"},
    "outcome.past_date": {"zh-CN": "跟进日期不能早于今天", "en": "The follow-up date cannot be in the past"},
    "outcome.need_date": {"zh-CN": "待跟进需要设定日期", "en": "A follow-up needs a date"},
    "page.missing": {"zh-CN": "此角色的页面尚未安装", "en": "The page for this role is not installed"},
    "event.maturity": {"zh-CN": "到期", "en": "Maturity"},
    "event.birthday": {"zh-CN": "生日", "en": "Birthday"},
    "event.idle_balance": {"zh-CN": "闲置资金", "en": "Idle balance"},
    "event.assessment_expiring": {"zh-CN": "风评即将到期", "en": "Risk assessment expiring"},
    "event.assessment_expired": {"zh-CN": "风评已过期", "en": "Risk assessment expired"},
    "event.other": {"zh-CN": "其他事项", "en": "Other"},
    "channel.visit": {"zh-CN": "到访", "en": "Visit"},
    "channel.call": {"zh-CN": "电话", "en": "Call"},
    "channel.message": {"zh-CN": "消息", "en": "Message"},
    "channel.event": {"zh-CN": "活动", "en": "Event"},
    "risk.expiring": {"zh-CN": "风险评估将于 {on} 到期，请提醒客户重新评估",
                      "en": "Risk assessment expires on {on}: ask the customer to renew it"},
    "risk.expired": {"zh-CN": "风险评估已过期（{on}），须先重新评估再推荐产品",
                     "en": "Risk assessment expired ({on}): renew it before recommending products"},
    "risk.missing": {"zh-CN": "没有风险评估记录", "en": "No risk assessment on file"},
}


def register_texts(entries: Mapping[str, Mapping[str, str]]) -> None:
    """Add (or replace) translations; plug-in pages call this at import time."""
    for key, by_language in entries.items():
        _TABLE[key] = dict(by_language)


class Texts:
    """Looks words up in one language."""

    def __init__(self, language: str = DEFAULT_LANGUAGE) -> None:
        if language not in LANGUAGES:
            raise ValueError(f"unknown language {language!r}; choose one of {', '.join(LANGUAGES)}")
        self.language = language

    def __call__(self, key: str, **values: object) -> str:
        entry = _TABLE.get(key, {})
        template = entry.get(self.language) or entry.get(DEFAULT_LANGUAGE) or key
        return template.format(**values) if values else template

    def has(self, key: str) -> bool:
        return key in _TABLE

    def date(self, day: date, today: date | None = None) -> str:
        """12月5日 / 5 Dec, with the year when it is not this year's."""
        this_year = (today or date.today()).year
        if self.language == "en":
            text = f"{day.day} {MONTHS[day.month - 1]}"
            return text if day.year == this_year else f"{text} {day.year}"
        text = f"{day.month}月{day.day}日"
        return text if day.year == this_year else f"{day.year}年{text}"


def customer_title(customer: CustomerCard, texts: Texts) -> tuple[str, str | None]:
    """How to name the customer: (the display name, None), or, when the edge has no name for
    them (enrolled with --allow-unnamed), (their customer id, the "name missing" marker)."""
    name = customer.display_name.strip()
    if name:
        return name, None
    return customer.customer_id, texts("card.name_missing")
