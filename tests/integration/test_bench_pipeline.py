"""bench pipeline: a small run of the comparison and of the capacity mode."""

from __future__ import annotations

import json

import pytest

from edge.cli import main
from edge.tools.synth import SynthSpec, generate_lobby


@pytest.fixture(scope="module")
def short_lobby(tmp_path_factory, data_dir):
    out = tmp_path_factory.mktemp("bench")
    generate_lobby(data_dir / "faces", out / "v.mp4", out / "t.json", enrolled=2, strangers=1,
                   spec=SynthSpec(seconds=6.0, fps=8.0, walk_s=4.0), seed=5)
    return out


def run_json(capsys, args: list[str]) -> dict:
    assert main(args) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_comparison_reports_both_sides_in_one_run(short_lobby, models_dir, capsys):
    report = run_json(capsys, ["bench", "pipeline", "--models", str(models_dir),
                               "--video", str(short_lobby / "v.mp4"), "--truth",
                               str(short_lobby / "t.json"), "--max-frames", "30", "--json"])
    assert report["frames"] == 30
    assert report["gallery_templates"] > 0
    for side in ("ours", "baseline"):
        for key in ("fps_end_to_end", "fps_excluding_decode", "cpu_s_per_video_s", "recognitions_per_frame",
                    "recall", "false_identities"):
            assert key in report[side]
        assert report[side]["fps_excluding_decode"] > report[side]["fps_end_to_end"] > 0
    assert set(report["ratio"]) == {"end_to_end", "excluding_decode", "cpu"}
    # The plain loop embeds every face of every frame; ours only undecided tracks.
    stats = report["ours"]["pipeline_stats"]
    assert stats["embeds"] < stats["faces"]
    assert report["ratio"]["excluding_decode"] > 1.0
    assert set(report["targets"]) == {"end_to_end_2x", "excluding_decode_3x", "recall_not_lower"}


def test_capacity_mode_reports_fps_per_camera_and_time_to_recognition(short_lobby, models_dir, capsys):
    report = run_json(capsys, ["bench", "pipeline", "--models", str(models_dir),
                               "--video", str(short_lobby / "v.mp4"), "--truth",
                               str(short_lobby / "t.json"), "--cameras", "2", "--seconds", "3",
                               "--analyse-fps", "5", "--json"])
    assert report["cameras"] == 2
    assert len(report["analysed_fps"]) == 2
    assert all(0 < fps <= 5.5 for fps in report["analysed_fps"])
    assert all(fps > 0 for fps in report["decoded_fps"])
    assert report["frame_to_result_ms"]["p50"] > 0
    assert "time_to_recognition_ms" in report


def test_missing_video_and_bad_truth_exit_2(tmp_path, capsys):
    assert main(["bench", "pipeline", "--video", str(tmp_path / "none.mp4"), "--json"]) == 2
    truth = tmp_path / "t.json"
    truth.write_text("[1, 2]")
    video = tmp_path / "v.mp4"
    video.write_bytes(b"not a video")
    assert main(["bench", "pipeline", "--video", str(video), "--truth", str(truth), "--json"]) == 2
    assert "ground truth" in capsys.readouterr().err


def test_substream_comparison_reports_each_mode_and_the_main_stream_use(short_lobby, models_dir, capsys):
    report = run_json(capsys, ["bench", "pipeline", "--models", str(models_dir),
                               "--video", str(short_lobby / "v.mp4"), "--truth", str(short_lobby / "t.json"),
                               "--substream", "320x180", "--main-open-s", "0.5", "--json"])
    assert report["bench"] == "pipeline-substream"
    assert (report["main"], report["substream"]) == ("960x540", "320x180")
    assert set(report["modes"]) == {"main", "sub", "sub+main"}
    for mode in report["modes"].values():
        assert {"recall", "false_identities", "analysis_cpu_s_per_video_s",
                "decode_cpu_s_per_video_s"} <= set(mode)
    assert report["decode_cpu_s_per_video_s"]["main"] > 0 and report["decode_cpu_s_per_video_s"]["sub"] > 0
    main = report["modes"]["sub+main"]["main_stream"]
    # The substream's faces are small: the main stream was opened and cropped from.
    assert main["opens"] >= 1 and main["fetches"] > 0 and main["crops"] > 0
    assert main["misses"] > 0  # the first asks come before it gives frames (--main-open-s)
    assert report["modes"]["sub+main"]["embeds"] > report["modes"]["sub"]["embeds"]
    assert len(report["load_average"]) == 3


def test_capacity_on_substreams_reports_decode_and_analysis_apart(short_lobby, models_dir, capsys):
    report = run_json(capsys, ["bench", "pipeline", "--models", str(models_dir),
                               "--video", str(short_lobby / "v.mp4"), "--substream", "320x180",
                               "--cameras", "2", "--seconds", "4", "--analyse-fps", "5",
                               "--main-crop-below-px", "400", "--json"])
    assert report["video"] == "sub-h264.mp4" and report["codec"] == "h264"
    assert set(report["cpu_cores"]) == {"decode", "decode_main_stream", "analysis", "total"}
    assert report["cpu_cores"]["analysis"] > 0
    projected = report["projected"]
    assert projected["cpu_ms_per_decoded_frame"] > 0 and projected["cpu_ms_per_analysed_frame"] > 0
    assert projected["cores_per_camera"] > 0 and projected["cameras"] >= 0
    main = report["main_stream"]
    assert main["opens"] >= 1 and main["frames_decoded"] > 0 and main["fetches"] > 0, main
    assert report["pipeline_stats"]["main_fetches"] == main["fetches"]
    assert report["load_average_before"] and report["load_average_after"]


def test_decode_cost_of_h264_and_h265(short_lobby, capsys):
    report = run_json(capsys, ["bench", "pipeline", "--video", str(short_lobby / "v.mp4"), "--decode-cost",
                               "--substream", "480x270", "--json"])
    rows = {(r["codec"], r["size"]): r for r in report["streams"]}
    assert set(rows) == {("h264", "960x540"), ("h265", "960x540"), ("h264", "480x270"), ("h265", "480x270")}
    assert all(r["cpu_s_per_video_s"] > 0 and r["frames"] > 0 for r in rows.values())
