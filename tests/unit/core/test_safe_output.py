"""Output neutralisation (console lines, CSV cells) and text-file encoding detection."""

from __future__ import annotations

import contextlib
import io
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.commands.crm import print_bundle
from edge.core.safe_output import FORMULA_START, console_text, csv_cell, csv_row
from edge.core.text_encoding import TextEncodingError, decode_text

UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def test_console_text_escapes_terminal_controls_and_bidi() -> None:
    assert console_text("a\x1b[2Jb\rc\x00") == "a\\x1b[2Jb\\x0dc\\x00"
    assert console_text("invoice\u202egpj.exe") == "invoice\\u202egpj.exe"
    assert console_text("张三 O'Brien – ok") == "张三 O'Brien – ok"
    assert console_text(42) == "42"


@pytest.mark.parametrize("cell", ["=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "＝1+1", "＠x"])
def test_csv_cells_that_a_spreadsheet_would_run_become_text(cell: str) -> None:
    safe = csv_cell(cell)
    assert safe.startswith("'") and not UNSAFE.search(safe)


def test_csv_cells_keep_numbers_and_plain_text() -> None:
    assert csv_row({"a": -5, "b": 1.5, "c": "贵宾", "d": None, "e": "a-b"}) == {
        "a": -5, "b": 1.5, "c": "贵宾", "d": None, "e": "a-b"}


@given(st.text())
def test_no_control_or_bidi_character_survives(text: str) -> None:
    assert not UNSAFE.search(console_text(text))
    cell = csv_cell(text)
    assert not UNSAFE.search(cell) and not cell.startswith(FORMULA_START)


def test_crm_show_prints_imported_text_escaped() -> None:
    evil = "基金\u202e\x1b[31m"
    data = {"portrait": {"segment": evil, "aum_band": "1M", "risk_level": "C3",
                         "risk_assessment_expires_on": "2027-01-01", "risk_assessment": "valid",
                         "holdings": [{"category": evil, "amount_band": "10k"}],
                         "life_events": [{"note": evil}]},
            "recommendations": [{"product_id": "P1", "name": evil, "reason": evil}],
            "talking_points": [evil], "talking_points_en": []}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        print_bundle(data)
    text = out.getvalue()
    assert "\x1b" not in text and "\u202e" not in text
    assert text.count("基金\\u202e\\x1b[31m") == 6 and text.endswith("\n")


@pytest.mark.parametrize(("raw", "encoding"), [
    ("名字,a\n张三,1\n".encode(), "utf-8"),
    (b"\xef\xbb\xbf" + "名字\n".encode(), "utf-8"),
    ("名字,a\n张三,1\n".encode("gbk"), "gb18030"),
    ("名字\n".encode("utf-16"), "utf-16"),
])
def test_encodings_are_detected(raw: bytes, encoding: str) -> None:
    text, used = decode_text(raw, "f.csv")
    assert used == encoding and text.startswith("名字")


def test_undecodable_text_names_what_was_tried() -> None:
    with pytest.raises(TextEncodingError, match=r"f\.csv: neither UTF-8 nor GB18030.*offset 2"):
        decode_text(b"ab\x80\xff", "f.csv")
    with pytest.raises(TextEncodingError, match="not valid utf-8"):
        decode_text("张".encode("gbk"), "f.csv", "UTF8")
    with pytest.raises(TextEncodingError, match="unknown encoding"):
        decode_text(b"x", "f.csv", "klingon")


@given(st.binary(max_size=300), st.sampled_from([None, "utf-8", "gb18030", "latin-1", "utf-16"]))
def test_any_bytes_decode_or_give_an_encoding_error(raw: bytes, encoding: str | None) -> None:
    try:
        text, used = decode_text(raw, "f.csv", encoding)
    except TextEncodingError as err:
        message = str(err)
    else:
        assert isinstance(text, str) and used
        return
    assert "f.csv" in message or "encoding" in message


def test_report_outcomes_table_escapes_imported_segments() -> None:
    from edge.commands.report import table_lines

    row = {"dimension": "segment", "key": "VIP\x1b[2J\u202e", "converted": 1, "recommended": 2,
           "conversion_rate": 0.5, "sales_amount": 1.0, "reported_sold": 0}
    line = table_lines([row])[1]
    assert "\x1b" not in line and "VIP\\x1b[2J\\u202e" in line
