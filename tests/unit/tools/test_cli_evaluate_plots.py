"""The ROC/DET plots of `branch-edge evaluate` mark the configured operating point and
only the target rates the comparisons can measure (scores drawn here, no models)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from edge.core import accuracy as metrics
from edge.tools.evaluate import (
    Evaluation,
    OpenSetSplit,
    Options,
    draw_panel,
    identification_section,
    plot_panels,
    verification_section,
    write_plots,
)

THRESHOLD, MARGIN = 0.4, 0.05


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    rng = np.random.default_rng(3)
    genuine = rng.normal(0.65, 0.12, 400)
    impostor = rng.normal(0.05, 0.12, 5_000)  # FAR 1e-2 measurable (1,000 needed), 1e-3 not
    gallery, mated, strangers = 40, 300, 600
    sim = rng.normal(0.05, 0.12, (mated + strangers, gallery))
    mates = np.concatenate((rng.integers(0, gallery, mated), np.full(strangers, -1)))
    sim[np.arange(mated), mates[:mated]] = rng.normal(0.6, 0.12, mated)
    scores = metrics.open_set_scores(sim, mates)
    split = OpenSetSplit(np.arange(gallery), np.arange(gallery, gallery + mated + strangers), mates, 0, 0)
    opts = Options(threshold=THRESHOLD, margin=MARGIN)
    report = {"dataset": {"name": "drawn"}, "model_pack": "test",
              "verification": verification_section(genuine, impostor, opts),
              "identification": identification_section(scores, split, opts)}
    return Evaluation(report, genuine, impostor, scores)


def marker(fig: Figure, prefix: str) -> Line2D:
    lines = [line for line in fig.axes[0].get_lines() if str(line.get_label()).startswith(prefix)]
    assert len(lines) == 1, [line.get_label() for line in fig.axes[0].get_lines()]
    return lines[0]


def xy(line: Line2D) -> tuple[list[float], list[float]]:
    return np.asarray(line.get_xdata()).tolist(), np.asarray(line.get_ydata()).tolist()


def test_each_plot_marks_the_configured_operating_point(evaluation: Evaluation) -> None:
    ver = evaluation.report["verification"]
    ide = evaluation.report["identification"]
    far, tar = ver["operating_point"]["far"], ver["operating_point"]["tar"]
    fpir, fnir = ide["operating_point"]["fpir"], ide["operating_point"]["fnir"]
    assert far > 0 and fpir > 0  # drawn where they are, not at the log axis' floor
    expected = {"roc.png": (far, tar), "det.png": (far, 1 - tar), "det_identification.png": (fpir, fnir)}
    panels = plot_panels(evaluation)
    assert sorted(p.filename for p in panels) == sorted(expected)
    for panel in panels:
        point = marker(draw_panel(panel, "t"), f"configured threshold {THRESHOLD}")
        (x,), (y,) = xy(point)
        assert (x, y) == pytest.approx(expected[panel.filename])


def test_the_configured_point_label_says_what_it_rests_on(evaluation: Evaluation) -> None:
    op = evaluation.report["verification"]["operating_point"]
    roc = next(p for p in plot_panels(evaluation) if p.filename == "roc.png")
    label = str(marker(draw_panel(roc, "t"), "configured").get_label())
    assert f"FAR {op['false_accepts']}/{op['impostor_pairs']}" in label
    assert f"TAR {op['genuine_accepts']}/{op['genuine_pairs']}" in label


def test_only_measurable_target_rates_are_marked(evaluation: Evaluation) -> None:
    ver = evaluation.report["verification"]
    measurable = [k for k, s in ver["support_at_far"].items() if s["measurable"]]
    assert measurable == ["1e-2"]
    roc = next(p for p in plot_panels(evaluation) if p.filename == "roc.png")
    targets = marker(draw_panel(roc, "t"), "target rates")
    assert xy(targets)[0] == [ver["achieved_far"]["1e-2"]]


def test_a_zero_rate_is_drawn_at_the_floor_and_said_so(evaluation: Evaluation) -> None:
    strict = Evaluation({**evaluation.report, "verification": verification_section(
        evaluation.genuine, evaluation.impostor, Options(threshold=0.99))}, evaluation.genuine,
        evaluation.impostor, None)
    det = next(p for p in plot_panels(strict) if p.filename == "det.png")
    point = marker(draw_panel(det, "t"), "configured threshold 0.99")
    assert xy(point)[0] == pytest.approx([1 / evaluation.impostor.size])
    assert "drawn at 1 / comparisons" in str(point.get_label())


def test_write_plots_returns_the_files_it_wrote(evaluation: Evaluation, tmp_path: Path) -> None:
    written = write_plots(evaluation, tmp_path / "plots")
    assert sorted(p.name for p in written) == ["det.png", "det_identification.png", "roc.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in written)
