"""Life events worth raising today (pure): maturities, idle balances,
birthdays and risk assessments about to expire.

Windows are counted in calendar days from ``today`` inclusive, so they cross
month and year ends naturally; a 29 February birthday is kept on 28 February
in other years.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

MATURITY = "maturity"
IDLE_BALANCE = "idle_balance"
BIRTHDAY = "birthday"
ASSESSMENT_EXPIRING = "assessment_expiring"
ASSESSMENT_EXPIRED = "assessment_expired"


@dataclass(frozen=True)
class HoldingFact:
    holding_id: str
    product_id: str
    category: str
    amount: float
    matures_on: date | None


@dataclass(frozen=True)
class Trigger:
    kind: str
    on: date | None
    amount: float = 0.0
    product_id: str = ""
    category: str = ""


@dataclass(frozen=True)
class Windows:
    maturity_days: int = 30
    birthday_days: int = 7
    assessment_warning_days: int = 30
    idle_balance: float = 500_000.0


def birthday_in(year: int, birthday: date) -> date:
    if birthday.month == 2 and birthday.day == 29:
        try:
            return date(year, 2, 29)
        except ValueError:
            return date(year, 2, 28)
    return birthday.replace(year=year)


def next_birthday(birthday: date, today: date) -> date:
    this_year = birthday_in(today.year, birthday)
    return this_year if this_year >= today else birthday_in(today.year + 1, birthday)


def within(day: date, today: date, days: int) -> bool:
    """``day`` falls in the ``days`` calendar days starting today."""
    return today <= day < today + timedelta(days=days)


def maturities(holdings: list[HoldingFact], today: date, days: int) -> list[Trigger]:
    due = [h for h in holdings if h.matures_on is not None and within(h.matures_on, today, days + 1)]
    due.sort(key=lambda h: (h.matures_on or today, -h.amount))
    return [Trigger(MATURITY, h.matures_on, h.amount, h.product_id, h.category) for h in due]


def birthday_trigger(birthday: date | None, today: date, days: int) -> list[Trigger]:
    if birthday is None:
        return []
    upcoming = next_birthday(birthday, today)
    return [Trigger(BIRTHDAY, upcoming)] if within(upcoming, today, days) else []


def assessment_trigger(expires_on: date | None, today: date, warning_days: int) -> list[Trigger]:
    if expires_on is None or today > expires_on:
        return [Trigger(ASSESSMENT_EXPIRED, expires_on)]
    if within(expires_on, today, warning_days + 1):
        return [Trigger(ASSESSMENT_EXPIRING, expires_on)]
    return []


def idle_trigger(current_balance: float, threshold: float) -> list[Trigger]:
    return [Trigger(IDLE_BALANCE, None, current_balance)] if current_balance >= threshold else []


def life_events(
    holdings: list[HoldingFact],
    *,
    current_balance: float,
    birthday: date | None,
    assessment_expires_on: date | None,
    today: date,
    windows: Windows,
) -> list[Trigger]:
    """Every event worth raising today, most pressing first."""
    return (
        assessment_trigger(assessment_expires_on, today, windows.assessment_warning_days)
        + maturities(holdings, today, windows.maturity_days)
        + idle_trigger(current_balance, windows.idle_balance)
        + birthday_trigger(birthday, today, windows.birthday_days)
    )
