"""The product catalogue: what the branch may offer, with the terms that
suitability checks (risk rating, minimum amount, sales window).

Catalogue rows are imported like CRM rows (``branch-edge crm import
--products FILE``); see docs/readme/portrait.md for the format.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date

from edge.core.suitability import Terms

# Product and holding categories: (code, zh-CN, en).
CATEGORY_NAMES: dict[str, tuple[str, str]] = {
    "current": ("活期存款", "current account"),
    "deposit": ("定期存款", "time deposit"),
    "wealth": ("理财产品", "wealth management"),
    "fund": ("基金", "fund"),
    "insurance": ("保险", "insurance"),
    "precious_metal": ("贵金属", "precious metal"),
    "loan": ("贷款", "loan"),
    "card": ("信用卡", "credit card"),
}
CATEGORIES = tuple(CATEGORY_NAMES)
# Term products in these categories can be renewed at maturity (a held one may be offered again).
RENEWABLE_CATEGORIES = ("deposit", "wealth")
# Categories that hold the customer's money (count towards AUM); loans and cards do not.
ASSET_CATEGORIES = ("current", "deposit", "wealth", "fund", "insurance", "precious_metal")

def category_name(category: str, language: str) -> str:
    zh, en = CATEGORY_NAMES.get(category, (category, category))
    return en if language == "en" else zh

@dataclass(frozen=True)
class Product:
    product_id: str
    name_zh: str
    name_en: str
    category: str
    risk_rating: str
    min_amount: float
    tenure_days: int  # 0: open-ended
    sale_from: date | None
    sale_until: date | None
    segments: tuple[str, ...]  # target segments (tiers or segment names); empty: everyone

    def name(self, language: str) -> str:
        return self.name_en if language == "en" else self.name_zh

    @property
    def renewable(self) -> bool:
        """A term deposit or wealth plan: one the customer holds may be offered again, renewed
        when it matures."""
        return self.tenure_days > 0 and self.category in RENEWABLE_CATEGORIES

    @property
    def terms(self) -> Terms:
        return Terms(self.product_id, self.risk_rating, self.min_amount, self.sale_from, self.sale_until)

    def row(self) -> tuple[object, ...]:
        return (
            self.product_id, self.name_zh, self.name_en, self.category, self.risk_rating,
            self.min_amount, self.tenure_days, _iso(self.sale_from), _iso(self.sale_until),
            json.dumps(list(self.segments), ensure_ascii=False),
        )

    @classmethod
    def from_row(cls, row: tuple[object, ...]) -> Product:
        pid, zh, en, cat, risk, minimum, tenure, start, until, segments = row
        return cls(
            str(pid), str(zh), str(en), str(cat), str(risk), float(str(minimum)), int(str(tenure)),
            _date(start), _date(until), tuple(json.loads(str(segments))),
        )

def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None

def _date(value: object) -> date | None:
    return date.fromisoformat(str(value)) if value else None
