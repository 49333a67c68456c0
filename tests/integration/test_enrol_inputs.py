"""Hostile and odd enrolment inputs, through the real CLI, real models and real photos.

Every photo gets its own verdict and the run goes on: names that are not UTF-8,
symlinks out of the photos folder, devices, FIFOs and oversized files; what a
standard decoder reads completely is accepted with a note (padding after a
JPEG's end marker, a GIF named .jpg); a GB18030 customers CSV is read; the
console report shows no raw control or bidi characters.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import cv2
import pytest

from edge import cli
from edge.store.crypto import KeyRing, generate_key_file
from edge.store.database import Store
from edge.vision.imageio import MAX_IMAGE_BYTES

CLEAN = ("Aicha_El_Ouafi", "Bill_Callahan")
GBK_NAME = "张三.jpg".encode("gbk")  # how a zip made on Chinese Windows unpacks on Linux


@pytest.fixture(autouse=True)
def _only_our_commands(monkeypatch: pytest.MonkeyPatch, models_dir: Path) -> None:
    monkeypatch.setattr(cli, "COMMANDS", ("enrol",))
    monkeypatch.setenv("BRANCH_EDGE_MODELS", str(models_dir))


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "edge.key"
    generate_key_file(path)
    return path


def photos_of(data_dir: Path, name: str) -> list[Path]:
    return sorted((data_dir / "faces" / name).iterdir())


def customer_folder(root: Path, cid: str, photos: list[Path]) -> Path:
    folder = root / cid
    folder.mkdir(parents=True, exist_ok=True)
    for photo in photos:
        shutil.copy(photo, folder / photo.name)
    return folder


def mirrored_jpeg(source: Path) -> bytes:
    """The same face, mirrored: another file (another SHA-256) that still matches."""
    ok, data = cv2.imencode(".jpg", cv2.flip(cv2.imread(str(source)), 1))
    assert ok
    return data.tobytes()


def enrol(capsys: pytest.CaptureFixture[str], tmp_path: Path, key: Path, photos: Path,
          *extra: str) -> tuple[int, str, str]:
    # Folders of photos without names: the name rule has its own tests (test_enrol_names.py).
    code = cli.main(["enrol", "--db", str(tmp_path / "b.db"), "--key-file", str(key),
                     "--photos", str(photos), "--no-progress", "--allow-unnamed", *extra])
    out, err = capsys.readouterr()
    return code, out, err


def by_name(report: dict) -> dict[str, dict]:
    return {p["photo"]: p for p in report["photos"]}


def test_a_photo_name_that_is_not_utf8_gets_a_verdict_and_the_run_continues(
        tmp_path: Path, key_file: Path, data_dir: Path, capsys) -> None:
    photos = tmp_path / "photos"
    good = photos_of(data_dir, CLEAN[0])
    folder = customer_folder(photos, "C001", good)
    Path(os.fsdecode(os.fsencode(folder) + b"/" + GBK_NAME)).write_bytes(mirrored_jpeg(good[0]))
    customer_folder(photos, "C002", photos_of(data_dir, CLEAN[1]))  # after C001: the run goes on
    code, out, err = enrol(capsys, tmp_path, key_file, photos, "--consent-channel", "paper-form",
                           "--json")
    assert code == 0, err
    report = json.loads(out)
    shown = "C001/\\xd5\\xc5\\xc8\\xfd.jpg"  # the GBK bytes of 张三, as escapes
    photo = by_name(report)[shown]
    assert photo["status"] == "accepted"
    assert any("not valid UTF-8" in note for note in photo["notes"])
    assert report["totals"]["accepted"] == len(good) + 1 + len(photos_of(data_dir, CLEAN[1]))
    with Store.open(tmp_path / "b.db", KeyRing(bytes.fromhex(key_file.read_text().strip()))) as store:
        assert store.count_templates("C002", report["model_pack"]) > 0
    # The text report of a second run prints the same name without crashing.
    code, out, err = enrol(capsys, tmp_path, key_file, photos)
    assert code == 0, err
    assert shown in out and "already" in out


def test_symlinks_out_of_the_folder_devices_fifos_and_huge_files_get_their_own_verdicts(
        tmp_path: Path, key_file: Path, data_dir: Path, capsys) -> None:
    photos = tmp_path / "photos"
    good = photos_of(data_dir, CLEAN[0])
    folder = customer_folder(photos, "C001", good)
    outside = customer_folder(tmp_path / "elsewhere", "X", photos_of(data_dir, CLEAN[1]))
    (folder / "outside.jpg").symlink_to(next(outside.iterdir()))
    (folder / "zero.jpg").symlink_to("/dev/zero")
    os.mkfifo(folder / "pipe.jpg")
    with (folder / "huge.jpg").open("wb") as out:
        out.truncate(MAX_IMAGE_BYTES + 1)  # sparse: refused from its size, never read
    (photos / "C002").symlink_to(outside, target_is_directory=True)  # a whole folder elsewhere
    code, out, err = enrol(capsys, tmp_path, key_file, photos, "--consent-channel", "paper-form",
                           "--json")
    assert code == 1, err
    verdicts = {name: p["reason"] or p["status"] for name, p in by_name(json.loads(out)).items()}
    assert verdicts == {
        **{f"C001/{p.name}": "accepted" for p in good},
        "C001/outside.jpg": "outside_folder", "C001/zero.jpg": "outside_folder",
        "C001/pipe.jpg": "not_a_regular_file", "C001/huge.jpg": "too_large",
        **{f"C002/{p.name}": "outside_folder" for p in outside.iterdir()},
    }


def test_jpeg_padding_and_a_gif_named_jpg_are_enrolled_with_a_note(
        tmp_path: Path, key_file: Path, data_dir: Path, capsys) -> None:
    photos = tmp_path / "photos"
    good = photos_of(data_dir, CLEAN[0])
    folder = customer_folder(photos, "C001", good[1:])
    (folder / "padded.jpg").write_bytes(good[0].read_bytes() + b"\x00" * 4096)
    ok, gif = cv2.imencode(".gif", cv2.flip(cv2.imread(str(good[0])), 1))
    assert ok
    (folder / "really_a_gif.jpg").write_bytes(gif.tobytes())
    code, out, err = enrol(capsys, tmp_path, key_file, photos, "--consent-channel", "paper-form",
                           "--json")
    assert code == 0, err
    photos_by_name = by_name(json.loads(out))
    assert photos_by_name["C001/padded.jpg"]["status"] == "accepted"
    assert photos_by_name["C001/padded.jpg"]["notes"] == ["4096 bytes after the JPEG end marker (ignored)"]
    assert photos_by_name["C001/really_a_gif.jpg"]["status"] == "accepted"
    assert photos_by_name["C001/really_a_gif.jpg"]["notes"] == [
        "the file is a GIF image; its name says otherwise"]


def write_csv(path: Path, rows: list[dict[str, str]], encoding: str) -> Path:
    with path.open("w", newline="", encoding=encoding) as out:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_a_gb18030_customers_csv_is_read_and_a_wrong_encoding_is_named(
        tmp_path: Path, key_file: Path, data_dir: Path, capsys) -> None:
    photos = tmp_path / "photos"
    folder = customer_folder(photos, "p", photos_of(data_dir, CLEAN[0]))
    rows = [{"customer_id": "C001", "photo": f"p/{photo.name}", "display_name": "张三丰",
             "consent_channel": "纸质表格", "consent_time": "2025-03-01T09:30:00+08:00"}
            for photo in sorted(folder.iterdir())]
    csv_path = write_csv(tmp_path / "customers.csv", rows, "gb18030")  # what Excel saves in China
    code, _, err = enrol(capsys, tmp_path, key_file, photos, "--customers", str(csv_path),
                         "--encoding", "utf-8")
    assert code == 2
    assert "not valid utf-8" in err and "Traceback" not in err
    code, _, err = enrol(capsys, tmp_path, key_file, photos, "--customers", str(csv_path))
    assert code == 0, err
    with Store.open(tmp_path / "b.db", KeyRing(bytes.fromhex(key_file.read_text().strip()))) as store:
        customer = store.get_customer("C001")
        consent = store.active_consent("C001")
    assert customer is not None and customer.display_name == "张三丰"
    assert consent is not None and consent.channel == "纸质表格"


def test_the_console_report_shows_control_and_bidi_characters_as_escapes(
        tmp_path: Path, key_file: Path, data_dir: Path, capsys) -> None:
    photos = tmp_path / "photos"
    folder = customer_folder(photos, "C001", photos_of(data_dir, CLEAN[0]))
    (folder / "red\x1b[31mtext\u202egpj.exe").write_text("not a photo\n")
    (photos / "C\x1b[2J").mkdir()  # an invalid customer id that would clear the screen
    code, out, err = enrol(capsys, tmp_path, key_file, photos, "--consent-channel", "paper-form")
    assert code == 1, err
    assert "\x1b" not in out and "\u202e" not in out
    assert "red\\x1b[31mtext\\u202egpj.exe" in out
    assert "C\\x1b[2J" in out
