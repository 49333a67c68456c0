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
    rate_key,
    reason_text,
    resolve_thresholds,
)
from edge.counter.policies import DEFAULT_POLICIES, AuthError, load_policies
from models.pack import load_pack

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
    ({"amount": -1.0}, {"auto_approve_max_amount": 50000.0}, "reject", "amount_invalid"),
    ({"amount": -1.0}, {}, "reject", "amount_invalid"),
    ({"amount": 0.0}, {"auto_approve_max_amount": 50000.0}, "approve", "all_checks_passed"),
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
    # The rates of the file became the default pack's calibrated cosines.
    calibrated = load_pack("default").counter_thresholds
    raw = tomllib.loads(DEFAULT_POLICIES.read_text(encoding="utf-8"))
    routine = raw["class"]["routine"]
    info = policies.scenarios["info_change"]
    assert info.match_threshold == calibrated[rate_key(routine["match_far"])]
    assert info.escalate_threshold == calibrated[rate_key(routine["escalate_far"])]


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
    policy = policies_from_dict({"defaults": {"liveness_threshold": 0.7}, "class": {"c": {}},
                                 "scenario": {"a": {
        "title": "甲", "title_en": "A", "rationale": "why", "class": "c", "checks": ["face_match"],
        "match_threshold": 0.5, "escalate_threshold": 0.35, "min_live_frames": 3,
        "auto_approve": False, "escalation": False, "auto_approve_max_amount": 10}}}).scenarios["a"]
    assert policy == ScenarioPolicy(
        name="a", title_zh="甲", title_en="A", rationale="why", risk_class="c",
        checks=frozenset({"face_match"}),
        match_threshold=0.5, escalate_threshold=0.35, liveness_threshold=0.7, min_live_frames=3,
        auto_approve=False, escalation=False, auto_approve_max_amount=10.0)
    rated = policies_from_dict({"scenario": {"a": {"match_far": 1e-4, "escalate_far": 1e-2}}})
    resolved = resolve_thresholds(rated, {"1e-4": 0.5, "1e-2": 0.3}, "pack p").scenarios["a"]
    assert (resolved.match_far, resolved.escalate_far) == (1e-4, 1e-2)
    assert (resolved.match_threshold, resolved.escalate_threshold) == (0.5, 0.3)


def test_the_digest_names_what_the_policies_say_not_how_the_file_is_written():
    text = DEFAULT_POLICIES.read_text(encoding="utf-8")
    shipped = policies_digest(policies_from_dict(tomllib.loads(text)))
    reworded = "# another comment\n" + text.replace("   # CNY;", "  # CNY;")
    assert policies_digest(policies_from_dict(tomllib.loads(reworded))) == shipped
    stricter = text.replace("auto_approve_max_amount = 50000.0", "auto_approve_max_amount = 40000.0", 1)
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


# --- the scenario catalogue and thresholds as false-accept rates ---------------------------

SHIPPED_CLASSES = {"routine", "sensitive", "high_risk", "proxy"}


def test_the_catalogue_has_the_high_frequency_counter_scenarios_each_with_a_rationale():
    policies = load_policies()
    assert len(policies.scenarios) >= 23
    for policy in policies.scenarios.values():
        assert policy.rationale and policy.title_zh and policy.title_en, policy.name
        assert policy.risk_class in SHIPPED_CLASSES, policy.name
        assert policy.match_far is not None and policy.escalate_far is not None, policy.name
    by_class: dict[str, list[ScenarioPolicy]] = {}
    for policy in policies.scenarios.values():
        by_class.setdefault(policy.risk_class, []).append(policy)
    assert all(p.auto_approve and p.match_far == 1e-3 for p in by_class["routine"])
    assert all(p.auto_approve and p.match_far == 1e-4 for p in by_class["sensitive"])
    assert not any(p.auto_approve for p in by_class["high_risk"] + by_class["proxy"])
    # an agent brings their own card: the card holder is not the account holder
    assert all("account_holder" not in p.checks for p in by_class["proxy"])
    for name in ("account_opening", "account_closure", "loss_release", "passbook_renewal",
                 "cross_branch_withdrawal", "transfer_over_limit", "wealth_purchase", "deposit_proof"):
        assert name in policies.scenarios


def genuine(policy: ScenarioPolicy, amount: float | None = None) -> Evidence:
    """A genuine customer: every check passes, the face score just at the threshold."""
    return replace(GOOD, match_score=policy.match_threshold, amount=amount)


def test_a_routine_scenario_approves_a_genuine_customer_and_escalates_above_its_amount_limit():
    policy = load_policies().scenarios["cash_withdrawal"]
    limit = policy.auto_approve_max_amount
    assert policy.risk_class == "routine" and limit is not None
    assert decide(policy, genuine(policy, limit)).verdict == "approve"
    over = decide(policy, genuine(policy, limit + 0.01))
    assert (over.verdict, over.reasons) == ("escalate", ("amount_over_limit",))
    low = decide(policy, replace(genuine(policy), match_score=policy.match_threshold - 1e-6))
    assert (low.verdict, low.reasons) == ("escalate", ("face_match_low",))


@given(evidence)
def test_a_high_risk_scenario_never_approves_automatically(ev):
    policies = load_policies()
    for name in ("account_closure", "account_closure_proxy", "proxy_business", "guardian_business"):
        assert decide(policies.scenarios[name], ev).verdict != "approve"


def test_a_more_specific_table_overrides_the_class_and_either_threshold_form_replaces_the_other():
    data = {"defaults": {"match_far": 1e-3, "escalate_far": 1e-2},
            "class": {"strict": {"match_far": 1e-4, "auto_approve": False}},
            "scenario": {"a": {"class": "strict"}, "b": {"class": "strict", "match_threshold": 0.6},
                         "c": {}}}
    resolved = resolve_thresholds(policies_from_dict(data), {"1e-2": 0.3, "1e-3": 0.4, "1e-4": 0.5}, "p")
    a, b, c = (resolved.scenarios[n] for n in "abc")
    assert (a.match_threshold, a.escalate_threshold, a.auto_approve) == (0.5, 0.3, False)
    assert (b.match_threshold, b.match_far, b.auto_approve) == (0.6, None, False)
    assert (c.match_threshold, c.risk_class, c.auto_approve) == (0.4, "", True)


@pytest.mark.parametrize(("data", "message"), [
    ({"scenario": {"a": {"class": "vip"}}}, "scenario.a.class"),
    ({"class": {"x": {"colour": "red"}}, "scenario": {"a": {"class": "x"}}}, "class.x"),
    ({"class": {"x": {"title": "t"}}, "scenario": {"a": {}}}, "class.x"),
    ({"scenario": {"a": {"match_far": 1e-2, "escalate_far": 1e-3}}}, "escalate_far must not be below"),
    ({"scenario": {"a": {"match_far": 0}}}, "scenario.a.match_far"),
])
def test_bad_classes_and_rates_are_refused_with_the_key(data, message):
    with pytest.raises(PolicyError, match=message):
        policies_from_dict(data)


def test_a_rate_the_pack_has_not_calibrated_is_refused_and_unresolved_rates_never_decide():
    rated = policies_from_dict({"scenario": {"a": {"match_far": 1e-5}}})
    with pytest.raises(PolicyError, match=r"scenario\.a\.match_far = 1e-5: pack p has no 1:1 threshold"):
        resolve_thresholds(rated, {"1e-3": 0.4}, "pack p")
    with pytest.raises(PolicyError, match="not yet resolved"):
        decide(rated.scenarios["a"], GOOD)
    with pytest.raises(AuthError, match=r"model pack 'fast'.*calibrate"):
        load_policies(pack="fast")  # a pack without counter calibration


def test_the_service_resolves_the_rates_for_the_pack_its_engine_runs():
    from types import SimpleNamespace

    from edge.counter.service import AuthService

    client = SimpleNamespace(receiver=None)
    for pack_id in ("default", "clean"):
        pack = load_pack(pack_id)
        service = AuthService(SimpleNamespace(pack=pack), lambda: None, client,  # type: ignore[arg-type]
                              load_policies(pack=None))
        routine = service.policies.scenarios["card_replacement"]
        assert routine.match_threshold == pack.counter_thresholds["1e-3"]
    with pytest.raises(AuthError, match="model pack 'fast'"):
        AuthService(SimpleNamespace(pack=load_pack("fast")), lambda: None, client,  # type: ignore[arg-type]
                    load_policies(pack=None))
