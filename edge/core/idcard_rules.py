"""Validation rules for the documents read at the counter (pure: no I/O).

Both the PAD (right after the chip is read) and the edge (before it decides an
authorization) run these rules, so they live in the pure core where both can
import them.  Sources: GB 11643-1999 (citizen number), the Resident ID Law
Art. 5 (validity classes), the 2023 foreigner-card rules and common practice
for the 2017 card and the HK/Macau/Taiwan residence permit; see
``docs/readme/idcard-reader.md`` for what is and is not checked.

Every failure is a :class:`CardProblem` with a stable ``code`` (for reports
and policies) and a message a teller understands, in zh-CN and English.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal, Protocol, TypedDict

Severity = Literal["error", "warning"]

LONG_TERM = "长期"

# Card-type flags at byte 248 of the text block.
RESIDENT = " "
GAT_PERMIT = "J"
FOREIGN_2017 = "I"
FOREIGN_2023 = "Y"


@dataclass(frozen=True)
class CardKind:
    """One kind of chip card.  :data:`CARD_KINDS` is the one table of card types: the
    reader's parser, the PAD's screens, the simulator's card files, the MQTT contract's
    ``CardFields.card_type`` and the edge's rules all derive from it."""

    flag: str  # the character at byte 248 of the chip's text block
    name: str  # its name on the wire (CardFields.card_type) and in simulator card files
    title_zh: str
    title_en: str
    validity_years: tuple[int, ...]  # validity periods the law allows (a resident card may be 长期)


CARD_KINDS: tuple[CardKind, ...] = (
    CardKind(RESIDENT, "resident", "居民身份证", "Resident ID card", (5, 10, 20)),
    CardKind(GAT_PERMIT, "gat_permit", "港澳台居民居住证", "HK/Macau/Taiwan residence permit", (5,)),
    CardKind(FOREIGN_2017, "foreigner_2017", "外国人永久居留身份证（2017版）",
             "Foreigner permanent residence card (2017)", (5, 10)),
    CardKind(FOREIGN_2023, "foreigner_2023", "外国人永久居留身份证（2023版）",
             "Foreigner permanent residence card (2023)", (5, 10)),
)
KIND_BY_FLAG: dict[str, CardKind] = {kind.flag: kind for kind in CARD_KINDS}
KIND_BY_NAME: dict[str, CardKind] = {kind.name: kind for kind in CARD_KINDS}
CARD_TYPES = tuple(KIND_BY_FLAG)

_WEIGHTS_11_2 = tuple(pow(2, 17 - i, 11) for i in range(17))
_CHECK_CHARS = "10X98765432"
# GB/T 2260 province-level codes (first two digits of the address code).
PROVINCES = frozenset({
    "11", "12", "13", "14", "15", "21", "22", "23", "31", "32", "33", "34", "35", "36", "37",
    "41", "42", "43", "44", "45", "46", "50", "51", "52", "53", "54", "61", "62", "63", "64",
    "65", "71", "81", "82", "83",
})
GAT_PREFIXES = ("810000", "820000", "830000")

# GB 3304-1991 ethnic groups, plus 97/98.
ETHNICITIES: dict[str, str] = {
    "01": "汉", "02": "蒙古", "03": "回", "04": "藏", "05": "维吾尔", "06": "苗", "07": "彝", "08": "壮",
    "09": "布依", "10": "朝鲜", "11": "满", "12": "侗", "13": "瑶", "14": "白", "15": "土家", "16": "哈尼",
    "17": "哈萨克", "18": "傣", "19": "黎", "20": "傈僳", "21": "佤", "22": "畲", "23": "高山", "24": "拉祜",
    "25": "水", "26": "东乡", "27": "纳西", "28": "景颇", "29": "柯尔克孜", "30": "土", "31": "达斡尔",
    "32": "仫佬", "33": "羌", "34": "布朗", "35": "撒拉", "36": "毛南", "37": "仡佬", "38": "锡伯",
    "39": "阿昌",
    "40": "普米", "41": "塔吉克", "42": "怒", "43": "乌孜别克", "44": "俄罗斯", "45": "鄂温克", "46": "德昂",
    "47": "保安", "48": "裕固", "49": "京", "50": "塔塔尔", "51": "独龙", "52": "鄂伦春", "53": "赫哲",
    "54": "门巴", "55": "珞巴", "56": "基诺", "97": "其他", "98": "外国血统中国籍人士",
}
GENDERS = {"0": "未知的性别", "1": "男", "2": "女", "9": "未说明的性别"}

_MESSAGES: dict[str, tuple[str, str]] = {
    "card_type_unknown": ("无法识别的证件类型", "The card type is not recognised"),
    "name_missing": ("证件上没有姓名", "The card has no name"),
    "gender_invalid": ("性别代码无效", "The gender code on the card is invalid"),
    "nation_unknown": ("民族代码无效", "The ethnicity code on the card is invalid"),
    "id_format": ("证件号码格式不正确", "The ID number has the wrong format"),
    "id_check_digit": ("证件号码校验位错误，号码可能被篡改或读错",
                       "The ID number's check digit is wrong: the number was altered or misread"),
    "id_region": ("证件号码的地区代码无效", "The ID number's region code is not valid"),
    "id_birth_invalid": ("证件号码中的出生日期不存在", "The birth date inside the ID number does not exist"),
    "id_birth_mismatch": ("证件号码中的出生日期与卡面出生日期不一致",
                          "The birth date inside the ID number differs from the card's birth date"),
    "id_gender_mismatch": ("证件号码的性别位与卡面性别不一致",
                           "The ID number's gender digit differs from the card's gender"),
    "id_not_citizen": ("该号码不是居民身份证号码（港澳台或外国人号码）",
                       "The number is not a citizen ID number (it is a permit or foreigner number)"),
    "birth_invalid": ("出生日期无效", "The birth date is not a valid date"),
    "birth_future": ("出生日期在今天之后", "The birth date is in the future"),
    "validity_format": ("有效期限格式不正确", "The validity dates have the wrong format"),
    "validity_order": ("有效期起始日期不早于截止日期", "The validity start date is not before the end date"),
    "not_yet_valid": ("证件尚未生效", "The card is not valid yet"),
    "expired": ("证件已过有效期", "The card has expired"),
    "validity_period": ("有效期长度不符合规定",
                        "The validity period is not one of the lengths the law allows"),
    "validity_age_class": ("有效期长度与签发时年龄不符，请人工核对",
                           "The validity period does not fit the holder's age at issue; check by eye"),
}


@dataclass(frozen=True)
class CardProblem:
    """One failed rule: ``code`` for machines, messages for the teller."""

    code: str
    message_zh: str
    message_en: str
    severity: Severity = "error"

    def message(self, lang: str = "zh-CN") -> str:
        return self.message_en if lang.startswith("en") else self.message_zh


def problem(code: str, severity: Severity = "error") -> CardProblem:
    zh, en = _MESSAGES[code]
    return CardProblem(code, zh, en, severity)


@dataclass(frozen=True)
class CardFacts:
    """The card model: the fields every kind of card has and the rules look at (strings
    as printed on the card).  The PAD's ``IdCard`` is a CardFacts with what else the chip
    holds; the MQTT contract's ``CardFields`` is its wire form (:func:`wire_fields`,
    :func:`facts_from_wire`).

    ``card_type`` is the flag (:data:`CARD_KINDS`); ``gender`` is the GB/T 2261.1 code
    ('1' male, '2' female); dates are YYYYMMDD, ``valid_to`` may be "长期";
    ``nation_code`` only for resident cards; ``name_en`` only on foreigner cards.
    """

    card_type: str
    name: str
    gender: str
    birth: str
    id_number: str
    valid_from: str
    valid_to: str
    nation_code: str = ""
    name_en: str = ""

    @property
    def kind(self) -> CardKind | None:
        return KIND_BY_FLAG.get(self.card_type)

    @property
    def display_name(self) -> str:
        """The name to show and send: the Chinese name, else the English one."""
        return self.name or self.name_en

    def facts(self) -> CardFacts:
        """Just these fields (a subclass's extras, photos included, left behind)."""
        return CardFacts(**{f.name: getattr(self, f.name) for f in dataclasses.fields(CardFacts)})

    def __repr__(self) -> str:  # never print a full ID number or a name by accident
        return f"{type(self).__name__}(type={self.card_type!r}, id={mask_id_number(self.id_number)})"


# --- the wire form ------------------------------------------------------------
#
# The MQTT contract (mqtt.messages.CardFields) cannot import edge, so the mapping is
# written here against its shape; a unit test keeps the two in step.

class WireCardFields(TypedDict):
    """Keyword arguments of ``mqtt.messages.CardFields``."""

    card_type: str
    id_number: str
    name: str
    birth_date: dt.date | None
    valid_from: dt.date | None
    valid_until: dt.date | None
    gender: str
    nation_code: str


class WireCard(Protocol):
    """What :func:`facts_from_wire` reads (``mqtt.messages.CardFields`` has this shape)."""

    @property
    def card_type(self) -> str: ...
    @property
    def id_number(self) -> str: ...
    @property
    def name(self) -> str: ...
    @property
    def birth_date(self) -> dt.date | None: ...
    @property
    def valid_from(self) -> dt.date | None: ...
    @property
    def valid_until(self) -> dt.date | None: ...
    @property
    def gender(self) -> str: ...
    @property
    def nation_code(self) -> str: ...


def wire_fields(facts: CardFacts, name_max: int | None = None) -> WireCardFields:
    """The card as the request carries it: the kind's name, dates as dates (none for
    "长期"), the display name cut to ``name_max`` characters."""
    kind = facts.kind
    return WireCardFields(
        card_type=kind.name if kind is not None else facts.card_type,
        id_number=facts.id_number,
        name=facts.display_name[:name_max],
        birth_date=parse_date(facts.birth),
        valid_from=parse_date(facts.valid_from),
        valid_until=parse_date(facts.valid_to),
        gender=facts.gender,
        nation_code=facts.nation_code,
    )


def facts_from_wire(card: WireCard) -> CardFacts:
    """The request's card in the shape the rules read.  A missing gender is read from
    the number's 17th digit; no end date with a start date is "长期"."""
    number = card.id_number.strip()
    gender = card.gender or ("1" if number[16:17].isdigit() and int(number[16]) % 2 else "2")
    kind = KIND_BY_NAME.get(card.card_type)
    return CardFacts(
        card_type=kind.flag if kind is not None else card.card_type,
        name=card.name,
        gender=gender,
        birth=card.birth_date.strftime("%Y%m%d") if card.birth_date else "",
        id_number=number,
        valid_from=card.valid_from.strftime("%Y%m%d") if card.valid_from else "",
        valid_to=card.valid_until.strftime("%Y%m%d") if card.valid_until else LONG_TERM,
        nation_code=card.nation_code,
    )


# --- numbers -----------------------------------------------------------------

def mod11_2_check_char(first17: str) -> str:
    """ISO 7064 MOD 11-2 check character of 17 digits (GB 11643)."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError("need exactly 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, _WEIGHTS_11_2, strict=True))
    return _CHECK_CHARS[total % 11]


def upgrade_legacy_id(number15: str) -> str:
    """15-digit (1980s-1990s) number -> 18 digits: insert '19', append the check."""
    if not re.fullmatch(r"\d{15}", number15):
        raise ValueError("a legacy ID number has exactly 15 digits")
    first17 = number15[:6] + "19" + number15[6:]
    return first17 + mod11_2_check_char(first17)


def normalize_id_number(number: str) -> str:
    """The form used to compare numbers: trimmed, 'x' -> 'X', 15 digits upgraded."""
    cleaned = number.strip().upper()
    if re.fullmatch(r"\d{15}", cleaned):
        return upgrade_legacy_id(cleaned)
    return cleaned


def parse_date(text: str) -> dt.date | None:
    """YYYYMMDD -> date, or None when it is not a real calendar date."""
    if not re.fullmatch(r"\d{8}", text):
        return None
    try:
        return dt.date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


def _mod11_problems(number: str) -> list[CardProblem]:
    if not re.fullmatch(r"\d{17}[\dX]", number):
        return [problem("id_format")]
    if mod11_2_check_char(number[:17]) != number[17]:
        return [problem("id_check_digit")]
    return []


def _embedded_birth_and_gender(number: str, birth: str, gender: str) -> list[CardProblem]:
    """Digits 7-14 are the birth date and digit 17's parity the gender (all 18-char forms)."""
    problems: list[CardProblem] = []
    embedded = number[6:14]
    if parse_date(embedded) is None:
        problems.append(problem("id_birth_invalid"))
    elif embedded != birth:
        problems.append(problem("id_birth_mismatch"))
    if gender in ("1", "2") and int(number[16]) % 2 != (1 if gender == "1" else 0):
        problems.append(problem("id_gender_mismatch"))
    return problems


def check_citizen_number(number: str, birth: str, gender: str) -> list[CardProblem]:
    """GB 11643 checks of a resident card's number against its birth and gender fields."""
    number = normalize_id_number(number)
    problems = _mod11_problems(number)
    if problems:
        return problems
    if number.startswith(("81", "82", "83", "9")):
        return [problem("id_not_citizen")]
    if number[:2] not in PROVINCES:
        problems.append(problem("id_region"))
    return problems + _embedded_birth_and_gender(number, birth, gender)


def check_gat_number(number: str, birth: str, gender: str) -> list[CardProblem]:
    """HK/Macau/Taiwan residence permit: 810000/820000/830000 + birth + seq + MOD 11-2."""
    number = number.strip().upper()
    problems = _mod11_problems(number)
    if problems:
        return problems
    if not number.startswith(GAT_PREFIXES):
        return [problem("id_region")]
    return _embedded_birth_and_gender(number, birth, gender)


def check_foreigner_2023_number(number: str, birth: str, gender: str) -> list[CardProblem]:
    """2023 foreigner card: '9' + province + ISO numeric nationality + birth + seq + MOD 11-2."""
    number = number.strip().upper()
    problems = _mod11_problems(number)
    if problems:
        return problems
    if not number.startswith("9") or number[1:3] not in PROVINCES:
        return [problem("id_region")]
    return _embedded_birth_and_gender(number, birth, gender)


def icao_check_digit(text: str) -> int:
    """ICAO 9303 7-3-1 check digit: digits, A=10..Z=35, '<'=0."""
    total = 0
    for i, ch in enumerate(text):
        if ch.isdigit():
            value = int(ch)
        elif "A" <= ch <= "Z":
            value = ord(ch) - ord("A") + 10
        elif ch == "<":
            value = 0
        else:
            raise ValueError(f"character {ch!r} is not allowed in a check-digit field")
        total += value * (7, 3, 1)[i % 3]
    return total % 10


def check_foreigner_2017_number(number: str, birth: str) -> list[CardProblem]:
    """2017 foreigner card: 3 letters + 4-digit place + YYMMDD + gender digit + check.

    The 7-3-1 check digit is what public code uses, not confirmed from the
    official rules, so a mismatch is a warning, not an error.
    """
    number = number.strip().upper()
    if not re.fullmatch(r"[A-Z]{3}\d{12}", number):
        return [problem("id_format")]
    problems: list[CardProblem] = []
    if icao_check_digit(number[:14]) != int(number[14]):
        problems.append(problem("id_check_digit", "warning"))
    if birth[2:] != number[7:13]:
        problems.append(problem("id_birth_mismatch"))
    return problems


def check_number(facts: CardFacts) -> list[CardProblem]:
    if facts.card_type == RESIDENT:
        return check_citizen_number(facts.id_number, facts.birth, facts.gender)
    if facts.card_type == GAT_PERMIT:
        return check_gat_number(facts.id_number, facts.birth, facts.gender)
    if facts.card_type == FOREIGN_2023:
        return check_foreigner_2023_number(facts.id_number, facts.birth, facts.gender)
    if facts.card_type == FOREIGN_2017:
        return check_foreigner_2017_number(facts.id_number, facts.birth)
    return [problem("card_type_unknown")]


# --- dates -------------------------------------------------------------------

def add_years(start: dt.date, years: int) -> tuple[dt.date, ...]:
    """Dates ``years`` after ``start``; a 29 February start allows 28 Feb or 1 Mar."""
    try:
        return (start.replace(year=start.year + years),)
    except ValueError:
        year = start.year + years
        return (dt.date(year, 2, 28), dt.date(year, 3, 1))


def age_on(birth: dt.date, day: dt.date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def expected_years(card_type: str, age: int) -> int | None:
    """Validity class by age at issue (None = long-term); Resident ID Law Art. 5."""
    if card_type == RESIDENT:
        if age < 16:
            return 5
        if age <= 25:
            return 10
        return 20 if age <= 45 else None
    if card_type in (FOREIGN_2017, FOREIGN_2023):
        return 10 if age >= 18 else 5
    return 5


def _period_problems(facts: CardFacts, start: dt.date, end: dt.date | None) -> list[CardProblem]:
    allowed = facts.kind.validity_years if facts.kind is not None else ()
    years = None
    if end is not None:
        matches = [y for y in allowed if end in add_years(start, y)]
        if not matches:
            severity: Severity = "error" if facts.card_type == RESIDENT else "warning"
            return [problem("validity_period", severity)]
        years = matches[0]
    elif facts.card_type != RESIDENT:
        return [problem("validity_period")]
    birth = parse_date(facts.birth)
    if birth is None or birth > start:
        return []
    if expected_years(facts.card_type, age_on(birth, start)) != years:
        return [problem("validity_age_class", "warning")]
    return []


def check_validity(facts: CardFacts, today: dt.date) -> list[CardProblem]:
    """Start before end, started, not expired, '长期' handled, period fits the age at issue."""
    start = parse_date(facts.valid_from)
    long_term = facts.valid_to.strip() == LONG_TERM
    end = None if long_term else parse_date(facts.valid_to)
    if start is None or (end is None and not long_term):
        return [problem("validity_format")]
    if end is not None and end <= start:
        return [problem("validity_order")]
    problems: list[CardProblem] = []
    if start > today:
        problems.append(problem("not_yet_valid"))
    if end is not None and end < today:
        problems.append(problem("expired"))
    return problems + _period_problems(facts, start, end)


def check_person(facts: CardFacts, today: dt.date) -> list[CardProblem]:
    problems: list[CardProblem] = []
    if not facts.display_name.strip():
        problems.append(problem("name_missing"))
    if facts.gender not in ("1", "2"):
        problems.append(problem("gender_invalid"))
    if facts.card_type == RESIDENT and facts.nation_code not in ETHNICITIES:
        problems.append(problem("nation_unknown"))
    birth = parse_date(facts.birth)
    if birth is None:
        problems.append(problem("birth_invalid"))
    elif birth > today:
        problems.append(problem("birth_future"))
    return problems


def validate_facts(facts: CardFacts, today: dt.date) -> list[CardProblem]:
    """All rules for one card; an empty list means the card passed."""
    if facts.card_type not in CARD_TYPES:
        return [problem("card_type_unknown")]
    return check_person(facts, today) + check_number(facts) + check_validity(facts, today)


def has_errors(problems: list[CardProblem]) -> bool:
    return any(p.severity == "error" for p in problems)


def mask_id_number(number: str) -> str:
    """First 6 and last 4 characters shown (JR/T 0171 style), the rest '*'."""
    number = number.strip()
    if len(number) <= 10:
        return "*" * len(number)
    return number[:6] + "*" * (len(number) - 10) + number[-4:]
