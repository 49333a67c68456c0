"""Vendor SDK drivers and the vendor photo decoder through ctypes.

No vendor library can ship with the project, so the "library present" tests
compile a stand-in with the SDK's C signatures at run time (the ctypes
marshalling, status handling and parsing are what is under test).
"""

from __future__ import annotations

import ctypes
import datetime as dt
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from ui.devices.idcard.card import CardReadError, encode_text
from ui.devices.idcard.photo import VendorWltDecoder, load_decoder
from ui.devices.idcard.samples import sample_cards
from ui.devices.idcard.sdk import SdtApiReader, TermbReader

FAKE_SDT = r"""
#include <string.h>
static unsigned char text[256], photo[1024];
static int find_status = 0x9F;
void fake_set_card(const unsigned char *t, const unsigned char *p, int status) {
    memcpy(text, t, 256); memcpy(photo, p, 1024); find_status = status; }
int SDT_OpenPort(int port) { return port == 1001 ? 0x90 : 0x01; }
int SDT_ClosePort(int port) { return 0x90; }
int SDT_StartFindIDCard(int port, unsigned char *buf, int open) { return find_status; }
int SDT_SelectIDCard(int port, unsigned char *buf, int open) { return 0x90; }
int SDT_ReadBaseMsg(int port, unsigned char *t, unsigned int *tl, unsigned char *p, unsigned int *pl,
                    int open) {
    memcpy(t, text, 256); *tl = 256; memcpy(p, photo, 1024); *pl = 1024; return 0x90; }
"""

FAKE_TERMB = r"""
#include <stdio.h>
#include <string.h>
static int put(char *buf, int *len, const char *value) { strcpy(buf, value); *len = strlen(value); return 1; }
int CVR_InitComm(int port) { return 1; }
int CVR_Authenticate(void) { return 1; }
int CVR_Read_Content(int active) {  /* like the real SDK: personal data left in the cwd */
    FILE *f = fopen("wz.txt", "w"); if (!f) return 0; fputs("personal data", f); fclose(f); return 1; }
int CVR_CloseComm(void) { return 1; }
int GetPeopleName(char *b, int *l) { return put(b, l, "\xd5\xc5\xce\xb0"); }  /* GBK */
int GetPeopleSex(char *b, int *l) { return put(b, l, "\xc4\xd0"); }
int GetPeopleBirthday(char *b, int *l) { return put(b, l, "1980.03.15"); }
int GetPeopleAddress(char *b, int *l) { return put(b, l, "ADDR"); }
int GetPeopleIDCode(char *b, int *l) { return put(b, l, "110105198003150012"); }
int GetDepartment(char *b, int *l) { return put(b, l, "DEPT"); }
int GetStartDate(char *b, int *l) { return put(b, l, "20250101"); }
int GetEndDate(char *b, int *l) { return put(b, l, "20450101"); }
int GetNationCode(char *b, int *l) { return put(b, l, "01"); }
"""


def compile_library(tmp_path: Path, name: str, source: str) -> Path:
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        pytest.skip("no C compiler to build the stand-in vendor library")
    c_file, library = tmp_path / f"{name}.c", tmp_path / f"lib{name}.so"
    c_file.write_text(source, encoding="latin-1")
    subprocess.run([compiler, "-shared", "-fPIC", "-o", str(library), str(c_file)], check=True, timeout=60)
    return library


def test_missing_sdk_library_is_a_clear_error(tmp_path: Path) -> None:
    for kind in (SdtApiReader, TermbReader):
        with pytest.raises(CardReadError, match="does not exist") as info:
            kind(tmp_path / "libsdtapi.so")
        assert info.value.code == "sdk_missing"


def test_library_without_the_sdk_functions_is_a_clear_error(tmp_path: Path) -> None:
    library = compile_library(tmp_path, "empty", "int unrelated(void) { return 0; }\n")
    with pytest.raises(CardReadError, match="no function SDT_OpenPort"):
        SdtApiReader(library)


def test_cli_reports_a_missing_sdk_in_one_line(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "ui.cli", "idcard", "read", "--sdk",
                             str(tmp_path / "libtermb.so"), "--sdk-kind", "termb", "--json"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert json.loads(result.stdout)["error"] == "sdk_missing"
    assert len(result.stderr.strip().splitlines()) == 1


def test_sdt_api_reader_parses_the_raw_blocks(tmp_path: Path) -> None:
    library = compile_library(tmp_path, "sdtapi", FAKE_SDT)
    card = sample_cards(dt.date.today())[2]
    photo = bytes(range(256)) * 4
    ctypes.CDLL(str(library)).fake_set_card(encode_text(card), photo, 0x9F)
    got = SdtApiReader(library).read_card()
    assert (got.card_type, got.id_number, got.pass_number) == ("J", card.id_number, card.pass_number)
    assert got.photo_wlt == photo
    ctypes.CDLL(str(library)).fake_set_card(encode_text(card), photo, 0x80)
    with pytest.raises(CardReadError) as info:
        SdtApiReader(library).read_card()
    assert info.value.code == "no_card"
    with pytest.raises(CardReadError) as info:
        SdtApiReader(library, port=7).read_card()
    assert info.value.code == "port_unavailable"


def test_termb_reader_decodes_gbk_and_removes_its_files(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    library = compile_library(tmp_path, "termb", FAKE_TERMB)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    card = TermbReader(library).read_card()
    assert (card.name, card.gender, card.birth) == ("张伟", "1", "19800315")
    assert card.problems(dt.date(2026, 1, 1)) == []
    assert list(scratch.iterdir()) == []
    assert not list(tmp_path.rglob("wz.txt"))
    assert Path.cwd() != scratch


def test_missing_or_broken_photo_decoder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CardReadError, match="does not exist") as info:
        load_decoder(f"vendor:{tmp_path / 'libwlt.so'}")
    assert info.value.code == "decoder_missing"
    with pytest.raises(CardReadError, match="use vendor"):
        load_decoder("magic:thing")
    library = compile_library(tmp_path, "wlt", "int unpack(char *in, char *out, int flag) { return 0; }\n")
    decoder = VendorWltDecoder(library)
    with pytest.raises(CardReadError, match="could not decode") as info:
        decoder.decode(bytes(1024))
    assert info.value.code == "photo_decode"


def test_vendor_decoder_output_becomes_a_jpeg(tmp_path: Path) -> None:
    source = ("#include <string.h>\nint unpack(char *in, char *out, int flag) {"
              " memset(out, 200, 38556); return 1; }\n")
    decoder = VendorWltDecoder(compile_library(tmp_path, "wltraw", source))
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(decoder.decode(bytes(1024)), np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (126, 102, 3)
    assert abs(int(image.mean()) - 200) <= 2
