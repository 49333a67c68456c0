"""Fictional sample cards of all four types, valid as of a given day, for the simulator.

The people are invented; the numbers carry correct check digits and the dates
are consistent with the validity rules, so a sample card passes validation
unless a test breaks it on purpose.  Photos are drawn (no real faces) unless
the caller passes image bytes, e.g. a face photo loaded at run time.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

from edge.core.idcard_rules import add_years, mod11_2_check_char
from ui.devices.idcard.card import IdCard


def with_check(first17: str) -> str:
    return first17 + mod11_2_check_char(first17)


def _validity(today: dt.date, years: int | None) -> tuple[str, str]:
    start = today - dt.timedelta(days=400)
    end = "长期" if years is None else add_years(start, years)[0].strftime("%Y%m%d")
    return start.strftime("%Y%m%d"), end


def sample_cards(today: dt.date) -> list[IdCard]:
    """Resident (male, and a leap-day female), HK permit, foreigner 2017 and 2023."""
    resident_from, resident_to = _validity(today, 20)
    young_from, young_to = _validity(today, 10)
    permit_from, permit_to = _validity(today, 5)
    foreign_from, foreign_to = _validity(today, 10)
    young_birth = "20040229"  # age 16-25 at issue for any day after 2020
    return [
        IdCard(" ", "张伟", "1", "19800315", with_check("11010519800315001"), resident_from, resident_to,
               nation_code="01", address="北京市朝阳区示例路1号", authority="北京市公安局朝阳分局"),
        IdCard(" ", "李娜", "2", young_birth, with_check(f"440305{young_birth}002"), young_from, young_to,
               nation_code="05", address="广东省深圳市南山区示例街2号", authority="深圳市公安局南山分局"),
        IdCard("J", "陈家明", "1", "19850720", with_check("81000019850720003"), permit_from, permit_to,
               address="广东省深圳市福田区示例大道3号", authority="深圳市公安局",
               pass_number="H12345678", issue_count="01"),
        IdCard("I", "阿丽雅", "2", "19901231", "KAZ110090123105", foreign_from, foreign_to,
               name_en="ABAY ALIYA", nationality="KAZ", card_version="01", authority="1100"),
        IdCard("Y", "史密斯", "1", "19881231", with_check("91139819881231001"), foreign_from, foreign_to,
               name_en="SMITH JOHN ALEXANDER", nationality="398", renewal_count="00"),
    ]


def synthetic_face(seed: int, width: int = 102, height: int = 126) -> bytes:
    """A drawn face-like PNG (not a person), different for every seed."""
    import cv2  # noqa: PLC0415 - OpenCV only for sample photos
    import numpy as np  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), 235, np.uint8)
    skin = tuple(int(v) for v in rng.integers(120, 220, 3))
    center = (width // 2, height // 2 + 5)
    cv2.ellipse(image, center, (30 + seed % 7, 40 + seed % 5), 0, 0, 360, skin, -1)
    for dx in (-12, 12):
        cv2.circle(image, (center[0] + dx, center[1] - 10), 4, (40, 40, 40), -1)
    cv2.ellipse(image, (center[0], center[1] + 18), (10, 4), 0, 0, 180, (60, 60, 150), 2)
    ok, encoded = cv2.imencode(".png", image)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return bytes(encoded.tobytes())


def card_entry(card: IdCard, photo: str | None) -> dict[str, Any]:
    skip = {"photo_wlt", "photo_jpeg", "photo_error", "fingerprint"}
    entry = {f.name: v for f in fields(card) if f.name not in skip and (v := asdict(card)[f.name])}
    entry.pop("card_type", None)
    entry["type"] = card.kind.name if card.kind is not None else card.card_type
    if photo:
        entry["photo"] = photo
    return entry


def write_deck(directory: Path, cards: list[IdCard], photos: list[bytes] | None = None,
               faults: dict[str, float] | None = None, remove_after: float = 0.3) -> Path:
    """Write a simulator card file (JSON) and its photos into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    entries = []
    for i, card in enumerate(cards):
        image = photos[i] if photos and i < len(photos) else synthetic_face(i)
        suffix = ".jpg" if image[:3] == b"\xff\xd8\xff" else ".png"
        (directory / f"card{i}{suffix}").write_bytes(image)
        entries.append(card_entry(card, f"card{i}{suffix}"))
    path = directory / "cards.json"
    deck = {"reader": {"remove_after": remove_after}, "faults": faults or {}, "cards": entries}
    path.write_text(json.dumps(deck, ensure_ascii=False, indent=2), encoding="utf-8")
    return path
