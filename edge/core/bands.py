"""Amounts shown to RMs and customers are rounded to bands (pure)."""

from __future__ import annotations

# Upper bounds in CNY; the last band is open-ended.
BOUNDS = (50_000, 200_000, 500_000, 1_000_000, 3_000_000, 6_000_000, 10_000_000)
_ZH = ("5万以下", "5万-20万", "20万-50万", "50万-100万", "100万-300万", "300万-600万", "600万-1000万",
       "1000万以上")
_EN = ("under 50k", "50k-200k", "200k-500k", "500k-1M", "1M-3M", "3M-6M", "6M-10M", "10M+")
BANDS = {"zh-CN": _ZH, "en": _EN}


def band_index(amount: float) -> int:
    for i, bound in enumerate(BOUNDS):
        if amount < bound:
            return i
    return len(BOUNDS)


def amount_band(amount: float, language: str = "zh-CN") -> str:
    """The band holding ``amount`` (CNY), in the given language (zh-CN or en)."""
    return BANDS[language][band_index(amount)]


def is_band(text: str) -> bool:
    return any(text in names for names in BANDS.values())
