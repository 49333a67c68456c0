"""The 256-byte text block of the four chip cards, parsed into one :class:`IdCard`.

The block is UCS-2 little-endian, padded with spaces; the card-type flag is the
character at byte 248: ' ' resident ID card, 'J' HK/Macau/Taiwan residence
permit, 'I' foreigner permanent residence card (2017), 'Y' the same (2023).
The layouts differ per flag (see ``docs/readme/idcard-reader.md``), so the
parser always branches on the flag and refuses anything it cannot fill
completely: a card is either whole or an error, never half filled.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from edge.core import idcard_rules as rules
from edge.core.errors import BranchEdgeError

TEXT_LEN = 256
FLAG_OFFSET = 248

# (field, byte offset, byte length) per card type; offsets from GA 490 and the
# 2018/2017/2023 machine-readable rules (docs/readme/idcard-reader.md).
_COMMON_TAIL = (("id_number", 122, 36), ("authority", 158, 30), ("valid_from", 188, 16),
                ("valid_to", 204, 16))
LAYOUTS: dict[str, tuple[tuple[str, int, int], ...]] = {
    rules.RESIDENT: (("name", 0, 30), ("gender", 30, 2), ("nation_code", 32, 4), ("birth", 36, 16),
                     ("address", 52, 70), *_COMMON_TAIL),
    rules.GAT_PERMIT: (("name", 0, 30), ("gender", 30, 2), ("birth", 36, 16), ("address", 52, 70),
                       *_COMMON_TAIL, ("pass_number", 220, 18), ("issue_count", 238, 4)),
    rules.FOREIGN_2017: (("name_en", 0, 120), ("gender", 120, 2), ("id_number", 122, 30),
                         ("nationality", 152, 6), ("name", 158, 30), ("valid_from", 188, 16),
                         ("valid_to", 204, 16), ("birth", 220, 16), ("card_version", 236, 4),
                         ("authority", 240, 8)),
    rules.FOREIGN_2023: (("name", 0, 30), ("gender", 30, 2), ("renewal_count", 32, 4), ("birth", 36, 16),
                         ("name_en", 52, 70), ("id_number", 122, 36), ("valid_from", 188, 16),
                         ("valid_to", 204, 16), ("name_en_2", 220, 22), ("nationality", 242, 6)),
}
# The fields that must be present for a card to count as read.
REQUIRED = ("gender", "birth", "id_number", "valid_from", "valid_to")
_SHAPES = {
    "gender": r"\d",
    "birth": r"\d{8}",
    "valid_from": r"\d{8}",
    "valid_to": r"\d{8}|长期",
    "nation_code": r"\d{2}",
    "issue_count": r"\d{0,2}",
    "renewal_count": r"\d{0,2}",
}


class CardReadError(BranchEdgeError):
    """The reader or card could not produce a whole card.

    ``code`` is a stable reason (``no_card``, ``timeout``, ``bad_text``, a status
    name such as ``read_failed``...) and the message says what the teller can do.
    """

    def __init__(self, message: str, code: str = "bad_text") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, repr=False)
class IdCard(rules.CardFacts):
    """One chip card, whatever its type: the card model of the rules (``CardFacts``:
    type, names, gender, dates, number, ethnicity) plus what else the chip holds.
    Text fields are stripped strings.

    ``photo_wlt`` is the card's encrypted photo exactly as read; ``photo_jpeg``
    is the decoded photo when a decoder is configured.  ``fingerprint`` is passed
    through only and must never be stored (it is left out of ``to_dict``).
    """

    address: str = ""
    authority: str = ""
    nationality: str = ""
    pass_number: str = ""
    issue_count: str = ""
    renewal_count: str = ""
    card_version: str = ""
    appended_address: str = ""
    photo_wlt: bytes = field(default=b"", repr=False)
    photo_jpeg: bytes | None = field(default=None, repr=False)
    photo_error: str = ""
    fingerprint: bytes = field(default=b"", repr=False)

    @property
    def type_name(self) -> str:
        return self.kind.title_zh if self.kind is not None else "未知"

    @property
    def type_name_en(self) -> str:
        return self.kind.title_en if self.kind is not None else "unknown"

    @property
    def nation(self) -> str:
        return rules.ETHNICITIES.get(self.nation_code, "")

    @property
    def masked_id(self) -> str:
        return rules.mask_id_number(self.id_number)

    def problems(self, today: dt.date | None = None) -> list[rules.CardProblem]:
        return rules.validate_facts(self.facts(), today or dt.date.today())

    def with_photo(self, jpeg: bytes | None, error: str = "") -> IdCard:
        return replace(self, photo_jpeg=jpeg, photo_error=error)

    def to_dict(self) -> dict[str, Any]:
        """Text fields for JSON (no photo bytes, no fingerprint)."""
        skip = {"photo_wlt", "photo_jpeg", "fingerprint"}
        out: dict[str, Any] = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in skip}
        out.update(type_name=self.type_name, type_name_en=self.type_name_en, nation=self.nation,
                   has_photo=self.photo_jpeg is not None, photo_wlt_bytes=len(self.photo_wlt))
        return out


TEXT_FIELDS = frozenset(f.name for f in fields(IdCard) if f.type == "str")


def card_from_text(values: Mapping[str, str], *, photo_wlt: bytes = b"", fingerprint: bytes = b"") -> IdCard:
    """An IdCard from its text fields by name; TypeError for a name that is not one."""
    unknown = sorted(set(values) - TEXT_FIELDS)
    if unknown:
        raise TypeError(f"not a text field of the card: {', '.join(unknown)}")
    text: dict[str, Any] = dict(values)  # every value a str (see above); Any only to pass them beside bytes
    return IdCard(photo_wlt=photo_wlt, fingerprint=fingerprint, **text)


def _decode_ucs2(block: bytes) -> str:
    try:
        text = block.decode("utf-16-le")
    except UnicodeDecodeError as exc:
        raise CardReadError("the card text is not valid UCS-2 (read it again)") from exc
    if any(ord(ch) < 0x20 and ch not in "\x00" for ch in text):
        raise CardReadError("the card text contains control characters (read it again)")
    return text.replace("\x00", " ").strip()


def _card_type(text: bytes) -> str:
    flag = text[FLAG_OFFSET:FLAG_OFFSET + 2].decode("utf-16-le", errors="replace")
    if flag not in rules.KIND_BY_FLAG:
        raise CardReadError(f"unknown card type flag {flag!r} at byte 248", "card_type_unknown")
    return flag


def parse_text(text: bytes) -> dict[str, str]:
    """Field values of one text block; CardReadError unless every field is well formed."""
    if len(text) != TEXT_LEN:
        raise CardReadError(f"the text block has {len(text)} bytes, expected {TEXT_LEN}")
    card_type = _card_type(text)
    values = {name: _decode_ucs2(text[off:off + size]) for name, off, size in LAYOUTS[card_type]}
    if card_type == rules.FOREIGN_2023:
        # One name in two places: join the raw halves so a space at the split survives.
        values.pop("name_en_2")
        values["name_en"] = _decode_ucs2(text[52:122] + text[220:242])
    for name in REQUIRED:
        if not values.get(name):
            raise CardReadError(f"the card has no {name.replace('_', ' ')} (read it again)")
    for name, shape in _SHAPES.items():
        if name in values and not re.fullmatch(shape, values[name]):
            raise CardReadError(f"the {name.replace('_', ' ')} field is malformed (read it again)")
    if not (values.get("name") or values.get("name_en")):
        raise CardReadError("the card has no name (read it again)")
    values["card_type"] = card_type
    return values


def card_from_blocks(text: bytes, photo: bytes = b"", fingerprint: bytes = b"") -> IdCard:
    """An IdCard from the raw blocks of a read (photo not yet decoded)."""
    return card_from_text(parse_text(text), photo_wlt=bytes(photo), fingerprint=bytes(fingerprint))


def encode_text(card: IdCard) -> bytes:
    """The 256-byte text block for ``card`` (used by the simulator and tests)."""
    block = bytearray(" ".encode("utf-16-le") * (TEXT_LEN // 2))
    values = {f.name: getattr(card, f.name) for f in fields(card)}
    if card.card_type == rules.FOREIGN_2023:
        values["name_en"], values["name_en_2"] = card.name_en[:35], card.name_en[35:]
    for name, off, size in LAYOUTS[card.card_type]:
        raw = str(values[name]).encode("utf-16-le")
        if len(raw) > size:
            raise ValueError(f"{name} is longer than its {size // 2} characters")
        block[off:off + len(raw)] = raw
    block[FLAG_OFFSET:FLAG_OFFSET + 2] = card.card_type.encode("utf-16-le")
    return bytes(block)
