"""The synthetic lobby video: what it shows matches its ground truth."""

from __future__ import annotations

import json

import cv2
import pytest

from edge.cli import main
from edge.tools.synth import SynthError, SynthSpec, generate_lobby, head_width

SMALL = SynthSpec(width=640, height=360, fps=8.0, seconds=6.0, walk_s=3.5, head_min=24, head_max=100)


@pytest.fixture(scope="module")
def small_lobby(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("synth")
    truth = generate_lobby(data_dir / "faces", out / "v.mp4", out / "t.json", enrolled=2, strangers=2,
                           spec=SMALL, seed=3)
    return out, truth


def test_video_has_the_size_rate_and_length_of_the_truth(small_lobby):
    out, truth = small_lobby
    cap = cv2.VideoCapture(str(out / "v.mp4"))
    assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (640, 360)
    assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(8.0)
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == truth["frames"] == 48
    assert json.loads((out / "t.json").read_text()) == truth


def test_truth_lists_enrolled_and_strangers_with_separate_photos(small_lobby):
    _, truth = small_lobby
    people = truth["people"]
    enrolled = [p for p in people if p["enrolled"]]
    assert len(enrolled) == 2
    assert len(people) == 4
    for p in enrolled:
        assert p["customer_id"]
        assert p["enrol_photos"]
        assert p["video_photo"] not in p["enrol_photos"]  # recognising them is a real test
    for p in people:
        assert 0 <= p["enter_s"] < p["exit_s"] <= SMALL.seconds
        if p["min_size_s"] is not None:
            assert p["enter_s"] <= p["min_size_s"] <= p["exit_s"]
    starts = sorted(p["enter_s"] for p in people)
    assert starts[1] < starts[0] + SMALL.walk_s  # several people in view at once


def test_the_people_are_where_the_truth_says(small_lobby, engine):
    out, truth = small_lobby
    person = max(truth["people"], key=lambda p: p["exit_s"] - p["enter_s"])
    t = person["exit_s"] - 0.5  # near the camera, large
    cap = cv2.VideoCapture(str(out / "v.mp4"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, int(t * SMALL.fps))
    ok, frame = cap.read()
    assert ok
    faces = engine.detect(frame)
    widths = [f.bbox[2] - f.bbox[0] for f in faces]
    assert faces
    assert max(widths) > 0.4 * head_width_at(person, t)


def head_width_at(person, t):
    from edge.tools.synth import Person

    fields = {k: v for k, v in person.items() if k in Person.__dataclass_fields__}
    fields["enrol_photos"] = tuple(fields["enrol_photos"])
    return head_width(Person(**fields), SMALL, t)


def test_same_seed_same_truth(tmp_path, data_dir, small_lobby):
    _, truth = small_lobby
    again = generate_lobby(data_dir / "faces", tmp_path / "v.mp4", tmp_path / "t.json", enrolled=2,
                           strangers=2, spec=SMALL, seed=3)
    assert again["people"] == truth["people"]


def test_customers_csv_round_trip(tmp_path, data_dir, capsys):
    faces = data_dir / "faces"
    args = ["synth", "lobby", "--faces", str(faces), "--out", str(tmp_path / "a.mp4"), "--truth",
            str(tmp_path / "a.json"), "--enrolled", "2", "--strangers", "0", "--seconds", "3",
            "--size", "320x180", "--customers-out", str(tmp_path / "c.csv")]
    assert main(args) == 0
    first = json.loads((tmp_path / "a.json").read_text())
    args = ["synth", "lobby", "--faces", str(faces), "--out", str(tmp_path / "b.mp4"), "--truth",
            str(tmp_path / "b.json"), "--customers", str(tmp_path / "c.csv"), "--strangers", "1",
            "--seconds", "3", "--size", "320x180", "--json"]
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out.splitlines()[-1])
    ids = lambda truth: {p["customer_id"] for p in truth["people"] if p["enrolled"]}  # noqa: E731
    assert ids(second) == ids(first)
    assert sum(1 for p in second["people"] if not p["enrolled"]) == 1


def test_bad_inputs_are_clear_errors(tmp_path, data_dir, capsys):
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("name,file\nx,y\n")
    with pytest.raises(SynthError, match="customer_id and photo"):
        generate_lobby(data_dir / "faces", tmp_path / "v.mp4", tmp_path / "t.json", customers_csv=bad_csv)
    base = ["synth", "lobby", "--faces", str(data_dir / "faces"), "--out", str(tmp_path / "v.mp4"),
            "--truth", str(tmp_path / "t.json")]
    assert main([*base, "--size", "big"]) == 2
    assert main(["synth", "lobby", "--faces", str(tmp_path / "none"), "--out", str(tmp_path / "v.mp4"),
                 "--truth", str(tmp_path / "t.json")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()
