"""The pure authorization policy: decision table, properties, the policy file."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.core.auth_policy import (
    CHECKS,
    REASON_TEXT,
    SCENARIO_KEYS,
    Evidence,
    Policies,
    PolicyError,
    ScenarioPolicy,
    decide,
    policies_digest,
    policies_from_dict,
    reason_text,
)
from edge.counter.policies import DEFAULT_POLICIES, AuthError, load_policies

POLICY = ScenarioPolicy(name="t", title_zh="测试", title_en="test", match_threshold=0.40,
                        escalate_threshold=0.30, liveness_threshold=0.5, min_live_frames=2)
GOOD = Evidence(holder="match", live_supplied=3, live_frames=3, live_scores=(0.9, 0.95, 0.8),
                match_score=0.55)
RANK = {"reject": 0, "escalate": 1, "approve": 2}


@pytest.mark.parametrize(("change", "policy_change", "verdict", "reason"), [
    ({}, {}, "approve", "all_checks_passed"),
    ({"card_problems": ("expired",)}, {}, "reject", "card_invalid"),
    ({"card_problems": ("expired",)}, {"checks": frozenset(CHECKS) - {"card_validity"}},
     "approve", "all_checks_passed"),  # the card check is off for this scenario
    ({"holder": "mismatch"}, {}, "reject", "holder_mismatch"),
    ({"holder": "unknown"}, {}, "escalate", "holder_unknown"),
    ({"holder": "unknown"}, {"escalation": False}, "reject", "escalation_not_allowed"),
    ({"live_scores": (0.1, 0.2, 0.9)}, {}, "reject", "liveness_failed"),
    ({"live_frames": 1, "live_scores": (0.9,)}, {}, "reject", "too_few_live_frames"),
    ({"live_scores": ()}, {}, "reject", "liveness_unavailable"),
    ({"live_quality_ok": False}, {}, "reject", "poor_live_quality"),
    ({"live_face_found": False}, {}, "reject", "no_face_live"),
    ({"card_face_found": False, "match_score": None}, {}, "reject", "no_face_card"),
    ({"match_score": 0.35}, {}, "escalate", "face_match_low"),
    ({"match_score": 0.35}, {"escalation": False}, "reject", "face_match_low"),
    ({"match_score": 0.10}, {}, "reject", "face_mismatch"),
    ({"match_score": 0.40}, {}, "approve", "all_checks_passed"),  # at the threshold: match
    ({"live_supplied": 0, "live_frames": 0, "live_scores": (), "match_score": None}, {},
     "escalate", "no_live_capture"),
    ({}, {"auto_approve": False}, "escalate", "supervisor_required"),
    ({"amount": 60000.0}, {"auto_approve_max_amount": 50000.0}, "escalate", "amount_over_limit"),
    ({"amount": 50000.0}, {"auto_approve_max_amount": 50000.0}, "approve", "all_checks_passed"),
    ({"live_scores": (0.1, 0.1, 0.1), "match_score": 0.9},
     {"checks": frozenset({"face_match", "account_holder"})}, "approve", "all_checks_passed"),
])
def test_decision_table(change, policy_change, verdict, reason):
    policy = replace(POLICY, **policy_change)
    decision = decide(policy, replace(GOOD, **change))
    assert decision.verdict == verdict
    assert reason in decision.reasons


def test_scores_carry_values_and_thresholds():
    decision = decide(POLICY, GOOD)
    by_name = {s.name: s for s in decision.scores}
    assert by_name["face_match"].value == 0.55 and by_name["face_match"].threshold == 0.40
    assert by_name["liveness"].value == 0.9  # the median of three frames
    assert by_name["liveness"].threshold == 0.5


def test_every_reason_has_words_in_both_languages():
    for code, (zh, en) in REASON_TEXT.items():
        assert zh and en and zh != en, code
    assert reason_text("face_mismatch", "en") == "the live face does not match the card photo"
    assert reason_text("face_mismatch") == "人证比对不一致"
    assert reason_text("note:customer known to me", "en") == "note:customer known to me"


evidence = st.builds(
    Evidence,
    card_problems=st.lists(st.sampled_from(["expired", "check_digit"]), max_size=2).map(tuple),
    holder=st.sampled_from(["match", "mismatch", "unknown"]),
    live_supplied=st.integers(0, 3),
    live_frames=st.integers(0, 3),
    live_scores=st.lists(st.floats(0, 1), max_size=3).map(tuple),
    live_quality_ok=st.booleans(),
    live_face_found=st.booleans(),
    card_face_found=st.booleans(),
    match_score=st.one_of(st.none(), st.floats(-1, 1)),
    amount=st.one_of(st.none(), st.floats(0, 1e6)),
)
policies = st.builds(
    ScenarioPolicy, name=st.just("p"), title_zh=st.just("p"), title_en=st.just("p"),
    checks=st.sets(st.sampled_from(CHECKS)).map(frozenset),
    auto_approve=st.booleans(), escalation=st.booleans(),
    auto_approve_max_amount=st.one_of(st.none(), st.floats(0, 1e6)),
)


@given(policies, evidence)
def test_approval_needs_every_enabled_check_to_pass(policy, ev):
    decision = decide(policy, ev)
    assert decision.reasons
    if decision.verdict != "approve":
        return
    assert policy.auto_approve
    if "card_validity" in policy.checks:
        assert not ev.card_problems
    if "account_holder" in policy.checks:
        assert ev.holder == "match"
    if "face_match" in policy.checks:
        assert ev.match_score is not None and ev.match_score >= policy.match_threshold
    if "liveness" in policy.checks:
        assert ev.live_frames >= policy.min_live_frames and ev.live_scores


@given(policies, evidence, st.floats(-1, 1), st.floats(-1, 1))
def test_a_higher_match_score_never_worsens_the_verdict(policy, ev, a, b):
    low, high = sorted((a, b))
    worse = decide(policy, replace(ev, match_score=low)).verdict
    better = decide(policy, replace(ev, match_score=high)).verdict
    assert RANK[better] >= RANK[worse]


@given(policies, evidence)
def test_no_escalation_allowed_means_never_escalate(policy, ev):
    assert decide(replace(policy, escalation=False), ev).verdict != "escalate"


def test_shipped_policy_file_loads_with_calibrated_thresholds():
    policies = load_policies()
    assert {"card_replacement", "loss_report", "password_reset", "large_withdrawal"} <= set(
        policies.scenarios)
    withdrawal = policies.scenarios["large_withdrawal"]
    assert withdrawal.auto_approve_max_amount == 50000.0
    assert withdrawal.match_threshold > policies.scenarios["card_replacement"].match_threshold
    assert not policies.scenarios["account_closure"].auto_approve
    for policy in policies.scenarios.values():
        assert policy.escalate_threshold < policy.match_threshold
        assert policy.title("zh") != policy.title("en")
    raw = tomllib.loads(DEFAULT_POLICIES.read_text(encoding="utf-8"))
    assert raw["defaults"]["match_threshold"] == policies.scenarios["info_change"].match_threshold


toml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-2, 2) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
policy_keys = st.sampled_from(["scenario", "defaults", "escalation_timeout_s", "checks", "x"])


@given(st.dictionaries(policy_keys, toml_values | st.dictionaries(
    st.sampled_from(["a", "b_1"]), st.dictionaries(st.sampled_from(sorted(
        {"title", "checks", "match_threshold", "escalate_threshold", "min_live_frames", "auto_approve",
         "auto_approve_max_amount", "bogus"})), toml_values, max_size=4), max_size=2), max_size=3))
def test_any_policy_data_loads_or_is_refused_with_a_policy_error(data):
    try:
        policies = policies_from_dict(data)
    except PolicyError:
        return
    for policy in policies.scenarios.values():
        assert policy.escalate_threshold <= policy.match_threshold
        assert policy.checks <= set(CHECKS)


@pytest.mark.parametrize(("data", "message"), [
    ({"scenario": {}}, "at least one"),
    ({"scenario": {"a": {"match_threshold": 2}}}, "scenario.a.match_threshold"),
    ({"scenario": {"a": {"checks": ["face_match", "horoscope"]}}}, "horoscope"),
    ({"scenario": {"a": {"colour": "red"}}}, "unknown key"),
    ({"scenario": {"a": {"auto_approve": "yes"}}}, "true or false"),
    ({"scenario": {"a": {"match_threshold": 0.3, "escalate_threshold": 0.4}}}, "must not exceed"),
    ({"scenario": {"a": {}}, "escalation_timeout_s": 0}, "escalation_timeout_s"),
    ({"scenario": {"a b": {}}}, "name"),
    ({"scenario": {"挂失": {}}}, "name"),
    ({"scenario": {"Loss": {}}}, "name"),
    ({"scenario": {"a": {"min_live_frames": 1.5}}}, "whole number"),
    ({"scenario": {"a": {"rationale": "x" * 201}}}, "scenario.a.rationale"),
    ({"scenario": {"a": {"title": ""}}}, "scenario.a.title"),
    ({"scenarios": {}}, "unknown top-level"),
])
def test_bad_policy_data_is_refused_with_the_key(data, message):
    with pytest.raises(PolicyError, match=message):
        policies_from_dict(data)


def test_a_key_left_out_keeps_the_dataclass_default():
    policies = policies_from_dict({"scenario": {"a": {}}})
    assert policies.scenarios["a"] == ScenarioPolicy(name="a", title_zh="a", title_en="a")
    assert (policies.escalation_timeout_s, policies.request_ttl_s) == (
        Policies({}).escalation_timeout_s, Policies({}).request_ttl_s)


def test_every_policy_field_can_be_set_from_the_file():
    settable = {name for name, _ in SCENARIO_KEYS.values()}
    assert settable == {f.name for f in dataclasses.fields(ScenarioPolicy)} - {"name"}
    policy = policies_from_dict({"defaults": {"liveness_threshold": 0.7}, "scenario": {"a": {
        "title": "甲", "title_en": "A", "rationale": "why", "checks": ["face_match"],
        "match_threshold": 0.5, "escalate_threshold": 0.35, "min_live_frames": 3,
        "auto_approve": False, "escalation": False, "auto_approve_max_amount": 10}}}).scenarios["a"]
    assert policy == ScenarioPolicy(
        name="a", title_zh="甲", title_en="A", rationale="why", checks=frozenset({"face_match"}),
        match_threshold=0.5, escalate_threshold=0.35, liveness_threshold=0.7, min_live_frames=3,
        auto_approve=False, escalation=False, auto_approve_max_amount=10.0)


def test_the_digest_names_what_the_policies_say_not_how_the_file_is_written():
    text = DEFAULT_POLICIES.read_text(encoding="utf-8")
    shipped = policies_digest(policies_from_dict(tomllib.loads(text)))
    reworded = "# another comment\n" + text.replace("   # CNY;", "  # CNY;")
    assert policies_digest(policies_from_dict(tomllib.loads(reworded))) == shipped
    stricter = text.replace("match_threshold = 0.46", "match_threshold = 0.47", 1)
    assert policies_digest(policies_from_dict(tomllib.loads(stricter))) != shipped
    assert len(shipped) == 64 and int(shipped, 16) >= 0


def test_bad_policy_file_is_a_user_error(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text("[scenario.x]\nmatch_threshold = 'high'\n", encoding="utf-8")
    with pytest.raises(AuthError, match=r"scenario\.x\.match_threshold"):
        load_policies(path)
    with pytest.raises(AuthError, match="cannot read"):
        load_policies(tmp_path / "missing.toml")


def test_cli_prints_the_policies_and_records_a_holder_id(tmp_path, capsys, monkeypatch):
    import io
    import json

    from edge.cli import main
    from edge.store.crypto import KeyRing, generate_key_file, read_key_file
    from edge.store.database import Store

    assert main(["auth", "policies", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {r["scenario"] for r in shown["scenarios"]} >= {"card_replacement", "large_withdrawal"}
    key = tmp_path / "edge.key"
    generate_key_file(key)
    db = tmp_path / "edge.db"
    keys = KeyRing(read_key_file(key))
    with Store.open(db, keys) as store:
        store.upsert_customer("c-1", actor="test")
    monkeypatch.setattr("sys.stdin", io.StringIO("11010519491231002x\n"))
    assert main(["auth", "set-holder-id", "c-1", "--db", str(db), "--key-file", str(key), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"customer_id": "c-1", "recorded": True}
    with Store.open(db, keys, create=False) as store:
        assert store.holder_id_matches("c-1", "11010519491231002X") is True
        assert store.holder_id_matches("c-1", "11010519491231004X") is False
        assert "11010519491231002" not in repr(store.audit_entries("c-1"))
    assert b"11010519491231002" not in db.read_bytes()
    monkeypatch.setattr("sys.stdin", io.StringIO("11010519491231002X\n"))
    assert main(["auth", "set-holder-id", "nobody", "--db", str(db), "--key-file", str(key)]) == 2
    assert "unknown customer" in capsys.readouterr().err
