"""Suitability rules (pure): may this product be offered to this customer today?

Regulation first: a product is never offered to a customer whose risk level is
below the product's risk rating, whose risk assessment has expired, or who is
outside the product's sales window or minimum amount.  The recommender filters
with :func:`unsuitability` before it ranks anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

CUSTOMER_LEVELS = ("C1", "C2", "C3", "C4", "C5")
PRODUCT_RATINGS = ("R1", "R2", "R3", "R4", "R5")

# Reason codes, in the order the rules are checked.
ASSESSMENT_MISSING = "assessment_missing"
ASSESSMENT_EXPIRED = "assessment_expired"
RISK_TOO_HIGH = "risk_too_high"
NOT_ON_SALE = "not_on_sale"
BELOW_MINIMUM = "below_minimum"


@dataclass(frozen=True)
class RiskProfile:
    level: str  # C1 (most conservative) .. C5
    expires_on: date | None  # last day the assessment is valid


@dataclass(frozen=True)
class Terms:
    product_id: str
    risk_rating: str  # R1 (lowest risk) .. R5
    min_amount: float
    sale_from: date | None  # None: no start
    sale_until: date | None  # None: open-ended


def level_number(level: str) -> int:
    """C1..C5 -> 1..5; raises ValueError for anything else."""
    return CUSTOMER_LEVELS.index(level) + 1


def rating_number(rating: str) -> int:
    """R1..R5 -> 1..5; raises ValueError for anything else."""
    return PRODUCT_RATINGS.index(rating) + 1


def assessment_valid(profile: RiskProfile, today: date) -> bool:
    """Valid through its expiry date, expired from the day after."""
    return profile.expires_on is not None and today <= profile.expires_on


def on_sale(terms: Terms, today: date) -> bool:
    started = terms.sale_from is None or terms.sale_from <= today
    return started and (terms.sale_until is None or today <= terms.sale_until)


def unsuitability(profile: RiskProfile, terms: Terms, today: date, investable: float) -> str | None:
    """The first rule the offer breaks (a reason code), or None when it may be offered."""
    if profile.expires_on is None:
        return ASSESSMENT_MISSING
    if not assessment_valid(profile, today):
        return ASSESSMENT_EXPIRED
    if rating_number(terms.risk_rating) > level_number(profile.level):
        return RISK_TOO_HIGH
    if not on_sale(terms, today):
        return NOT_ON_SALE
    if investable < terms.min_amount:
        return BELOW_MINIMUM
    return None


def suitable(profile: RiskProfile, terms: Terms, today: date, investable: float) -> bool:
    return unsuitability(profile, terms, today, investable) is None
