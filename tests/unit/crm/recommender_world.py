"""A small seeded bank whose customers follow patterns a recommender can learn.

* Payroll-account holders open the payroll deposit (PAYDD) within months.
* Current-account holders now and then take a credit card.
* Customers who hold nothing start differently by tier: VIP (贵宾) customers
  with the bond fund, mass-market (大众) customers with a savings account.
* A few customers hold a one-year term deposit (renewable) and roll it over.
"""

from __future__ import annotations

import random
from datetime import date, timedelta

from edge.core.ranking import add_months
from edge.crm.catalogue import Product
from edge.crm.history import Population
from edge.crm.records import CrmCustomer, CrmStore, HoldingRecord, TransactionRecord

AS_OF = date(2016, 1, 1)
START = date(2015, 1, 15)


def product(pid: str, en: str, category: str, risk: str = "R1", tenure: int = 0) -> Product:
    return Product(pid, f"{en}（中）", en, category, risk, 0.0, tenure, None, None, ())


PRODUCTS = [
    product("CUR", "Current account", "current"),
    product("PAY", "Payroll account", "current"),
    product("PAYDD", "Payroll deposit", "current"),
    product("CARD", "Credit card", "card"),
    product("SAVE", "Savings account", "deposit"),
    product("TD", "One-year deposit", "deposit", tenure=365),
    product("FUND", "Bond fund", "fund", "R2"),
    product("EQ", "Equity fund", "fund", "R4"),
]
CATEGORY = {p.product_id: p.category for p in PRODUCTS}


def customer(cid: str, tier: str, level: str = "C3", expires: date = date(2030, 12, 31)) -> CrmCustomer:
    return CrmCustomer(cid, f"Customer {cid}", tier, "RM-01", "", level, expires, None, "en", (), "", "")


def world(n: int = 360, seed: int = 5
          ) -> tuple[list[CrmCustomer], list[HoldingRecord], list[TransactionRecord]]:
    rng = random.Random(seed)
    people: list[CrmCustomer] = []
    holdings: list[HoldingRecord] = []
    buys: list[TransactionRecord] = []

    def hold(cid: str, pid: str, day: date, amount: float, bought: bool) -> None:
        matures = day + timedelta(days=365) if pid == "TD" else None
        if matures is None or matures >= AS_OF:
            holdings.append(HoldingRecord(f"H-{cid}-{pid}-{day:%Y%m%d}", cid, pid, CATEGORY[pid], amount, day,
                                          matures))
        if bought:
            buys.append(TransactionRecord(f"T-{cid}-{pid}-{day:%Y%m%d}", cid, day, pid, CATEGORY[pid],
                                          amount, "buy"))

    for i in range(n):
        cid = f"W{i:04d}"
        tier = "贵宾" if i % 2 else "大众"
        people.append(customer(cid, tier, "C4" if i % 7 == 0 else "C3"))
        held: set[str] = set()
        if i % 5 != 0:  # one in five holds nothing at first
            for pid, p in (("CUR", 0.8), ("PAY", 0.35), ("CARD", 0.2), ("SAVE", 0.2)):
                if rng.random() < p:
                    held.add(pid)
                    hold(cid, pid, START, 1000.0 * rng.randint(1, 50), bought=False)
        for m in range(1, 12):
            day = add_months(START, m)
            wants: list[tuple[str, float]] = []
            if not held:
                wants = [("FUND" if tier == "贵宾" else "SAVE", 0.3)]
            if "PAY" in held and "PAYDD" not in held:
                wants.append(("PAYDD", 0.3))
            if "CUR" in held and "CARD" not in held:
                wants.append(("CARD", 0.04))
            if held and "TD" not in held:
                wants.append(("TD", 0.02))
            for pid, p in wants:
                if rng.random() < p:
                    held.add(pid)
                    hold(cid, pid, day, 1000.0 * rng.randint(1, 50), bought=True)
    return people, holdings, buys


def population(n: int = 360, seed: int = 5) -> Population:
    people, holdings, buys = world(n, seed)
    by_customer: dict[str, list[HoldingRecord]] = {}
    for h in holdings:
        by_customer.setdefault(h.customer_id, []).append(h)
    bought: dict[str, list[TransactionRecord]] = {}
    for t in buys:
        bought.setdefault(t.customer_id, []).append(t)
    return Population({c.customer_id: c for c in people}, {p.product_id: p for p in PRODUCTS}, bought,
                      by_customer)


def write_store(crm: CrmStore, n: int = 360, seed: int = 5) -> None:
    people, holdings, buys = world(n, seed)
    crm.upsert("products", list(PRODUCTS))
    crm.upsert("customers", list(people))
    crm.upsert("holdings", list(holdings))
    crm.upsert("transactions", list(buys))
