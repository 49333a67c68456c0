"""A consistent, fictional CRM and product catalogue for the demo branch.

Everything here is invented: names, ID and account numbers, balances and
histories.  The demo's own customers (C202600001.., with the names, tiers and
RMs that ``edge.tools.demo.branch`` gives them) are joined by a few hundred more fictional
customers so that the recommender has a population to learn from.  Customers
follow one of five investing styles over about five years of purchases, term
deposits mature and roll over, funds are sometimes redeemed, and RMs' offers
are logged as interactions.  The demo customers are given life events that
fall around ``today`` (maturities, birthdays, idle balances, assessments
expiring) so the demo's arrivals have something to say.

The generated files go through the real importer (``edge.crm.importer``), so the
demo also exercises the documented formats.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Protocol

from edge.core.files import open_private, private_dir
from edge.crm.importer import REQUIRED, ImportReport, import_files
from edge.crm.records import KINDS, CrmStore

SURNAMES = "赵钱孙李周吴郑王冯陈褚卫蒋沈韩杨朱秦尤许何吕施张孔曹严华金魏陶姜"
GIVEN = ["子涵", "浩然", "雨桐", "思远", "欣怡", "俊杰", "梓萱", "宇轩", "佳琪", "文博", "婉清", "志远",
         "晓峰", "静怡", "明哲", "若曦", "国强", "丽华", "建华", "淑芬"]
TIERS = ["私人银行", "财富管理", "贵宾"]
RMS = ["RM-01", "RM-02", "RM-03"]
HISTORY_YEARS = 5

# product_id, zh, en, category, risk, min amount, tenure days, target segments
PRODUCTS: list[tuple[str, str, str, str, str, int, int, str]] = [
    ("TD-3M", "三个月定期存款", "3-month time deposit", "deposit", "R1", 50, 91, ""),
    ("TD-1Y", "一年期定期存款", "1-year time deposit", "deposit", "R1", 50, 365, ""),
    ("TD-3Y", "三年期大额存单", "3-year large certificate of deposit", "deposit", "R1", 200_000, 1095, ""),
    ("WM-90", "稳享90天理财", "Steady 90-day wealth plan", "wealth", "R2", 10_000, 90, ""),
    ("WM-180", "稳健180天理财", "Prudent 180-day wealth plan", "wealth", "R2", 10_000, 180, ""),
    ("WM-365", "增利一年期理财", "Yield-plus 1-year wealth plan", "wealth", "R3", 50_000, 365, ""),
    ("WM-PB", "私享尊享理财", "Private banking exclusive plan", "wealth", "R3", 1_000_000, 365, "私人银行"),
    ("FD-MMF", "天天利货币基金", "Daily money market fund", "fund", "R1", 1, 0, ""),
    ("FD-BOND", "安心纯债基金", "Secure pure bond fund", "fund", "R2", 1000, 0, ""),
    ("FD-BAL", "平衡配置混合基金", "Balanced allocation fund", "fund", "R3", 1000, 0, ""),
    ("FD-EQ", "沪深300指数基金", "CSI 300 index fund", "fund", "R4", 1000, 0, ""),
    ("FD-TECH", "科技成长股票基金", "Technology growth equity fund", "fund", "R5", 1000, 0, ""),
    ("IN-ANN", "安享养老年金保险", "Retirement annuity insurance", "insurance", "R1", 10_000, 3650, ""),
    ("IN-HLTH", "康宁重疾保险", "Critical illness insurance", "insurance", "R1", 5000, 7300, ""),
    ("IN-EDU", "子女教育金保险", "Children's education insurance", "insurance", "R2", 10_000, 5475, ""),
    ("PM-GOLD", "积存金", "Gold accumulation plan", "precious_metal", "R3", 1000, 0, ""),
    ("PM-BAR", "实物投资金条", "Investment gold bar", "precious_metal", "R2", 5000, 0, ""),
    ("LN-CONS", "消费信用贷", "Consumer credit loan", "loan", "R1", 0, 1095, ""),
    ("CD-PLAT", "白金信用卡", "Platinum credit card", "card", "R1", 0, 0, "财富管理;私人银行"),
    ("WM-NY", "新春特享理财", "Lunar New Year special plan", "wealth", "R2", 50_000, 120, ""),
]

# style -> (risk levels, product weights)
STYLES: dict[str, tuple[tuple[str, ...], dict[str, float]]] = {
    "saver": (("C1", "C2"), {"TD-3M": 3, "TD-1Y": 4, "TD-3Y": 2, "WM-90": 2, "FD-MMF": 2, "IN-ANN": 1,
                             "IN-HLTH": 1, "PM-BAR": 0.5}),
    "balanced": (("C3",), {"WM-180": 3, "WM-365": 3, "FD-BOND": 3, "FD-BAL": 2, "IN-EDU": 1,
                           "PM-GOLD": 1.5, "TD-1Y": 1, "WM-PB": 1}),
    "growth": (("C4", "C5"), {"FD-EQ": 4, "FD-TECH": 3, "FD-BAL": 2, "PM-GOLD": 2, "WM-365": 1,
                              "FD-MMF": 1}),
    "family": (("C2", "C3"), {"IN-EDU": 3, "IN-HLTH": 3, "IN-ANN": 1, "TD-1Y": 2, "WM-90": 2,
                              "CD-PLAT": 1, "LN-CONS": 1}),
    "retiree": (("C1", "C2"), {"TD-3Y": 4, "IN-ANN": 3, "TD-1Y": 2, "PM-BAR": 2, "WM-90": 1}),
}
AUM_RANGE = {"私人银行": (6e6, 2.5e7), "财富管理": (1e6, 6e6), "贵宾": (2e5, 1e6)}


class DemoPerson(Protocol):
    """What the CRM generator reads of a demo customer (read-only: frozen dataclasses fit)."""

    @property
    def customer_id(self) -> str: ...
    @property
    def display_name(self) -> str: ...
    @property
    def tier(self) -> str: ...
    @property
    def assigned_rm(self) -> str: ...


@dataclass(frozen=True)
class Person:
    customer_id: str
    display_name: str
    tier: str
    assigned_rm: str


@dataclass
class DemoCrm:
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {k: [] for k in KINDS})

    def add(self, table: str, **values: Any) -> None:
        self.rows[table].append(values)

    def write_csv(self, folder: Path) -> dict[str, Path]:
        private_dir(folder)  # names, holdings, transactions: owner only
        paths = {}
        for kind, rows in self.rows.items():
            columns = list(REQUIRED[kind]) + sorted({k for r in rows for k in r} - set(REQUIRED[kind]))
            paths[kind] = folder / f"{kind}.csv"
            with open_private(paths[kind], newline="") as out:
                writer = csv.DictWriter(out, fieldnames=columns)
                writer.writeheader()
                writer.writerows(rows)
        return paths


def product_windows(today: date) -> dict[str, tuple[date | None, date | None]]:
    """Launch dates spread over the history; the New Year plan sells for a month."""
    start = today.replace(year=today.year - HISTORY_YEARS, month=1, day=1)
    windows: dict[str, tuple[date | None, date | None]] = {
        p[0]: (start + timedelta(days=97 * i % 700), None) for i, p in enumerate(PRODUCTS)
    }
    windows["WM-NY"] = (today + timedelta(days=20), today + timedelta(days=50))
    return windows


def add_catalogue(crm: DemoCrm, today: date) -> None:
    windows = product_windows(today)
    for pid, zh, en, category, risk, minimum, tenure, segments in PRODUCTS:
        start, until = windows[pid]
        crm.add("products", product_id=pid, name_zh=zh, name_en=en, category=category,
                risk_rating=risk, min_amount=minimum, tenure_days=tenure,
                sale_from=start.isoformat() if start else "", sale_until=until.isoformat() if until else "",
                segments=segments)


def fictional_people(first: int, count: int, rng: random.Random) -> list[Person]:
    return [
        Person(f"C2026{first + i:05d}", rng.choice(SURNAMES) + rng.choice(GIVEN), rng.choice(TIERS),
               rng.choice(RMS))
        for i in range(count)
    ]


@dataclass
class Profile:
    person: DemoPerson
    style: str
    risk_level: str
    aum: float
    index: int  # position among the demo's own customers, or -1


class Generator:
    def __init__(self, today: date, seed: int) -> None:
        self.today = today
        self.rng = random.Random(seed)
        self.crm = DemoCrm()
        self.windows = product_windows(today)
        self.terms = {p[0]: p for p in PRODUCTS}
        self.serial = 0

    def next_id(self, prefix: str) -> str:
        self.serial += 1
        return f"{prefix}{self.serial:07d}"

    def profile(self, person: DemoPerson, index: int) -> Profile:
        style = self.rng.choice(sorted(STYLES))
        low, high = AUM_RANGE.get(person.tier, (2e5, 1e6))
        aum = round(self.rng.uniform(low, high), -3)
        return Profile(person, style, self.rng.choice(STYLES[style][0]), aum, index)

    def customer(self, p: Profile) -> None:
        rng, today = self.rng, self.today
        birthday = date(today.year - rng.randint(28, 72), rng.randint(1, 12), rng.randint(1, 28))
        expires = today + timedelta(days=rng.randint(40, 700))
        if p.index >= 0:
            birthday, expires = self._demo_dates(p.index, birthday, expires)
        language = "en" if rng.random() < 0.1 else "zh-CN"
        self.crm.add(
            "customers", customer_id=p.person.customer_id, name=p.person.display_name, tier=p.person.tier,
            assigned_rm=p.person.assigned_rm, aum_band="", risk_level=p.risk_level,
            risk_expires_on=expires.isoformat(), birthday=birthday.isoformat(),
            preferred_language=language, preferences=";".join(self._preferences(p)),
            id_number=f"{rng.randint(110000, 659999)}{birthday:%Y%m%d}{rng.randint(1000, 9999)}",
            account_number=f"6222{rng.randint(10**11, 10**12 - 1)}",
        )

    def _demo_dates(self, index: int, birthday: date, expires: date) -> tuple[date, date]:
        """Life events around today for the demo's own customers."""
        if index % 5 == 1:
            soon = self.today + timedelta(days=index % 6)
            birthday = soon.replace(year=birthday.year) if (soon.month, soon.day) != (2, 29) else birthday
        if index % 7 == 3:
            expires = self.today - timedelta(days=10 + index)
        elif index % 7 == 4:
            expires = self.today + timedelta(days=12)
        return birthday, expires

    def _preferences(self, p: Profile) -> list[str]:
        options = ["偏好电话联系", "偏好上午到店", "关注养老规划", "关注子女教育", "偏好微信沟通",
                   "不喜欢电话推销", "关注资产保值"]
        return self.rng.sample(options, self.rng.randint(1, 2))

    # -- history -----------------------------------------------------------------

    def history(self, p: Profile) -> None:
        rng = self.rng
        weights = {pid: w * rng.gammavariate(0.7, 1.0) for pid, w in STYLES[p.style][1].items()}
        since = self.today - timedelta(days=rng.randint(400, 365 * HISTORY_YEARS))
        per_year = rng.uniform(3, 8)
        count = max(2, round(per_year * (self.today - since).days / 365))
        queue = sorted(since + timedelta(days=rng.randrange((self.today - since).days))
                       for _ in range(count))
        for day in queue:
            pid = self._pick(weights, p, day)
            if pid:
                self.purchase(p, pid, day, rollovers=2)
        self._forced_events(p)
        self._casa(p)
        self._service_interactions(p, since)

    def _pick(self, weights: dict[str, float], p: Profile, day: date) -> str | None:
        allowed = {pid: w for pid, w in weights.items() if self._allowed(pid, p, day)}
        if not allowed:
            return None
        return self.rng.choices(list(allowed), weights=list(allowed.values()))[0]

    def _allowed(self, pid: str, p: Profile, day: date) -> bool:
        _, _, _, _, risk, minimum, _, segments = self.terms[pid]
        start, until = self.windows[pid]
        on_sale = (start is None or start <= day) and (until is None or day <= until)
        fits_segment = not segments or p.person.tier in segments.split(";")
        return on_sale and fits_segment and int(risk[1]) <= int(p.risk_level[1]) and minimum <= p.aum / 4

    def _amount(self, pid: str, p: Profile) -> float:
        minimum = self.terms[pid][5]
        category = self.terms[pid][3]
        if category == "card":
            return 0.0
        return float(max(minimum, round(p.aum * self.rng.uniform(0.03, 0.2), -3)))

    def purchase(self, p: Profile, pid: str, day: date, rollovers: int, amount: float | None = None) -> None:
        _, zh, _, category, _, _, tenure, _ = self.terms[pid]
        amount = self._amount(pid, p) if amount is None else amount
        cid = p.person.customer_id
        self.crm.add("transactions", transaction_id=self.next_id("T"), customer_id=cid,
                     date=day.isoformat(), product_id=pid, category=category, amount=amount, kind="buy")
        if self.rng.random() < 0.3:
            offered = day - timedelta(days=self.rng.randint(0, 7))
            self.interaction(p, offered, self.rng.choice(["visit", "call"]), f"推荐{zh}，客户已购买",
                             offered=pid, result="accepted")
        matures = day + timedelta(days=tenure) if tenure and category in ("deposit", "wealth") else None
        if matures and matures <= self.today:
            if rollovers and self.rng.random() < 0.6:
                self.purchase(p, pid, matures, rollovers - 1, amount)
            return
        if category in ("fund", "precious_metal") and self.rng.random() < 0.3:
            self._redeem(p, pid, category, day, amount)
            return
        self.crm.add("holdings", holding_id=self.next_id("H"), customer_id=cid, product_id=pid,
                     category=category, amount=amount, opened_on=day.isoformat(),
                     matures_on=matures.isoformat() if matures else "")

    def _redeem(self, p: Profile, pid: str, category: str, day: date, amount: float) -> None:
        later = day + timedelta(days=self.rng.randint(60, 700))
        later = min(later, self.today)
        value = round(amount * self.rng.uniform(0.85, 1.3), -2)
        self.crm.add("transactions", transaction_id=self.next_id("T"), customer_id=p.person.customer_id,
                     date=later.isoformat(), product_id=pid, category=category, amount=value, kind="redeem")

    def _forced_events(self, p: Profile) -> None:
        """Demo customers: deposits and plans maturing in the next weeks."""
        if p.index < 0 or p.index % 5 not in (0, 3):
            return
        pid, tenure = ("TD-1Y", 365) if p.index % 5 == 0 else ("WM-90", 90)
        if not self._allowed(pid, p, self.today - timedelta(days=tenure)):
            pid, tenure = "TD-1Y", 365
        opened = self.today - timedelta(days=tenure - 3 - p.index % 20)
        self.purchase(p, pid, opened, rollovers=0, amount=float(round(p.aum * 0.15, -4)))

    def _casa(self, p: Profile) -> None:
        share = self.rng.uniform(0.02, 0.08)
        balance = round(p.aum * share, -2)
        if p.index >= 0 and p.index % 5 == 2:
            balance = round(self.rng.uniform(8e5, 1.5e6), -3)
        self.crm.add("holdings", holding_id=self.next_id("H"), customer_id=p.person.customer_id,
                     product_id="CASA", category="current", amount=balance,
                     opened_on=(self.today - timedelta(days=365 * 6)).isoformat(), matures_on="")

    def interaction(self, p: Profile, day: date, channel: str, summary: str, *, offered: str = "",
                    result: str = "") -> None:
        self.crm.add("interactions", interaction_id=self.next_id("I"), customer_id=p.person.customer_id,
                     date=day.isoformat(), channel=channel, summary=summary, offered_product_id=offered,
                     result=result)

    def _service_interactions(self, p: Profile, since: date) -> None:
        days = (self.today - since).days
        for _ in range(max(1, days // 180)):
            day = since + timedelta(days=self.rng.randrange(days))
            if self.rng.random() < 0.5:
                pid = self.rng.choice(sorted(STYLES[p.style][1]))
                self.interaction(p, day, "call", f"电话推荐{self.terms[pid][1]}，客户暂不考虑",
                                 offered=pid, result="declined")
            else:
                self.interaction(p, day, "visit", self.rng.choice(["到店办理转账", "咨询理财收益",
                                                                   "更新联系方式", "办理存款业务"]))


def generate_demo_crm(customers: Sequence[DemoPerson], today: date, extra: int = 380,
                      seed: int = 2026) -> DemoCrm:
    """The demo's customers plus ``extra`` fictional ones, with catalogue and history."""
    gen = Generator(today, seed)
    add_catalogue(gen.crm, today)
    people: list[tuple[DemoPerson, int]] = [(c, i) for i, c in enumerate(customers)]
    first = len(customers) + 1
    people += [(c, -1) for c in fictional_people(first, extra, gen.rng)]
    for person, index in people:
        profile = gen.profile(person, index)
        gen.customer(profile)
        gen.history(profile)
    return gen.crm


def load_demo_crm(db_path: Path, customers: Sequence[DemoPerson], today: date, folder: Path, *,
                  extra: int = 380, seed: int = 2026) -> list[ImportReport]:
    """Generate the demo CRM, write it as CSV files into ``folder`` and import them
    into the CRM tables of ``db_path`` (the demo store's file is fine)."""
    paths = generate_demo_crm(customers, today, extra, seed).write_csv(folder)
    with CrmStore.open(db_path) as crm:
        return import_files(crm, paths)


def demo_people(count: int = 20) -> list[Person]:
    """The demo branch's customers as ``edge.tools.demo.branch`` names them (ids, names, tiers, RMs)."""
    from edge.tools.demo import branch as demo  # noqa: PLC0415 - edge.tools.demo.branch pulls in the face engine

    return [Person(f"C2026{i + 1:05d}", demo.SURNAMES[i % len(demo.SURNAMES)]
                   + demo.GIVEN_NAMES[(i * 7) % len(demo.GIVEN_NAMES)], demo.TIERS[i % len(demo.TIERS)],
                   demo.RMS[i % len(demo.RMS)]) for i in range(count)]
