"""Text-block parsing for the four card types, and fuzzing: garbage never yields half a card."""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.core import idcard_rules as rules
from ui.devices.idcard import validate_card
from ui.devices.idcard.card import (
    FLAG_OFFSET,
    LAYOUTS,
    REQUIRED,
    CardReadError,
    IdCard,
    card_from_blocks,
    card_from_text,
    encode_text,
)
from ui.devices.idcard.samples import sample_cards, write_deck
from ui.devices.idcard.simulator import SimulatorError, load_cards

TODAY = dt.date(2026, 6, 1)
CARDS = sample_cards(TODAY)
TEXT_FIELDS = ("card_type", "name", "gender", "birth", "id_number", "valid_from", "valid_to", "nation_code",
               "address", "authority", "name_en", "nationality", "pass_number", "issue_count",
               "renewal_count", "card_version")


def text_fields(card: IdCard) -> dict[str, str]:
    return {name: getattr(card, name) for name in TEXT_FIELDS}


@pytest.mark.parametrize("card", CARDS, ids=lambda c: repr(c.card_type))
def test_each_card_type_round_trips_through_the_text_block(card: IdCard) -> None:
    block = encode_text(card)
    assert len(block) == 256
    assert block[FLAG_OFFSET:FLAG_OFFSET + 2] == card.card_type.encode("utf-16-le")
    parsed = card_from_blocks(block, b"\x01" * 1024)
    assert text_fields(parsed) == text_fields(card)
    assert parsed.photo_wlt == b"\x01" * 1024
    assert validate_card(parsed, TODAY) == []


def test_resident_fields_sit_at_the_ga490_offsets() -> None:
    block = encode_text(CARDS[0])
    assert block[0:4].decode("utf-16-le") == "张伟"
    assert block[30:32].decode("utf-16-le") == "1"
    assert block[32:36].decode("utf-16-le") == "01"
    assert block[36:52].decode("utf-16-le") == "19800315"
    assert block[122:158].decode("utf-16-le") == CARDS[0].id_number
    assert block[248:250] == b" \x00"
    assert card_from_blocks(block).nation == "汉"


def test_2023_foreigner_card_is_not_read_as_a_resident_card() -> None:
    long_name = "WOLFESCHLEGELSTEIN BARTHOLOMEW MAX IMILIAN"  # a space right at the 35-char split
    card = replace(CARDS[4], name_en=long_name)
    block = encode_text(card)
    assert block[52:122].decode("utf-16-le") == long_name[:35]
    parsed = card_from_blocks(block)
    assert parsed.name_en == long_name
    assert parsed.address == ""
    assert parsed.nationality == "398"


def test_2017_foreigner_card_layout() -> None:
    block = encode_text(CARDS[3])
    assert block[0:20].decode("utf-16-le") == "ABAY ALIYA"
    assert block[122:152].decode("utf-16-le") == "KAZ110090123105"
    assert block[158:164].decode("utf-16-le") == "阿丽雅"
    assert block[220:236].decode("utf-16-le") == "19901231"
    assert card_from_blocks(block).nationality == "KAZ"


def test_permit_has_pass_number_and_issue_count() -> None:
    parsed = card_from_blocks(encode_text(CARDS[2]))
    assert (parsed.pass_number, parsed.issue_count) == ("H12345678", "01")
    assert parsed.type_name == "港澳台居民居住证"


def test_a_card_is_built_from_text_fields_only() -> None:
    """A text value never lands in a bytes field (photo, fingerprint): such a name is refused."""
    fields = text_fields(CARDS[0])
    assert text_fields(card_from_text(fields)) == fields
    with pytest.raises(TypeError, match="photo_jpeg"):
        card_from_text({**fields, "photo_jpeg": "not a photo"})


def test_unknown_flag_is_refused() -> None:
    block = bytearray(encode_text(CARDS[0]))
    block[FLAG_OFFSET:FLAG_OFFSET + 2] = "Z".encode("utf-16-le")
    with pytest.raises(CardReadError) as info:
        card_from_blocks(bytes(block))
    assert info.value.code == "card_type_unknown"


@pytest.mark.parametrize(("offset", "value"), [(36, "1980031X"), (122, " " * 18), (188, "2026/1/1"),
                                               (204, "forever!")])
def test_malformed_required_field_is_refused(offset: int, value: str) -> None:
    block = bytearray(encode_text(CARDS[0]))
    block[offset:offset + 2 * len(value)] = value.encode("utf-16-le")
    with pytest.raises(CardReadError):
        card_from_blocks(bytes(block))


def test_long_term_validity_is_parsed() -> None:
    card = replace(CARDS[0], valid_to="长期")
    assert card_from_blocks(encode_text(card)).valid_to == "长期"


def test_json_view_leaves_out_photo_and_fingerprint_and_repr_masks() -> None:
    card = replace(CARDS[0], photo_jpeg=b"\xff\xd8\xff", fingerprint=b"\x01" * 1024)
    data = card.to_dict()
    assert "fingerprint" not in data
    assert "photo_jpeg" not in data
    assert data["has_photo"] is True
    assert CARDS[0].id_number not in repr(card)
    assert "张伟" not in repr(card)


def assert_whole(card: IdCard) -> None:
    for name in REQUIRED:
        assert getattr(card, name), name
    assert card.name or card.name_en
    assert re.fullmatch(r"\d{8}", card.birth)
    assert re.fullmatch(r"\d{8}|长期", card.valid_to)
    assert card.card_type in (" ", "J", "I", "Y")


@settings(max_examples=400, deadline=None)
@given(st.binary(min_size=256, max_size=256))
def test_random_blocks_never_crash_or_yield_half_a_card(block: bytes) -> None:
    try:
        card = card_from_blocks(block)
    except CardReadError:
        return
    assert_whole(card)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(CARDS), st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), min_size=1,
                                        max_size=8))
def test_damaged_real_blocks_never_yield_half_a_card(card: IdCard, damage: list[tuple[int, int]]) -> None:
    block = bytearray(encode_text(card))
    for offset, value in damage:
        block[offset] = value
    try:
        parsed = card_from_blocks(bytes(block))
    except CardReadError:
        return
    assert_whole(parsed)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=600))
def test_wrong_sized_blocks_are_refused(block: bytes) -> None:
    if len(block) == 256:
        return
    with pytest.raises(CardReadError):
        card_from_blocks(block)


names = st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), min_size=1, max_size=15)


@settings(max_examples=200, deadline=None)
@given(names, st.sampled_from("12"), st.dates(dt.date(1900, 1, 1), dt.date(2030, 12, 31)),
       st.from_regex(r"[0-9]{17}[0-9X]", fullmatch=True),
       st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x9FA5), max_size=35))
def test_any_resident_card_round_trips(name: str, gender: str, birth: dt.date, number: str,
                                       address: str) -> None:
    card = IdCard(" ", name, gender, birth.strftime("%Y%m%d"), number, "20200101", "长期",
                  nation_code="01", address=address)
    assert text_fields(card_from_blocks(encode_text(card))) == text_fields(card)


def test_the_reader_knows_exactly_the_kinds_of_the_core_table() -> None:
    assert set(LAYOUTS) == set(rules.KIND_BY_FLAG)
    for card in CARDS:
        assert isinstance(card, rules.CardFacts)  # the reader's card is the rules' card model
        kind = card.kind
        assert kind is not None and (card.type_name, card.type_name_en) == (kind.title_zh, kind.title_en)
    assert replace(CARDS[0], card_type="M").type_name_en == "unknown"


def test_simulator_card_files_name_kinds_as_the_wire_does(tmp_path) -> None:


    deck = write_deck(tmp_path / "deck", CARDS)
    entries = json.loads(deck.read_text(encoding="utf-8"))["cards"]
    assert [e["type"] for e in entries] == [c.kind.name for c in CARDS]  # type: ignore[union-attr]
    assert [s.card.card_type for s in load_cards(deck).cards] == [c.card_type for c in CARDS]
    for named, flag in (("gat_permit", "J"), ("Y", "Y")):
        entry = {**entries[0], "type": named}
        deck.write_text(json.dumps({"cards": [entry]}, ensure_ascii=False), encoding="utf-8")
        assert load_cards(deck).cards[0].card.card_type == flag
    deck.write_text(json.dumps({"cards": [{**entries[0], "type": "gat"}]}), encoding="utf-8")
    with pytest.raises(SimulatorError, match=", ".join(rules.KIND_BY_NAME)):
        load_cards(deck)
