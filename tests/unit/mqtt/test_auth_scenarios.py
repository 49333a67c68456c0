"""The counter scenarios on the bus: the edge's policies become one retained, versioned
message that fits however many scenarios a bank lists; its limits match the policy file's;
the ACL lets only the edge write it; a receiver hands the same retained state over again."""

from __future__ import annotations

import dataclasses
import re
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from edge.core.auth_policy import CHECKS, RATIONALE_MAX, SCENARIO_NAME, TITLE_MAX, policies_from_dict
from edge.counter.policies import AuthError, load_policies
from edge.counter.service import scenarios_message
from mqtt import codec
from mqtt.dedup import SeenIds
from mqtt.messages import (
    MAX_SCENARIOS,
    SCENARIO_NAME_PATTERN,
    AuthEscalation,
    AuthScenarios,
    Scenario,
    utc_now,
)
from mqtt.provision.acl import branch_acl
from mqtt.provision.devices import Device
from mqtt.receiver import Receiver
from mqtt.topics import BranchTopics, schema_for_topic


def meta(cls: type, name: str) -> dict[str, object]:
    return dict(next(f.metadata for f in dataclasses.fields(cls) if f.name == name))


def test_the_shipped_policies_travel_whole_and_in_file_order() -> None:
    policies = load_policies()
    message = scenarios_message("b1", policies)
    received = codec.decode(codec.encode(message))
    assert received == message and isinstance(received, AuthScenarios)
    assert [s.name for s in received.scenarios] == list(policies.scenarios)
    closure = next(s for s in received.scenarios if s.name == "account_closure")
    assert (closure.title, closure.auto_approve) == ("销户", False)
    withdrawal = next(s for s in received.scenarios if s.name == "large_withdrawal")
    assert withdrawal.auto_approve_max_amount == 50000.0 and withdrawal.checks == list(CHECKS)
    assert received.escalation_timeout_s == policies.escalation_timeout_s
    assert received.request_ttl_s == policies.request_ttl_s
    assert AuthScenarios.RETAINED and received.schema_tag() == "auth_scenarios/1"


def test_the_message_limits_are_the_policy_files() -> None:
    assert f"^{SCENARIO_NAME.pattern}$" == SCENARIO_NAME_PATTERN
    assert meta(Scenario, "title")["max_length"] == meta(Scenario, "title_en")["max_length"] == TITLE_MAX
    assert meta(Scenario, "rationale")["max_length"] == RATIONALE_MAX
    assert meta(Scenario, "checks")["max_items"] >= len(CHECKS)  # type: ignore[operator]
    assert all(len(c) <= meta(Scenario, "checks")["max_length"] for c in CHECKS)  # type: ignore[operator]


def test_the_most_scenarios_at_their_longest_still_fit_one_message() -> None:
    widest = "証" * TITLE_MAX  # every CJK character is six bytes once JSON-escaped
    table = {"title": widest, "title_en": "W" * TITLE_MAX, "rationale": "理" * RATIONALE_MAX,
             "auto_approve_max_amount": 123456789.0}
    policies = policies_from_dict({"scenario": {f"s{i:03d}_{'x' * 59}": table for i in range(MAX_SCENARIOS)}})
    payload = codec.encode(scenarios_message("b1", policies))
    assert len(payload) <= codec.DEFAULT_MAX_PAYLOAD
    assert len(codec.decode(payload).scenarios) == MAX_SCENARIOS  # type: ignore[attr-defined]


def test_a_policy_file_with_more_scenarios_than_one_message_carries_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "many.toml"
    path.write_text("".join(f"[scenario.s{i}]\n" for i in range(MAX_SCENARIOS + 1)), encoding="utf-8")
    with pytest.raises(AuthError, match=f"at most {MAX_SCENARIOS}"):
        load_policies(path)


def test_only_the_edge_writes_the_scenarios_and_the_counter_roles_read_them() -> None:
    topic = BranchTopics("b1").auth_scenarios
    assert schema_for_topic(topic) == ("b1", "auth_scenarios")
    devices = [Device("edge-1", "edge"), Device("teller-1", "teller"), Device("sup-1", "supervisor"),
               Device("rm-1", "rm")]
    acl = branch_acl("b1", devices)
    blocks = {b.splitlines()[0]: b.splitlines()[1:] for b in acl.split("\n\n") if b.startswith("user ")}
    assert f"topic write {topic}" in blocks["user edge-1"]
    for reader in ("user teller-1", "user sup-1"):
        assert f"topic read {topic}" in blocks[reader] and f"topic write {topic}" not in blocks[reader]
    assert not [line for line in blocks["user rm-1"] if line.endswith(topic)]


def test_retained_state_is_handed_over_again_and_events_only_once(tmp_path: Path) -> None:
    receiver = Receiver(SeenIds(tmp_path / "seen.db"))
    topics = BranchTopics("b1")
    state = codec.encode(scenarios_message("b1", load_policies()))
    event = codec.encode(AuthEscalation(
        branch_id="b1", expires_at=utc_now() + timedelta(minutes=1), request_id=str(uuid.uuid4()),
        teller_device_id="teller-1", scenario="password_reset", masked_card_number="1101**0023"))
    for _ in range(2):  # the broker re-sends both after a reconnect, with the same ids
        receiver.accept(topics.auth_scenarios, state)
        receiver.accept(topics.auth_escalations, event)
    schemas = [receiver.queue.get_nowait().message.SCHEMA for _ in range(receiver.queue.qsize())]
    assert schemas == ["auth_scenarios", "auth_escalation", "auth_scenarios"]
    assert receiver.stats()["duplicates"] == 1


def test_scenario_names_follow_the_policy_files_rule() -> None:
    assert re.fullmatch(SCENARIO_NAME_PATTERN, "large_withdrawal")
    bad = codec.to_dict(scenarios_message("b1", load_policies()))
    bad["scenarios"][0]["name"] = "Large Withdrawal"
    with pytest.raises(codec.DecodeError, match="does not match"):
        codec.from_dict(bad)
