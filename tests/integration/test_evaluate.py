"""`branch-edge evaluate` / `calibrate` on small subsets of the real photos, real models."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import edge.cli
from edge.commands.calibrate import set_threshold
from edge.config import load_config
from edge.core.accuracy import comparisons_needed, is_measurable
from edge.tools.evaluate import impostor_pairs, read_pairs, split_open_set

IDENTITIES = 16  # about 2,000 impostor pairs: enough to measure FAR 1e-2, not 1e-3
PER_IDENTITY = 4
CORRUPT = "zz_corrupt.jpg"
NO_FACE = "zz_no_face.png"


@pytest.fixture(autouse=True)
def only_our_commands(monkeypatch):
    # The real CLI entry point (error handling, exit codes) with just these commands.
    monkeypatch.setattr(edge.cli, "COMMANDS", ("evaluate", "calibrate"))


def no_face_image() -> np.ndarray:
    """A smooth gradient with a few boxes: a real image with nothing face-like in it."""
    ramp = np.linspace(0, 255, 320, dtype=np.uint8)
    image = np.dstack([np.tile(ramp, (240, 1))] * 3)
    cv2.rectangle(image, (40, 40), (120, 200), (30, 160, 60), -1)
    cv2.rectangle(image, (200, 60), (290, 110), (200, 40, 40), -1)
    return image


@pytest.fixture(scope="module")
def small_faces(tmp_path_factory, data_dir) -> Path:
    """16 identities x up to 4 photos (symlinks), plus one corrupt and one face-less image."""
    root = tmp_path_factory.mktemp("small") / "faces"
    chosen = [d for d in sorted((data_dir / "faces").iterdir()) if len(list(d.iterdir())) >= 3]
    for folder in chosen[:IDENTITIES]:
        (root / folder.name).mkdir(parents=True)
        for photo in sorted(folder.iterdir())[:PER_IDENTITY]:
            (root / folder.name / photo.name).symlink_to(photo)
    first, second = sorted(root.iterdir())[:2]
    real = sorted(first.iterdir())[0].read_bytes()
    (first / CORRUPT).write_bytes(real[: len(real) // 3])  # truncated JPEG
    cv2.imwrite(str(second / NO_FACE), no_face_image())
    (second / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # dot-files are not samples
    return root


def group_sizes_of(*folders: Path) -> list[int]:
    return [len([p for p in d.iterdir() if not p.name.startswith(".")]) for d in folders]


def group_sizes(root: Path) -> list[int]:
    return group_sizes_of(*root.iterdir())


@pytest.fixture(scope="module")
def faces_run(small_faces, tmp_path_factory, models_dir):
    """The text run with a JSON report and plots; what it printed is in ``stdout.txt``."""
    out = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(io.StringIO()) as printed:
        mp.setattr(edge.cli, "COMMANDS", ("evaluate",))
        rc = edge.cli.main(["evaluate", "--faces", str(small_faces), "--models", str(models_dir),
                            "--out", str(out / "report.json"), "--plots", str(out / "plots")])
    (out / "stdout.txt").write_text(printed.getvalue(), encoding="utf-8")
    assert rc == 0
    return json.loads((out / "report.json").read_text()), out


def test_report_keeps_the_json_contract(faces_run):
    report, _ = faces_run
    ver, ide = report["verification"], report["identification"]
    assert set(ver["tar_at_far"]) == set(ver["threshold_at_far"]) == {"1e-2", "1e-3", "1e-4"}
    assert set(ide["fnir_at_fpir"]) == set(ide["threshold_at_fpir"]) == {"1e-1", "1e-2", "1e-3"}
    assert isinstance(ver["eer"], float)
    assert isinstance(ide["rank1"], float)
    assert {"images", "identities", "failures_to_acquire"} <= set(report["counts"])
    assert report["model_pack"] == "default"


def test_small_subset_accuracy_is_within_bounds(faces_run):
    report, _ = faces_run
    ver, ide = report["verification"], report["identification"]
    assert ide["rank1"] >= 0.9
    assert ide["closed_set_rank1"] >= 0.9
    # The two failed images make their genuine pairs sure rejects, which the EER includes.
    forced_rejects = ver["genuine_pairs_with_failure"] / ver["genuine_pairs"]
    assert forced_rejects - 1e-6 <= ver["eer"] <= forced_rejects + 0.05
    assert ver["tar_at_far"]["1e-2"] >= 0.85
    for key, far in (("1e-2", 1e-2), ("1e-3", 1e-3), ("1e-4", 1e-4)):
        assert ver["achieved_far"][key] <= far
        assert -1.0 < ver["threshold_at_far"][key] <= 1.0
    thresholds = [ver["threshold_at_far"][k] for k in ("1e-2", "1e-3", "1e-4")]
    assert thresholds == sorted(thresholds)


def test_counts_are_exact_and_failures_are_counted_not_dropped(faces_run, small_faces):
    report, _ = faces_run
    sizes = group_sizes(small_faces)
    counts = report["counts"]
    assert counts["images"] == sum(sizes)
    assert counts["identities"] == IDENTITIES
    assert (counts["failures_to_acquire"], counts["unreadable"], counts["no_face"]) == (2, 1, 1)
    reasons = {Path(f["file"]).name: f["reason"] for f in report["failures"]}
    assert reasons[NO_FACE] == "no face found"
    assert reasons[CORRUPT].startswith("unreadable")
    ver, ide = report["verification"], report["identification"]
    assert ver["genuine_pairs"] == sum(n * (n - 1) // 2 for n in sizes)
    # Each failed image is in one genuine pair with every other photo of its identity.
    first, second = sorted(small_faces.iterdir())[:2]
    assert ver["genuine_pairs_with_failure"] == sum(n - 1 for n in group_sizes_of(first, second))
    n = sum(sizes)
    assert ver["impostor_pairs"] == n * (n - 1) // 2 - ver["genuine_pairs"]  # all of them
    # Every image is either the gallery template or a probe: nothing is dropped.
    assert ide["gallery_size"] + ide["mated_probes"] + ide["nonmated_probes"] == n
    assert ide["gallery_size"] == IDENTITIES // 2


def test_plots_are_valid_png(faces_run):
    report, out = faces_run
    names = sorted(Path(p).name for p in report["plots"])
    assert names == ["det.png", "det_identification.png", "roc.png"]
    for name in names:
        data = (out / "plots" / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n")
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image.shape == (450, 600, 3)
        assert image.std() > 10  # something was drawn


def test_pairs_list_subset(tmp_path, data_dir, models_dir, capsys):
    source = data_dir / "verification_pairs" / "deepface"
    with (source / "master.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    same = [r for r in rows if r["Decision"] == "Yes"]
    subset = same[:10] + [r for r in rows if r["Decision"] == "No"][:30]
    for name in {r[k] for r in subset for k in ("file_x", "file_y")}:
        (tmp_path / name).symlink_to(source / name)
    subset.append({"file_x": subset[0]["file_x"], "file_y": "missing.jpg", "Decision": "Yes"})
    with (tmp_path / "pairs.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["file_x", "file_y", "Decision"])
        writer.writeheader()
        writer.writerows(subset)
    rc = edge.cli.main(["evaluate", "--pairs", str(tmp_path / "pairs.csv"),
                        "--models", str(models_dir), "--json"])
    assert rc == 0
    report = json.loads(capsys.readouterr().out)
    ver = report["verification"]
    assert (ver["genuine_pairs"], ver["impostor_pairs"]) == (11, 30)
    assert ver["genuine_pairs_with_failure"] == 1
    assert report["counts"]["unreadable"] == 1
    assert report["identification"] is None
    assert ver["tar_at_far"]["1e-2"] >= 10 / 11 - 1e-9  # every real genuine pair, not the missing one
    assert ver["eer"] <= 0.1


def test_calibrate_writes_threshold_and_keeps_the_rest(small_faces, tmp_path, models_dir, capsys):
    config = tmp_path / "edge.toml"
    config.write_text('# branch config\nbranch_id = "b-01"\n\n[recognition]\nmargin = 0.07\n\n'
                      '[liveness]\nthreshold = 0.6\n')
    rc = edge.cli.main(["calibrate", "--faces", str(small_faces), "--models", str(models_dir),
                        "--target-far", "1e-2", "--write-config", str(config), "--json"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out)
    assert result["achieved_far"] <= 1e-2
    assert result["threshold"] >= result["exact_threshold"]
    cfg = load_config(config)
    assert cfg.recognition.threshold == result["threshold"]
    assert (cfg.recognition.margin, cfg.liveness.threshold, cfg.branch_id) == (0.07, 0.6, "b-01")
    assert config.read_text().startswith("# branch config\n")


def test_calibrate_refuses_a_config_of_another_pack(small_faces, tmp_path, models_dir, capsys):
    config = tmp_path / "edge.toml"
    original = '[models]\npack = "fast"\n\n[recognition]\nthreshold = 0.5\n'
    config.write_text(original)
    rc = edge.cli.main(["calibrate", "--faces", str(small_faces), "--models", str(models_dir),
                        "--pack", "default", "--target-fpir", "1e-1", "--write-config", str(config),
                        "--force"])  # a few dozen probes cannot measure 1e-1: forced past that check
    assert rc == 2
    assert "thresholds do not carry over" in capsys.readouterr().err
    assert config.read_text() == original


def test_every_rate_says_what_it_rests_on(faces_run: tuple[dict[str, Any], Path]) -> None:
    report, _ = faces_run
    ver, ide = report["verification"], report["identification"]
    for section, rate, negatives, positives in ((ver, "far", "impostor_pairs", "genuine_pairs"),
                                                (ide, "fpir", "nonmated_probes", "mated_probes")):
        support = section[f"support_at_{rate}"]
        assert set(support) == set(section[f"achieved_{rate}"])  # one entry per reported rate
        for key, s in support.items():
            target = float(key)
            assert (s[negatives], s[positives]) == (section[negatives], section[positives])
            assert s[f"{negatives}_needed"] == comparisons_needed(target)
            assert s["measurable"] is is_measurable(target, section[negatives])
            false_matches = s["false_accepts" if rate == "far" else "false_positives"]
            assert false_matches == round(section[f"achieved_{rate}"][key] * section[negatives])
    # Sixteen identities: FAR 1e-2 is measurable from their ~2,000 impostor pairs, 1e-4 is not.
    assert ver["support_at_far"]["1e-2"]["measurable"] is True
    assert ver["support_at_far"]["1e-4"]["measurable"] is False
    assert not any(s["measurable"] for s in ide["support_at_fpir"].values())
    op = ver["operating_point"]
    assert (op["impostor_pairs"], op["genuine_pairs"]) == (ver["impostor_pairs"], ver["genuine_pairs"])
    assert op["false_accepts"] == round(op["far"] * op["impostor_pairs"])


def test_text_marks_unmeasurable_rates_and_says_where_the_plots_went(
        faces_run: tuple[dict[str, Any], Path]) -> None:
    report, out = faces_run
    text = (out / "stdout.txt").read_text(encoding="utf-8")
    ver, ide = report["verification"], report["identification"]
    n = ver["impostor_pairs"]
    assert f"  1e-4   not measurable: {n} impostor pairs ({comparisons_needed(1e-4)} needed)" in text
    assert f"  1e-3   not measurable: {ide['nonmated_probes']} non-mated probes" in text
    row = next(line for line in text.splitlines() if line.startswith("  1e-2 "))
    s = ver["support_at_far"]["1e-2"]
    assert row.endswith(f"{s['false_accepts']} of {n} impostor pairs, {ver['genuine_pairs']} genuine")
    for plot in report["plots"]:
        assert f"plot written to {plot}\n" in text
        assert Path(plot).is_file()


def test_calibrate_refuses_to_write_a_threshold_it_cannot_measure(
        small_faces: Path, tmp_path: Path, models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "edge.toml"
    argv = ["calibrate", "--faces", str(small_faces), "--models", str(models_dir),
            "--target-far", "1e-4", "--write-config", str(config)]
    assert edge.cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "not measurable: " in err and f"({comparisons_needed(1e-4)} needed" in err
    assert "--force" in err
    assert not config.exists()
    assert edge.cli.main([*argv, "--force", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["measurable"] is False
    assert result["negatives_needed"] == comparisons_needed(1e-4) > result["negatives"]
    assert load_config(config).recognition.threshold == result["threshold"]
    assert "forced" in config.read_text()


@pytest.mark.parametrize(("argv", "message"), [
    (["evaluate", "--faces", "/nonexistent/faces"], "not a folder"),
    (["evaluate", "--pairs", "/nonexistent/pairs.csv"], "no such pair list"),
])
def test_bad_input_is_one_clear_error(argv, message, models_dir, capsys):
    assert edge.cli.main([*argv, "--models", str(models_dir)]) == 2
    assert message in capsys.readouterr().err


def test_pair_list_with_a_bad_decision_names_the_line(tmp_path):
    (tmp_path / "pairs.csv").write_text("file_x,file_y,Decision\na.jpg,b.jpg,Yes\na.jpg,c.jpg,maybe\n")
    with pytest.raises(Exception, match=r"pairs.csv:3: Decision must be Yes or No"):
        read_pairs(tmp_path / "pairs.csv")


# --- protocol pieces -------------------------------------------------------------------


def test_impostor_sample_is_seeded_distinct_and_cross_identity():
    labels = [f"id{i // 3}" for i in range(300)]
    a = impostor_pairs(labels, 2000, seed=5)
    assert np.array_equal(np.stack(a), np.stack(impostor_pairs(labels, 2000, seed=5)))
    assert not np.array_equal(np.stack(a), np.stack(impostor_pairs(labels, 2000, seed=6)))
    pairs = set(zip(*a, strict=True))
    assert len(pairs) == 2000
    assert all(labels[i] != labels[j] and i < j for i, j in pairs)
    few = impostor_pairs(labels[:9], 2000, seed=5)  # 3 identities x 3: 27 pairs exist
    assert len(few[0]) == 27


def test_open_set_split_enrols_half_from_the_first_usable_image():
    labels = ["a"] * 3 + ["b"] * 3 + ["c"] * 2 + ["d"] * 2
    ok = np.array([False, True, True, True, True, True, False, False, True, True])
    for seed in range(20):
        split = split_open_set(labels, ok, seed)
        assert split.gallery.size == 2
        assert sorted([*split.gallery, *split.probes]) == list(range(10))
        enrolled = {labels[g] for g in split.gallery}
        if "a" in enrolled:  # first photo has no face: the second one is the template
            assert 1 in split.gallery
        if "c" in enrolled:  # no usable photo: its template fails, its probe is a sure miss
            assert split.enrolment_failures == 1
        mated = split.mate >= 0
        assert {labels[p] for p in split.probes[mated]} <= enrolled
        assert not {labels[p] for p in split.probes[~mated]} & enrolled


def test_threshold_edit_touches_only_recognition_threshold():
    text = "[liveness]\nthreshold = 0.5\n[recognition]\nthreshold = 0.3 # old\nmargin = 0.05\n"
    edited = set_threshold(text, 0.45, "note")
    assert "[liveness]\nthreshold = 0.5\n" in edited
    assert "[recognition]\nthreshold = 0.45  # note\nmargin = 0.05\n" in edited
    assert set_threshold("[recognition]\nmargin = 0.1", 0.4, "n") == (
        "[recognition]\nthreshold = 0.4  # n\nmargin = 0.1\n")
    assert set_threshold("", 0.4, "n") == "[recognition]\nthreshold = 0.4  # n\n"
    assert math.isclose(float(edited.split("threshold = ")[2].split()[0]), 0.45)
