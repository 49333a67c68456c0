"""ICAO 9303 MRZ parsing and check digits on the ICAO specimen documents."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.core.idcard_rules import icao_check_digit
from ui.devices.idcard.mrz import MrzError, parse_mrz

TD3 = "P<UTOERIKSSON<<ANNA<MARIA<<<<<<<<<<<<<<<<<<<\nL898902C36UTO7408122F1204159ZE184226B<<<<<10"
TD1 = "I<UTOD231458907<<<<<<<<<<<<<<<\n7408122F1204159UTO<<<<<<<<<<<6\nERIKSSON<<ANNA<MARIA<<<<<<<<<<"


def test_icao_check_digits_of_the_specimens() -> None:
    assert icao_check_digit("L898902C3") == 6
    assert icao_check_digit("740812") == 2
    assert icao_check_digit("120415") == 9
    assert icao_check_digit("ZE184226B<<<<<") == 1
    assert icao_check_digit("D23145890") == 7


def test_td3_specimen_parses_and_every_check_passes() -> None:
    mrz = parse_mrz(TD3)
    assert mrz.valid, mrz.problems
    assert (mrz.format, mrz.document_code, mrz.issuing_state) == ("TD3", "P", "UTO")
    assert (mrz.surname, mrz.given_names) == ("ERIKSSON", "ANNA MARIA")
    assert (mrz.document_number, mrz.nationality, mrz.sex) == ("L898902C3", "UTO", "F")
    assert (mrz.birth_date, mrz.expiry_date, mrz.optional) == ("740812", "120415", "ZE184226B")


def test_td1_specimen_parses_and_every_check_passes() -> None:
    mrz = parse_mrz(TD1)
    assert mrz.valid, mrz.problems
    assert (mrz.format, mrz.document_code, mrz.document_number) == ("TD1", "I", "D23145890")
    assert (mrz.surname, mrz.given_names, mrz.sex) == ("ERIKSSON", "ANNA MARIA", "F")


@pytest.mark.parametrize(("line", "index", "code"), [
    (1, 9, "mrz_check_document_number"),
    (1, 19, "mrz_check_birth_date"),
    (1, 27, "mrz_check_expiry_date"),
    (1, 42, "mrz_check_personal_number"),
    (1, 43, "mrz_check_composite"),
])
def test_td3_each_wrong_check_digit_is_named(line: int, index: int, code: str) -> None:
    lines = TD3.splitlines()
    wrong = str((int(lines[line][index]) + 1) % 10)
    lines[line] = lines[line][:index] + wrong + lines[line][index + 1:]
    # The composite covers the other check digits, so it fails with them.
    expected = [code] if code == "mrz_check_composite" else [code, "mrz_check_composite"]
    assert [p.code for p in parse_mrz("\n".join(lines)).problems] == expected


def test_altered_birth_date_breaks_its_digit_and_the_composite() -> None:
    lines = TD3.splitlines()
    lines[1] = lines[1].replace("740812", "750812")
    assert [p.code for p in parse_mrz("\n".join(lines)).problems] == [
        "mrz_check_birth_date", "mrz_check_composite"]


def test_td1_long_document_number_continues_in_the_optional_field() -> None:
    number = "D23145890AB"
    line1 = f"I<UTO{number[:9]}<{number[9:]}{icao_check_digit(number)}".ljust(30, "<")
    line2_head = "7408122F1204159UTO<<<<<<<<<<<"
    composite = icao_check_digit(line1[5:30] + line2_head[0:7] + line2_head[8:15] + line2_head[18:29])
    mrz = parse_mrz(f"{line1}\n{line2_head}{composite}\nERIKSSON<<ANNA<MARIA<<<<<<<<<<")
    assert mrz.valid, mrz.problems
    assert mrz.document_number == number


@pytest.mark.parametrize("text", ["", "P<UTO\nL898", TD3.lower().replace("<", "?"), TD3 + "\nEXTRA"])
def test_not_an_mrz_is_a_clear_error(text: str) -> None:
    with pytest.raises(MrzError):
        parse_mrz(text)


def test_cli_checks_an_mrz_file(tmp_path: Path) -> None:
    path = tmp_path / "mrz.txt"
    path.write_text(TD3 + "\n", encoding="ascii")
    result = subprocess.run([sys.executable, "-m", "ui.cli", "idcard", "mrz", str(path), "--json"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["mrz"]["surname"] == "ERIKSSON"
    path.write_text(TD3.replace("<10", "<11"), encoding="ascii")
    result = subprocess.run([sys.executable, "-m", "ui.cli", "idcard", "mrz", str(path), "--json"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 1
    assert json.loads(result.stdout)["problems"] == ["mrz_check_composite"]
