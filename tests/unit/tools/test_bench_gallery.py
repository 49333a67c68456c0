"""``branch-edge bench gallery`` at a small size: the JSON report's keys and sane values.

Nothing here asserts a speed: the bench reports speed, tests check what it reports.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest

from edge.commands import bench
from edge.tools.bench.gallery import run_bench, spec_from_args

SIZE = 20_000


def parser() -> argparse.ArgumentParser:
    """The same registration edge/cli.py performs for the "bench" command."""
    root = argparse.ArgumentParser(prog="branch-edge")
    bench.register(root.add_subparsers(dest="command", required=True))
    return root


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    args = parser().parse_args(argv)
    code = args.func(args)
    return code, capsys.readouterr().out


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    """One bench run shared by the report tests (the CLI's own path, minus printing)."""
    args = parser().parse_args(["bench", "gallery", "--size", str(SIZE), "--queries", "60",
                                "--accuracy-queries", "300", "--json"])
    return run_bench(spec_from_args(args))


def test_cli_prints_json_with_every_backend(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(["bench", "gallery", "--size", "2000", "--queries", "20",
                         "--accuracy-queries", "50", "--backends", "ivf", "--json"], capsys)
    data = json.loads(out)
    assert code == 0
    assert set(data["backends"]) == {"exact", "ivf"}  # exact always runs: it is the baseline
    assert data["size"] == 2000 and data["customers"] == 400 and data["queries"]["latency"] == 20


def test_cli_prints_a_table_without_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out = run_cli(["bench", "gallery", "--size", "1000", "--queries", "20",
                         "--accuracy-queries", "20"], capsys)
    assert code == 0
    rows = {line.split()[0] for line in out.splitlines()[2:]}
    assert rows == {"exact", "int8", "ivf"}


@pytest.mark.parametrize("bad", [
    ["--size", "5"], ["--backends", "hnsw"], ["--dim", "x"], ["--k", "1"], ["--threshold", "1.5"],
    ["--margin", "-0.1"]])
def test_cli_rejects_bad_options(bad: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_cli(["bench", "gallery", *bad], capsys)
    assert exit_info.value.code == 2
    assert "error" in capsys.readouterr().err


def test_report_describes_the_run(report: dict[str, Any]) -> None:
    assert report["bench"] == "gallery" and report["size"] == SIZE and report["dim"] == 128
    assert report["customers"] == SIZE // 5 and report["baseline"] == "exact"
    assert report["queries"] == {"latency": 60, "warmup": 20, "accuracy_mated": 300,
                                 "accuracy_non_mated": 300}
    data = report["data"]
    # The synthetic faces are what the docs say they are.
    assert data["template_to_identity_cosine"] == pytest.approx(0.70, abs=0.01)
    assert data["mated_query_to_template_cosine"] == pytest.approx(0.60, abs=0.02)


def test_report_has_sane_numbers_per_backend(report: dict[str, Any]) -> None:
    backends = report["backends"]
    assert set(backends) == {"exact", "int8", "ivf"}
    for result in backends.values():
        assert set(result) >= {"build_s", "index_bytes", "rss_delta_bytes", "latency_ms", "top1_agreement",
                               "decision_agreement", "vs_exact", "open_set", "meets_target"}
        latency = result["latency_ms"]
        assert 0 < latency["p50"] <= latency["p95"] <= latency["max"]
        assert result["build_s"] > 0
        assert 0.0 <= min(result["top1_agreement"].values()) <= 1.0
    exact, int8, ivf = backends["exact"], backends["int8"], backends["ivf"]
    assert exact["index_bytes"] >= SIZE * 128 * 4  # float32 matrix
    assert exact["top1_agreement"] == {"mated": 1.0, "non_mated": 1.0}
    assert exact["vs_exact"] == {"speedup_p50": 1.0, "speedup_p95": 1.0, "memory_fraction": 1.0}
    # int8 codes are a quarter of float32, plus ids.
    assert SIZE * 128 <= int8["index_bytes"] < 0.35 * exact["index_bytes"]
    assert int8["vs_exact"]["memory_fraction"] < 0.35 and ivf["vs_exact"]["memory_fraction"] < 0.35
    assert int8["top1_agreement"]["mated"] == 1.0 and int8["decision_agreement"]["mated"] == 1.0
    assert ivf["top1_agreement"]["mated"] >= 0.98 and ivf["decision_agreement"]["non_mated"] >= 0.99
    assert ivf["params"]["nlist"] == 283 and ivf["params"]["nprobe"] == 48
    # Exact search on the synthetic data: mated people found, strangers rejected.
    assert exact["open_set"]["mated_accepted_correct"] >= 0.99
    assert exact["open_set"]["non_mated_accepted"] <= 0.01
