"""ICAO 9303 machine-readable zone: TD3 (passport, 2x44) and TD1 (ID card, 3x30).

Counter passport readers hand over the MRZ text; :func:`parse_mrz` splits it
into fields and checks every check digit (7-3-1 weights, '<' = 0, A = 10).
A failed check is a problem with a code, like the chip-card rules.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from edge.core.errors import BranchEdgeError
from edge.core.idcard_rules import CardProblem, icao_check_digit

_CHARSET = re.compile(r"[A-Z0-9<]+")
_MESSAGES = {
    "document_number": ("证件号码校验位错误", "The document number's check digit is wrong"),
    "birth_date": ("出生日期校验位错误", "The birth date's check digit is wrong"),
    "expiry_date": ("有效期校验位错误", "The expiry date's check digit is wrong"),
    "personal_number": ("个人号码校验位错误", "The personal number's check digit is wrong"),
    "composite": ("综合校验位错误，机读区可能被篡改或读错",
                  "The composite check digit is wrong: the MRZ was altered or misread"),
}


class MrzError(BranchEdgeError):
    """Text that is not a TD1 or TD3 machine-readable zone."""


@dataclass(frozen=True)
class Mrz:
    format: str
    document_code: str
    issuing_state: str
    document_number: str
    surname: str
    given_names: str
    nationality: str
    birth_date: str  # YYMMDD as printed
    sex: str
    expiry_date: str  # YYMMDD as printed
    optional: str
    problems: list[CardProblem] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        return not self.problems

    def expiry(self) -> dt.date | None:
        """Expiry as a date (YY is 20YY: passports are valid at most 10 years)."""
        try:
            return dt.datetime.strptime("20" + self.expiry_date, "%Y%m%d").date()
        except ValueError:
            return None


def _check(name: str, value: str, digit: str) -> list[CardProblem]:
    if digit == "<" and name == "personal_number" and set(value) <= {"<"}:
        return []
    if not digit.isdigit() or icao_check_digit(value) != int(digit):
        zh, en = _MESSAGES[name]
        return [CardProblem(f"mrz_check_{name}", zh, en)]
    return []


def _names(field_text: str) -> tuple[str, str]:
    surname, _, given = field_text.partition("<<")
    return surname.replace("<", " ").strip(), given.replace("<", " ").strip()


def _document_number(number: str, digit: str, optional: str) -> tuple[str, str, str]:
    """A number longer than 9 characters continues in the optional field after a '<'."""
    if digit == "<" and optional:
        rest = optional.split("<", 1)[0]
        return number + rest[:-1], rest[-1:], optional[len(rest):]
    return number, digit, optional


def _td3(line1: str, line2: str) -> Mrz:
    surname, given = _names(line1[5:44])
    problems = (_check("document_number", line2[0:9], line2[9])
                + _check("birth_date", line2[13:19], line2[19])
                + _check("expiry_date", line2[21:27], line2[27])
                + _check("personal_number", line2[28:42], line2[42])
                + _check("composite", line2[0:10] + line2[13:20] + line2[21:43], line2[43]))
    return Mrz("TD3", line1[0:2].strip("<"), line1[2:5], line2[0:9].strip("<"), surname, given,
               line2[10:13], line2[13:19], line2[20], line2[21:27], line2[28:42].strip("<"), problems)


def _td1(line1: str, line2: str, line3: str) -> Mrz:
    number, digit, optional = _document_number(line1[5:14], line1[14], line1[15:30])
    surname, given = _names(line3)
    problems = (_check("document_number", number, digit) + _check("birth_date", line2[0:6], line2[6])
                + _check("expiry_date", line2[8:14], line2[14])
                + _check("composite", line1[5:30] + line2[0:7] + line2[8:15] + line2[18:29], line2[29]))
    return Mrz("TD1", line1[0:2].strip("<"), line1[2:5], number.strip("<"), surname, given,
               line2[15:18], line2[0:6], line2[7], line2[8:14], optional.strip("<"), problems)


def parse_mrz(text: str) -> Mrz:
    """Parse 2x44 or 3x30 MRZ lines (blank lines and surrounding spaces ignored)."""
    lines = [line.strip().upper() for line in text.strip().splitlines() if line.strip()]
    if not all(_CHARSET.fullmatch(line) for line in lines):
        raise MrzError("the MRZ may only contain A-Z, 0-9 and '<'")
    if len(lines) == 2 and all(len(line) == 44 for line in lines):
        return _td3(*lines)
    if len(lines) == 3 and all(len(line) == 30 for line in lines):
        return _td1(*lines)
    raise MrzError(f"not a TD3 (2x44) or TD1 (3x30) MRZ: got lines of {[len(x) for x in lines]} characters")
