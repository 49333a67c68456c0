"""`branch-pad idcard read` as a new user meets it, over a real pty with the simulator:
text mode shows words and dates rather than raw codes, and the ID number (and a
permit's pass number) is masked, in text and in JSON, unless --show-id-number."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge.core.idcard_rules import mask_id_number
from ui.devices.idcard.card import IdCard
from ui.devices.idcard.samples import sample_cards, write_deck
from ui.devices.idcard.simulator import PtySimulator, load_cards

TODAY = dt.date.today()
CARDS = sample_cards(TODAY)
RESIDENT_MALE, RESIDENT_FEMALE, HK_PERMIT = CARDS[0], CARDS[1], CARDS[2]


def read(card: IdCard, folder: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    """One `branch-pad idcard read` of ``card`` from a simulated reader on a pty."""
    with PtySimulator(load_cards(write_deck(folder, [card]))) as sim:
        return subprocess.run([sys.executable, "-m", "ui.cli", "idcard", "read", "--port", sim.path,
                               *extra], capture_output=True, text=True, timeout=60, check=False)


def iso(yyyymmdd: str) -> str:
    return f"{yyyymmdd[:4]}-{yyyymmdd[4:6]}-{yyyymmdd[6:]}"


@pytest.mark.parametrize(("card", "gender"), [(RESIDENT_MALE, "男 / male"),
                                              (RESIDENT_FEMALE, "女 / female")])
def test_text_mode_shows_gender_in_words_and_dates_as_dates(card: IdCard, gender: str,
                                                            tmp_path: Path) -> None:
    result = read(card, tmp_path)
    assert result.returncode == 0, result.stderr
    fields = {line.split()[0]: line.split(maxsplit=1)[1] for line in result.stdout.splitlines()
              if line.startswith("  ") and len(line.split()) > 1}
    assert fields["gender"] == gender
    assert fields["birth"] == iso(card.birth)
    assert fields["valid"] == f"{iso(card.valid_from)} - {iso(card.valid_to)}"
    assert card.birth not in result.stdout  # no raw YYYYMMDD anywhere (the ID number is masked)


def test_json_masks_the_id_and_pass_numbers_by_default(tmp_path: Path) -> None:
    result = read(HK_PERMIT, tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    card = json.loads(result.stdout)["card"]
    assert card["id_number"] == mask_id_number(HK_PERMIT.id_number) == card["masked_id"]
    assert card["pass_number"] == mask_id_number(HK_PERMIT.pass_number)
    assert card["id_number_masked"] is True
    assert HK_PERMIT.id_number not in result.stdout
    assert HK_PERMIT.pass_number not in result.stdout


def test_text_mode_masks_the_pass_number_too(tmp_path: Path) -> None:
    result = read(HK_PERMIT, tmp_path)
    assert result.returncode == 0, result.stderr
    assert HK_PERMIT.pass_number not in result.stdout
    assert HK_PERMIT.id_number not in result.stdout
    assert mask_id_number(HK_PERMIT.id_number) in result.stdout


def test_show_id_number_prints_the_full_numbers(tmp_path: Path) -> None:
    result = read(HK_PERMIT, tmp_path / "json", "--json", "--show-id-number")
    card = json.loads(result.stdout)["card"]
    assert (card["id_number"], card["pass_number"]) == (HK_PERMIT.id_number, HK_PERMIT.pass_number)
    assert card["id_number_masked"] is False
    text = read(HK_PERMIT, tmp_path / "text", "--show-id-number").stdout
    assert HK_PERMIT.id_number in text and HK_PERMIT.pass_number in text


def test_long_term_validity_reads_as_words(tmp_path: Path) -> None:
    from dataclasses import replace

    elder = replace(RESIDENT_MALE, valid_to="长期")
    result = read(elder, tmp_path)
    assert f"{iso(elder.valid_from)} - 长期 / long-term" in result.stdout
