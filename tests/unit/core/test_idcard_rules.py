"""Card validation rules (edge/core/idcard_rules.py): numbers, dates, permits, foreigner cards."""

from __future__ import annotations

import dataclasses
import datetime as dt
import typing
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.core import idcard_rules as rules
from edge.core.idcard_rules import CardFacts, mod11_2_check_char, validate_facts
from mqtt.codec import decode, encode
from mqtt.messages import AuthRequest, CardFields
from ui.devices.idcard.samples import sample_cards, with_check

TODAY = dt.date(2026, 6, 1)
FACTS = [card.facts() for card in sample_cards(TODAY)]
RESIDENT = FACTS[0]


def codes(facts: CardFacts, today: dt.date = TODAY) -> list[str]:
    return [p.code for p in validate_facts(facts, today)]


@pytest.mark.parametrize(("first17", "check"), [
    ("44030819990110151", "2"), ("81000019940823002", "1"), ("83000019920130002", "2"),
    ("91139819901231002", "1"), ("11010119900101123", "7"),
])
def test_published_check_digits(first17: str, check: str) -> None:
    assert mod11_2_check_char(first17) == check


def test_the_fake_number_from_a_public_example_fails() -> None:
    assert rules.check_citizen_number("110101199001011234", "19900101", "1")[0].code == "id_check_digit"


def test_sample_cards_of_every_type_pass() -> None:
    assert [codes(f) for f in FACTS] == [[]] * len(FACTS)


def test_legacy_15_digit_number_is_upgraded_and_compared() -> None:
    assert rules.upgrade_legacy_id("440308990110151") == "440308199901101512"
    assert rules.normalize_id_number(" 44030819990110151x ") == "44030819990110151X"
    facts = replace(RESIDENT, id_number="440308990110151", birth="19990110", gender="1")
    assert rules.check_citizen_number(facts.id_number, facts.birth, facts.gender) == []


@pytest.mark.parametrize(("change", "code"), [
    ({"id_number": RESIDENT.id_number[:17] + ("0" if RESIDENT.id_number[17] != "0" else "1")},
     "id_check_digit"),
    ({"id_number": "12345"}, "id_format"),
    ({"id_number": with_check("00010519800315001")}, "id_region"),
    ({"id_number": with_check("81000019800315001")}, "id_not_citizen"),
    ({"id_number": with_check("11010519800230001")}, "id_birth_invalid"),
    ({"birth": "19800316"}, "id_birth_mismatch"),
    ({"gender": "2"}, "id_gender_mismatch"),
    ({"gender": "3"}, "gender_invalid"),
    ({"nation_code": "57"}, "nation_unknown"),
    ({"name": " "}, "name_missing"),
    ({"card_type": "Z"}, "card_type_unknown"),
])
def test_each_broken_resident_field_has_its_reason(change: dict[str, str], code: str) -> None:
    assert code in codes(replace(RESIDENT, **change))


def test_leap_day_births() -> None:
    born = with_check("11010520000229002")
    assert rules.check_citizen_number(born, "20000229", "2") == []
    not_leap = with_check("11010519000229002")
    assert rules.check_citizen_number(not_leap, "19000229", "2")[0].code == "id_birth_invalid"


def resident(birth: str, start: str, end: str) -> CardFacts:
    return replace(RESIDENT, birth=birth, id_number=with_check(f"110105{birth}001"), valid_from=start,
                   valid_to=end)


@pytest.mark.parametrize(("facts", "expected"), [
    (resident("19700101", "20200101", "长期"), []),                      # 50 at issue: long-term
    (resident("19900101", "20200101", "20400101"), []),                  # 30: 20 years
    (resident("20000101", "20200101", "20300101"), []),                  # 20: 10 years
    (resident("20100101", "20200101", "20250101"), ["expired"]),         # 10: 5 years, now over
    (resident("19900101", "20200101", "长期"), ["validity_age_class"]),  # 30 but long-term
    (resident("19900101", "20200101", "20270101"), ["validity_period"]),
    (resident("19900101", "20200101", "20200101"), ["validity_order"]),
    (resident("19900101", "20270101", "20470101"), ["not_yet_valid"]),
    (resident("19900101", "2020-1-1", "20400101"), ["validity_format"]),
    (resident("19900101", "20200101", "20400231"), ["validity_format"]),
    (resident("19800101", "20060101", "20260101"), ["expired"]),        # 26: 20 years, now over
])
def test_validity_rules(facts: CardFacts, expected: list[str]) -> None:
    assert codes(facts) == expected


def test_expiry_day_itself_is_still_valid() -> None:
    facts = resident("19800101", "20060601", "20260601")
    assert codes(facts, dt.date(2026, 6, 1)) == []
    assert codes(facts, dt.date(2026, 6, 2)) == ["expired"]


@pytest.mark.parametrize("end", ["20140228", "20140301"])
def test_card_issued_on_29_february_may_end_on_28_february_or_1_march(end: str) -> None:
    facts = resident("19850101", "20040229", end)
    assert codes(facts, dt.date(2010, 1, 1)) == []



def test_a_foreigner_card_holder_gets_ten_years_from_the_18th_birthday_on() -> None:
    card = FACTS[4]  # the 2023 foreigner card, born 1988-12-31
    assert card.birth == "19881231"
    on_the_day = replace(card, valid_from="20061231", valid_to="20161231")  # 18 at issue: 10 years
    assert codes(on_the_day, dt.date(2010, 1, 1)) == []
    day_before = replace(card, valid_from="20061230", valid_to="20161230")  # 17 at issue: 5 years
    assert codes(day_before, dt.date(2010, 1, 1)) == ["validity_age_class"]
    assert codes(replace(day_before, valid_to="20111230"), dt.date(2010, 1, 1)) == []
    for flag in (rules.FOREIGN_2017, rules.FOREIGN_2023):
        assert (rules.expected_years(flag, 17), rules.expected_years(flag, 18)) == (5, 10)

def test_age_class_mismatch_is_only_a_warning() -> None:
    problems = validate_facts(resident("19900101", "20200101", "长期"), TODAY)
    assert [p.severity for p in problems] == ["warning"]
    assert not rules.has_errors(problems)


def test_permit_numbers() -> None:
    permit = FACTS[2]
    assert codes(replace(permit, id_number=with_check("84000019850720003"))) == ["id_region"]
    assert codes(replace(permit, id_number=with_check("82000019850720003"))) == []
    assert codes(replace(permit, id_number="H12345678")) == ["id_format"]
    assert codes(replace(permit, valid_to="长期")) == ["validity_period"]


def test_foreigner_2023_numbers() -> None:
    card = FACTS[4]
    assert rules.check_foreigner_2023_number("911398199012310021", "19901231", "2") == []
    assert codes(replace(card, id_number=with_check("11139819881231001"))) == ["id_region"]
    assert codes(replace(card, id_number=card.id_number[:17] + "0")) == ["id_check_digit"]
    assert codes(replace(card, gender="2")) == ["id_gender_mismatch"]


def test_foreigner_2017_numbers() -> None:
    card = FACTS[3]
    assert rules.check_foreigner_2017_number("KAZ110090123105", "19901231") == []
    assert codes(replace(card, id_number="KA1110090123105")) == ["id_format"]
    problems = validate_facts(replace(card, id_number="KAZ110090123106"), TODAY)
    assert [(p.code, p.severity) for p in problems] == [("id_check_digit", "warning")]
    assert codes(replace(card, birth="19901230")) == ["id_birth_mismatch"]


def test_every_problem_speaks_both_languages() -> None:
    for code in rules._MESSAGES:
        p = rules.problem(code)
        assert p.message("zh-CN") == p.message_zh and p.message_zh
        assert p.message("en") == p.message_en and p.message_en.isascii()


def test_masking_keeps_first_six_and_last_four() -> None:
    assert rules.mask_id_number("440308199901101512") == "440308********1512"
    assert rules.mask_id_number("H1234") == "*****"


@given(st.from_regex(r"[0-9]{17}", fullmatch=True), st.integers(0, 16), st.integers(1, 9))
def test_mod11_2_catches_every_single_digit_error(first17: str, position: int, shift: int) -> None:
    number = first17 + mod11_2_check_char(first17)
    digit = (int(number[position]) + shift) % 10
    altered = number[:position] + str(digit) + number[position + 1:]
    assert mod11_2_check_char(altered[:17]) != altered[17]


@given(st.dates(dt.date(1901, 1, 1), dt.date(1999, 12, 31)), st.integers(0, 999))
def test_legacy_upgrade_keeps_birth_and_gender(birth: dt.date, sequence: int) -> None:
    legacy = f"110105{birth:%y%m%d}{sequence:03d}"
    upgraded = rules.upgrade_legacy_id(legacy)
    gender = "1" if sequence % 2 else "2"
    assert rules.check_citizen_number(upgraded, birth.strftime("%Y%m%d"), gender) == []
    assert rules.check_citizen_number(legacy, birth.strftime("%Y%m%d"), gender) == []


# --- one table of card kinds, one card model, its wire form -------------------------------


def test_the_card_kinds_table_is_the_one_source_of_flags_names_and_periods() -> None:
    assert rules.CARD_TYPES == (rules.RESIDENT, rules.GAT_PERMIT, rules.FOREIGN_2017, rules.FOREIGN_2023)
    assert len(rules.KIND_BY_FLAG) == len(rules.KIND_BY_NAME) == len(rules.CARD_KINDS) == 4
    assert {f.card_type for f in FACTS} == set(rules.CARD_TYPES)  # the samples cover every kind
    permit = next(f for f in FACTS if f.card_type == rules.GAT_PERMIT)
    assert permit.kind is not None and permit.kind.validity_years == (5,)
    ten_years = replace(permit, valid_to=str(int(permit.valid_from[:4]) + 10) + permit.valid_from[4:])
    assert "validity_period" in codes(ten_years)  # the period rule reads the table


def test_the_wire_mapping_has_exactly_the_contract_fields() -> None:
    assert typing.get_type_hints(rules.WireCardFields) == {
        f.name: typing.get_type_hints(CardFields)[f.name] for f in dataclasses.fields(CardFields)}


@pytest.mark.parametrize("facts", FACTS, ids=lambda f: f.kind.name if f.kind else "?")
def test_every_kind_of_card_survives_the_wire_with_the_same_verdict(facts: CardFacts) -> None:
    wire = CardFields(**rules.wire_fields(facts, 80))
    assert wire.card_type == facts.kind.name  # type: ignore[union-attr]
    request = AuthRequest(branch_id="b1", expires_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC), device_id="t1",
                          teller_id="t1", transaction_id="x1", scenario="s", account_holder_id="c1",
                          card=wire)
    received = decode(encode(request))
    assert isinstance(received, AuthRequest)
    back = rules.facts_from_wire(received.card)
    assert back == replace(facts.facts(), name=facts.display_name, name_en="")
    for day in (TODAY, dt.date(2100, 1, 1), dt.date(1990, 1, 1)):
        assert codes(back, day) == codes(facts, day)


@given(st.sampled_from(FACTS), st.sampled_from(["1", "2", "X"]), st.booleans())
def test_a_damaged_card_keeps_its_verdict_through_the_wire(facts: CardFacts, gender: str,
                                                           long_term: bool) -> None:
    damaged = replace(facts, gender=gender,
                      valid_to=rules.LONG_TERM if long_term else facts.valid_to)
    back = rules.facts_from_wire(CardFields(**rules.wire_fields(damaged)))
    assert codes(back) == codes(damaged)


def test_an_unknown_kind_crosses_the_wire_as_it_is_and_is_refused() -> None:
    martian = replace(RESIDENT, card_type="M")
    wire = CardFields(**rules.wire_fields(martian))
    assert wire.card_type == "M"
    assert codes(rules.facts_from_wire(wire)) == ["card_type_unknown"]
    assert codes(rules.facts_from_wire(replace(wire, card_type="gat"))) == ["card_type_unknown"]


def test_a_card_model_never_prints_its_number_or_name() -> None:
    assert RESIDENT.id_number not in repr(RESIDENT) and RESIDENT.name not in repr(RESIDENT)
    assert rules.mask_id_number(RESIDENT.id_number) in repr(RESIDENT)
