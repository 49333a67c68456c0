"""The soak run at reduced length (2 cameras, 3 PADs, ~20 s) through the CLI: the JSON
report has its shape, every PAD received every arrival, no thread or descriptor
grew.  The memory slope is meaningless over 20 s, so its limit is lifted here; the
slope arithmetic and the limits are checked on constructed samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from edge.tools.soak import failures, growth, memory, slope_per_hour

REPO = Path(__file__).resolve().parents[2]


def test_reduced_soak_reports_no_leak_and_no_loss(models_dir: Path, data_dir: Path) -> None:
    env = {**os.environ, "BRANCH_EDGE_MODELS": str(models_dir), "BRANCH_EDGE_DATA": str(data_dir)}
    proc = subprocess.run(
        [sys.executable, "-m", "edge.cli", "soak", "--cameras", "2", "--pads", "3", "--minutes", "0.35",
         "--sample-s", "2", "--warmup-s", "4", "--max-slope", "100000", "--json"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    result = json.loads(proc.stdout)
    assert result["ok"] is True and result["failures"] == []
    assert result["soak"]["cameras"] == 2 and result["soak"]["pads"] == 3
    assert result["soak"]["broker"] == "mosquitto"
    samples = result["samples"]
    assert len(samples) >= 9
    assert {"t_s", "rss_mb", "threads", "fds", "arrivals", "outbox_depth"} <= set(samples[0])
    assert [w["t_s"] for w in result["latency_ms"]["windows"]] == [s["t_s"] for s in samples]
    assert result["threads"]["growth"] <= 0 and result["fds"]["growth"] <= 0
    arrivals = result["arrivals"]
    assert arrivals["published"] >= 2  # the looped lobby keeps bringing customers back
    assert arrivals["least_received_by_a_pad"] == arrivals["published"]
    overall = result["latency_ms"]["overall"]
    assert overall["count"] == 3 * arrivals["published"]
    assert 0 < overall["p50"] <= overall["p95"]  # how fast is the soak's report, not a test's bound
    assert result["memory"]["start_mb"] > 50 and isinstance(result["memory"]["slope_mb_per_hour"], float)


@given(st.floats(-1000, 1000), st.floats(0, 5000), st.integers(3, 40))
def test_slope_of_a_straight_line_is_its_rate(rate_per_hour: float, base: float, n: int) -> None:
    points = [(t * 10.0, base + rate_per_hour * t * 10.0 / 3600) for t in range(n)]
    assert abs(slope_per_hour(points) - rate_per_hour) < 1e-6 * max(1.0, abs(rate_per_hour))


def sample_series(threads: list[int], rss: list[float]) -> list[dict]:
    return [{"t_s": 10.0 * (i + 1), "threads": t, "fds": 40, "rss_mb": r}
            for i, (t, r) in enumerate(zip(threads, rss, strict=True))]


def test_a_passing_thread_is_not_a_leak_but_steady_growth_is() -> None:
    flat = sample_series([20, 21, 20, 20, 22, 20, 20, 20], [300.0] * 8)
    assert growth(flat, "threads", warmup_s=0)["growth"] <= 0
    leaking = sample_series([20, 20, 20, 21, 22, 23, 24, 25], [300.0] * 8)
    assert growth(leaking, "threads", warmup_s=0) == {"start": 20, "end": 23, "growth": 3}


def test_limits_name_what_failed() -> None:
    samples = sample_series([20] * 8, [300.0 + i for i in range(8)])  # 1 MB per 10 s = 360 MB/h
    result = {"memory": memory(samples), "threads": growth(samples, "threads", 0),
              "fds": growth(samples, "fds", 0), "limits": {"max_slope_mb_per_hour": 20.0},
              "arrivals": {"published": 5, "least_received_by_a_pad": 4}}
    found = failures(result)
    assert len(found) == 2
    assert "memory grows 360.0 MB/hour" in found[0]
    assert "received 4 of 5" in found[1]
