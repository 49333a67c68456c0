"""`branch-edge calibrate` says what its threshold rests on and marks a target the
comparisons cannot measure (drawn scores, no models; the CLI run is in
tests/integration/test_evaluate.py)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from edge.commands.calibrate import calibration, describe
from edge.core.accuracy import comparisons_needed
from edge.tools.evaluate import Evaluation

IMPOSTORS = 5_000  # FAR 1e-2 needs 1,000: measurable; FAR 1e-4 needs 100,000: not


@pytest.fixture(scope="module")
def evaluation() -> Evaluation:
    rng = np.random.default_rng(11)
    return Evaluation({}, rng.normal(0.65, 0.12, 300), rng.normal(0.05, 0.12, IMPOSTORS), None)


def report() -> dict[str, Any]:
    return {"dataset": {"name": "drawn"}, "model_pack": "test",
            "counts": {"images": 1, "identities": 1, "failures_to_acquire": 0}}


def test_a_measurable_target_says_what_it_rests_on(evaluation: Evaluation) -> None:
    result = calibration(evaluation, 1e-2, None)
    assert result["measurable"] is True
    assert (result["negatives"], result["negatives_needed"], result["positives"]) == (IMPOSTORS, 1_000, 300)
    assert result["false_matches"] == int(np.count_nonzero(evaluation.impostor >= result["threshold"]))
    lines = describe(result, report())
    assert (f"  rests on {result['false_matches']} false matches among {IMPOSTORS} impostor pairs "
            "and 300 genuine pairs") in lines
    assert not any("not measurable" in line for line in lines)


def test_an_unmeasurable_target_is_marked_with_its_counts(evaluation: Evaluation) -> None:
    result = calibration(evaluation, 1e-4, None)
    assert result["measurable"] is False
    assert result["negatives_needed"] == comparisons_needed(1e-4)
    lines = describe(result, report())
    assert any(line.strip().startswith(f"not measurable: {IMPOSTORS} impostor pairs "
                                       f"({comparisons_needed(1e-4)} needed for FAR 1e-4")
               for line in lines), lines
