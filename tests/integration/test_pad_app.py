"""The PAD app offscreen against a real Mosquitto: feed, badge, expiry, claims between two
apps, outcomes to the edge store, reconnects, malformed input, end-to-end latency."""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from PyQt6.QtCore import Qt

from edge.crm.outcomes import OutcomeSink, record_outcome, record_visit
from edge.crm.records import CrmStore
from mqtt.client import SUBSCRIBED_LINE, BranchClient
from mqtt.codec import encode
from mqtt.messages import Claim, utc_now
from mqtt.provision.run import ProvisionResult
from mqtt.topics import BranchTopics
from tests.mqtt_fixtures import (  # noqa: F401 (fixtures)
    MosquittoBroker,
    client_config,
    make_client,
    mosquitto_broker,
    provisioned_branch,
    wait_until,
)
from ui.app import PadApp
from ui.pages.rm import RmPage
from ui.state.config import PadConfig
from ui.state.sample import sample_arrival

# WORKAROUND: the offscreen platform warns "does not support propagateSizeHints()" for every
# top-level window with a layout; it is not about our code.
pytestmark = pytest.mark.qt_log_ignore("does not support propagateSizeHints")

WAIT_MS = 10_000


@pytest.fixture
def branch(provisioned_branch: ProvisionResult, mosquitto_broker) -> tuple[ProvisionResult, MosquittoBroker]:  # noqa: F811
    return provisioned_branch, mosquitto_broker(provisioned_branch)


def pad_config(prov: ProvisionResult, device: str, state: Path, **extra: object) -> PadConfig:
    mqtt = client_config(prov, device, state)
    values: dict[str, object] = {"branch_id": prov.branch_id, "role": "rm", "mqtt": mqtt,
                                 "expiry_check_s": 0.1}
    values.update(extra)
    return PadConfig.model_validate(values)


@pytest.fixture
def start_pad(qtbot, branch, tmp_path: Path) -> Iterator[Callable[..., PadApp]]:  # type: ignore[no-untyped-def]
    prov, _ = branch
    pads: list[PadApp] = []

    def start(device: str = "rm-1", language: str = "zh-CN", **extra: object) -> PadApp:
        pad = PadApp(pad_config(prov, device, tmp_path / "state", **extra), language)
        qtbot.addWidget(pad.window)
        pad.window.resize(1280, 800)
        pad.window.show()
        pad.start()
        qtbot.waitUntil(lambda: pad.window.header.online is True, timeout=WAIT_MS)
        pads.append(pad)
        return pad

    yield start
    for pad in pads:
        pad.stop()


@pytest.fixture
def edge(branch, tmp_path: Path) -> Iterator[BranchClient]:  # type: ignore[no-untyped-def]
    prov, _ = branch
    topics = BranchTopics("b1")
    client = make_client(prov, "edge-1", tmp_path / "edge", subscriptions=(topics.outcomes, topics.claims))
    client.start()
    assert client.wait_connected(10)
    yield client
    client.stop()


def page(pad: PadApp) -> RmPage:
    assert isinstance(pad.window.page, RmPage)
    return pad.window.page


def listed(pad: PadApp) -> list[str]:
    return [page(pad).feed.find(i).arrival.customer.customer_id for i in page(pad).feed_list.ids()]  # type: ignore[union-attr]


def test_feed_orders_badges_beeps_and_drops_expired(qtbot, start_pad, edge) -> None:  # type: ignore[no-untyped-def]
    pad = start_pad("rm-1")
    now = utc_now()
    edge.publish(sample_arrival(customer_id="c-other", assigned_rm="rm-2", seen_at=now))
    edge.publish(sample_arrival(customer_id="c-mine", assigned_rm="rm-1", seen_at=now - timedelta(seconds=5)))
    edge.publish(sample_arrival(customer_id="c-short", assigned_rm=None, seen_at=now + timedelta(seconds=1),
                                ttl=timedelta(seconds=3)))
    qtbot.waitUntil(lambda: len(listed(pad)) == 3, timeout=WAIT_MS)
    assert listed(pad) == ["c-mine", "c-short", "c-other"]
    assert pad.window.header.badge_count == 3 and pad.window.header.badge.text() == "新到访 3"
    assert page(pad).notifier.played == 3
    qtbot.mouseClick(page(pad).feed_list.viewport(), Qt.MouseButton.LeftButton,
                     pos=page(pad).feed_list.visualItemRect(page(pad).feed_list.item(0)).center())
    assert page(pad).card.arrival is not None and page(pad).card.arrival.customer.customer_id == "c-mine"
    assert pad.window.header.badge_count == 2
    qtbot.waitUntil(lambda: listed(pad) == ["c-mine", "c-other"], timeout=WAIT_MS)


def test_duplicates_and_malformed_messages_are_ignored(qtbot, start_pad, edge) -> None:  # type: ignore[no-untyped-def]
    pad = start_pad("rm-1")
    topic = BranchTopics("b1").arrivals
    good = sample_arrival(customer_id="c-good")
    wrong_branch = sample_arrival(branch_id="b2")
    claim_on_arrivals = Claim(branch_id="b1", arrival_id=good.id, visit_id=good.visit_id,
                              customer_id="c-good", rm_id="rm-1", device_id="rm-1")
    bad = [b"not json", b"{}", b'{"schema": "arrival/9"}', b"\xff\xfe" * 10, encode(wrong_branch),
           encode(claim_on_arrivals), encode(good)[:-20]]
    for payload in bad:
        assert edge.publish_raw(topic, payload)
    assert edge.publish_raw(topic, encode(good)) and edge.publish_raw(topic, encode(good))
    edge.publish(good)
    qtbot.waitUntil(lambda: pad.link.receiver.stats().get("duplicates", 0) >= 2, timeout=WAIT_MS)
    stats = pad.link.receiver.stats()
    assert stats["rejected"] == len(bad) and stats["accepted"] == 1
    assert listed(pad) == ["c-good"] and page(pad).notifier.played == 1


def test_claim_conflict_between_two_apps(qtbot, start_pad, edge) -> None:  # type: ignore[no-untyped-def]
    pad_1, pad_2 = start_pad("rm-1"), start_pad("rm-2", language="en")
    arrival = sample_arrival(assigned_rm=None)
    edge.publish(arrival)
    for pad in (pad_1, pad_2):
        qtbot.waitUntil(lambda pad=pad: len(listed(pad)) == 1, timeout=WAIT_MS)
        page(pad).on_feed_list_arrival_chosen(arrival.id)
    # Both tap Claim before either has heard of the other's claim: rm-1 was first.
    qtbot.mouseClick(page(pad_1).card.claim_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(page(pad_2).card.claim_button, Qt.MouseButton.LeftButton)
    assert page(pad_2).claims.state(arrival.visit_id).mine, "its own claim shows at once"
    qtbot.waitUntil(lambda: page(pad_2).claims.state(arrival.visit_id).holder == "rm-1", timeout=WAIT_MS)
    qtbot.waitUntil(lambda: len(page(pad_1).claims._active[arrival.visit_id]) == 2, timeout=WAIT_MS)
    assert page(pad_1).claims.state(arrival.visit_id).mine
    assert page(pad_2).card.claim_label.text() == "Claimed by rm-1"
    assert not page(pad_2).card.outcome_button.isEnabled()
    assert page(pad_1).card.claim_label.text() == "已由我认领"
    # rm-1 releases: rm-2's claim is next in line on both PADs.
    qtbot.mouseClick(page(pad_1).card.release_button, Qt.MouseButton.LeftButton)
    for pad in (pad_1, pad_2):
        qtbot.waitUntil(lambda pad=pad: page(pad).claims.state(arrival.visit_id).holder == "rm-2",
                        timeout=WAIT_MS)
    assert "rm-2" in page(pad_1).feed_list.item(0).text()


def test_outcome_round_trip_to_the_edge_store(qtbot, start_pad, edge, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pad = start_pad("rm-1", language="en")
    arrival = sample_arrival()
    edge.publish(arrival)
    qtbot.waitUntil(lambda: len(listed(pad)) == 1, timeout=WAIT_MS)
    rm = page(pad)
    rm.on_feed_list_arrival_chosen(arrival.id)
    qtbot.mouseClick(rm.card.outcome_button, Qt.MouseButton.LeftButton)
    assert rm.right.currentWidget() is rm.outcome
    qtbot.mouseClick(rm.outcome.result_buttons["product_sold"], Qt.MouseButton.LeftButton)
    rm.outcome.product.setCurrentIndex(1)
    rm.outcome.follow_up.setChecked(True)
    rm.outcome.follow_up_on.setDate(rm.outcome.follow_up_on.date().addDays(7))
    qtbot.keyClicks(rm.outcome.note, "wants a call")
    with qtbot.waitSignal(rm.outcome_sent, timeout=WAIT_MS) as sent:
        qtbot.mouseClick(rm.outcome.submit_button, Qt.MouseButton.LeftButton)
    assert rm.status.text() == "Outcome recorded"
    with CrmStore.open(tmp_path / "crm.db") as store:
        # The edge remembered the visit when it built the arrival; outcomes must be for it.
        record_visit(store, arrival.visit_id, arrival.customer.customer_id, arrival.seen_at.date())
        sink = OutcomeSink(store)  # the edge's outcome store (edge/crm/outcomes.py)
        kinds = []
        while "outcome" not in kinds:  # the PAD's automatic claim comes first
            delivery = edge.receiver.queue.get(timeout=10)  # type: ignore[union-attr]
            kinds.append(delivery.message.SCHEMA)
            sink(delivery)
        assert kinds == ["claim", "outcome"]
        row = store.execute("SELECT message_id, visit_id, rm_id, result, product_ids, follow_up_on, note "
                            "FROM crm_outcomes").fetchall()
        assert not record_outcome(store, sent.args[0]), "the same outcome is stored once"
    follow = (utc_now().astimezone().date() + timedelta(days=7)).isoformat()
    assert row == [(sent.args[0].id, arrival.visit_id, "rm-1", "product_sold", '["wm-r2-180"]', follow,
                    "wants a call")]
    assert rm.claims.state(arrival.visit_id).mine, "recording an outcome claims the customer"


def test_incomplete_outcome_shows_why_and_sends_nothing(qtbot, start_pad, edge) -> None:  # type: ignore[no-untyped-def]
    pad = start_pad("rm-1", language="en")
    arrival = sample_arrival()
    edge.publish(arrival)
    qtbot.waitUntil(lambda: len(listed(pad)) == 1, timeout=WAIT_MS)
    rm = page(pad)
    rm.on_feed_list_arrival_chosen(arrival.id)
    qtbot.mouseClick(rm.card.outcome_button, Qt.MouseButton.LeftButton)
    qtbot.mouseClick(rm.outcome.result_buttons["follow_up"], Qt.MouseButton.LeftButton)
    qtbot.mouseClick(rm.outcome.submit_button, Qt.MouseButton.LeftButton)
    assert rm.outcome.error.text() == "A follow-up needs a date"
    assert rm.right.currentWidget() is rm.outcome
    assert len(pad.link.client.outbox) == 0


def test_reconnect_shows_state_and_loses_nothing(qtbot, start_pad, edge, branch) -> None:  # type: ignore[no-untyped-def]
    _, broker = branch
    pad = start_pad("rm-1")
    header = pad.window.header
    edge.publish(sample_arrival(customer_id="c-before"))
    qtbot.waitUntil(lambda: listed(pad) == ["c-before"], timeout=WAIT_MS)
    broker.stop()
    qtbot.waitUntil(lambda: header.online is False, timeout=WAIT_MS)
    assert header.connection.text() == "连接中断，正在重连…"
    during = [sample_arrival(customer_id=f"c-during-{i}", seen_at=utc_now() + timedelta(seconds=i))
              for i in range(3)]
    for arrival in during:
        edge.publish(arrival)  # waits in the edge's outbox
    rm = page(pad)
    rm.on_feed_list_arrival_chosen(rm.feed.entries()[0].id)
    qtbot.mouseClick(rm.card.claim_button, Qt.MouseButton.LeftButton)  # waits in the PAD's outbox
    assert rm.claims.state(rm.feed.entries()[0].arrival.visit_id).mine
    broker.start()
    qtbot.waitUntil(lambda: header.online is True, timeout=WAIT_MS)
    assert header.connection.text() == "已连接"
    qtbot.waitUntil(lambda: len(listed(pad)) == 4, timeout=WAIT_MS)
    edge.publish_raw(BranchTopics("b1").arrivals, encode(during[0]))  # redelivery after the outage
    qtbot.waitUntil(lambda: pad.link.receiver.stats().get("duplicates", 0) >= 1, timeout=WAIT_MS)
    assert sorted(listed(pad)) == ["c-before", "c-during-0", "c-during-1", "c-during-2"]
    assert page(pad).notifier.played == 4
    claim = edge.receiver.queue.get(timeout=10).message  # the claim tapped offline reached the edge
    assert isinstance(claim, Claim) and (claim.customer_id, claim.rm_id) == ("c-before", "rm-1")


def test_arrivals_reach_the_feed_end_to_end(qtbot, start_pad, edge, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Edge BranchClient (the daemon's publisher) -> Mosquitto (TLS, ACL) -> the feed on screen.
    The latency is printed, not bounded: ``branch-edge bench notify`` measures it."""
    pad = start_pad("rm-1")
    rm = page(pad)
    latencies = []
    for i in range(20):
        arrival = sample_arrival(customer_id=f"c-{i}", seed=i)
        start = time.perf_counter()
        with qtbot.waitSignal(rm.arrival_shown, timeout=WAIT_MS):
            edge.publish(arrival)
        qtbot.waitUntil(lambda i=i: f"c-{i}" in listed(pad), timeout=WAIT_MS)
        latencies.append(time.perf_counter() - start)
    result = {"bench": "pad_e2e_latency", "n": len(latencies),
              "median_ms": round(statistics.median(latencies) * 1000, 1),
              "p95_ms": round(sorted(latencies)[int(0.95 * len(latencies)) - 1] * 1000, 1),
              "max_ms": round(max(latencies) * 1000, 1)}
    print(json.dumps(result))
    (tmp_path / "pad-latency.json").write_text(json.dumps(result))
    assert sorted(listed(pad)) == sorted(f"c-{i}" for i in range(20))  # each once


def test_a_restarted_app_shows_the_same_feed_once(qtbot, start_pad, edge) -> None:  # type: ignore[no-untyped-def]
    pad = start_pad("rm-1")
    now = utc_now()
    arrivals = [sample_arrival(customer_id=f"c-{i}", seen_at=now + timedelta(seconds=i)) for i in range(2)]
    short = sample_arrival(customer_id="c-short", ttl=timedelta(seconds=2))
    for arrival in (*arrivals, short):
        edge.publish(arrival)
    qtbot.waitUntil(lambda: len(listed(pad)) == 3, timeout=WAIT_MS)
    page(pad).on_feed_list_arrival_chosen(arrivals[0].id)
    qtbot.mouseClick(page(pad).card.claim_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: len(pad.link.client.outbox) == 0, timeout=WAIT_MS)
    pad.stop()
    pad.window.close()
    qtbot.waitUntil(lambda: utc_now() >= short.expires_at, timeout=WAIT_MS)  # expires while the app is down
    again = start_pad("rm-1")
    assert listed(again) == ["c-1", "c-0"]
    assert page(again).claims.state(arrivals[0].visit_id).mine
    edge.publish_raw(BranchTopics("b1").arrivals, encode(arrivals[1]))  # a late redelivery
    qtbot.waitUntil(lambda: again.link.receiver.stats().get("duplicates", 0) >= 1, timeout=WAIT_MS)
    assert listed(again) == ["c-1", "c-0"]


def test_a_client_says_when_the_broker_has_acknowledged_its_subscriptions(  # type: ignore[no-untyped-def]
        branch, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """What is published before this line is lost to a first connection: the demo waits for it."""
    prov, _ = branch
    topics = BranchTopics("b1")

    def said() -> list[str]:
        return [r.getMessage() for r in caplog.records if SUBSCRIBED_LINE in r.getMessage()]

    with caplog.at_level(logging.INFO, logger="mqtt.client"):
        client = make_client(prov, "edge-1", tmp_path / "edge",
                             subscriptions=(topics.outcomes, topics.claims))
        client.start()
        try:
            assert wait_until(lambda: bool(said()), 30)
        finally:
            client.stop()
    assert said() == [f"{SUBSCRIBED_LINE} 2 topics"]
