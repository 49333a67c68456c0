"""Time to notify: from the ground truth's minimum-size frame to the PAD's receipt."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge.tools.demo.lobby import Received, time_to_notify
from tests.mqtt_fixtures import arrival


def received(customer_id: str, at: datetime) -> Received:
    message = arrival("b1")
    card = message.customer.__class__(customer_id=customer_id, display_name="x", tier="t",
                                      masked_id_number="", masked_account="")
    return Received(message.__class__(**{**message.__dict__, "customer": card}), 0.0, at)


def test_time_to_notify_counts_from_the_minimum_size_frame():
    start = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    people = [
        {"customer_id": "A", "enrolled": True, "min_size_s": 2.0},
        {"customer_id": "B", "enrolled": True, "min_size_s": 5.0},
        {"customer_id": "S", "enrolled": False, "min_size_s": 1.0},
        {"customer_id": "N", "enrolled": True, "min_size_s": None},
    ]
    got = [received("A", start + timedelta(seconds=2.3)), received("B", start + timedelta(seconds=5.1)),
           received("S", start + timedelta(seconds=9))]
    result = time_to_notify(got, people, start)
    assert result["count"] == 2  # strangers and never-sized people do not count
    assert result["p50"] == 200.0 and result["max"] == 300.0
    assert result["p95"] == 300.0
    assert time_to_notify(got, people, None) == {"count": 0}
