"""The fleet benchmark at a small size, as a test of what it counts (its timings are only
printed by `branch-hq bench fleet`): every package applied, every erasure confirmed by every
branch, every outcome in PostgreSQL once."""

from __future__ import annotations

import json

from hq.bench import FleetBench
from hq.cli import main as hq_main


def test_small_fleet_loses_and_doubles_nothing(tmp_path):
    tmp_path.chmod(0o755)
    result = FleetBench(12, 2, 3, tmp_path, database=True, timeout_s=120).run()

    assert result["connected"] == 12
    assert result["packages"]["all_applied"] and result["packages"]["states"] == {"applied": 12}
    erasures = result["erasures"]
    assert erasures["complete"] and erasures["confirmed"] == erasures["expected_confirmations"] == 24
    assert erasures["lost"] == 0 and erasures["duplicate_deliveries"] == 0
    assert result["outcomes"] == {**result["outcomes"], "published": 36, "in_database": 36, "lost": 0,
                                  "duplicated": 0}
    assert result["hq_service"]["erasure_acks"] >= 24


def test_bench_command_prints_json(capsys):
    assert hq_main(["bench", "fleet", "--branches", "3", "--erasures", "1", "--outcomes", "1", "--no-db",
                    "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["erasures"]["confirmed"] == 3 and "outcomes" not in result
    assert set(result["erasures"]["confirm_s"]) == {"p50", "p95", "max", "mean"}
