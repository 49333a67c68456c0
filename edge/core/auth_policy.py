"""Counter authorization: scenario policies and the approve / escalate / reject decision (pure).

The edge measures the evidence (card checks, liveness per frame, face quality,
card-vs-live similarity, card holder vs account holder); :func:`decide` turns
it into a verdict with reason codes and scores under one scenario's policy.

Reason codes are stable strings (audit log, MQTT); :data:`REASON_TEXT` gives
the words a teller or supervisor reads, in Chinese and English.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Verdict = Literal["approve", "escalate", "reject"]
Holder = Literal["match", "mismatch", "unknown"]

CHECKS = ("card_validity", "account_holder", "liveness", "face_match")

# code -> (zh-CN, en).  Card-validity codes come from the card rules and are
# shown with their own message; "card_invalid" is the umbrella code.
REASON_TEXT: dict[str, tuple[str, str]] = {
    "card_invalid": ("证件校验未通过", "the ID card failed validation"),
    "holder_mismatch": ("证件持有人不是账户持有人", "the card holder is not the account holder"),
    "holder_unknown": ("账户未登记证件号码，无法核对持有人",
                       "the account has no ID number on file to compare"),
    "counter_camera_unavailable": ("柜台摄像头未取到画面，需人工核验",
                                   "the counter camera gave no frames: manual check needed"),
    "no_live_capture": ("未采集现场人脸（客户未同意或未拍摄），需人工核验",
                        "no live face capture (declined or missing): manual check needed"),
    "too_few_live_frames": ("现场人脸帧数不足", "too few live frames with a face"),
    "no_face_live": ("现场照片中未检测到人脸", "no face found in the live capture"),
    "no_face_card": ("证件照中未检测到人脸", "no face found in the card photo"),
    "poor_live_quality": ("现场人脸质量不足（模糊、过小或角度过大）",
                          "the live face is too blurry, small or turned"),
    "liveness_failed": ("活体检测未通过（疑似照片或屏幕翻拍）",
                        "liveness check failed (looks like a photo or a screen)"),
    "liveness_unavailable": ("活体检测模型不可用", "no liveness model is loaded at the edge"),
    "face_mismatch": ("人证比对不一致", "the live face does not match the card photo"),
    "face_match_low": ("人证比对分数偏低，需主管确认",
                       "the face match score is low: a supervisor must confirm"),
    "supervisor_required": ("该业务须主管授权", "this transaction always needs a supervisor"),
    "amount_over_limit": ("金额超过自动授权上限", "the amount is over the automatic approval limit"),
    "amount_invalid": ("金额无效", "the amount is not a sum of money (below zero)"),
    "escalation_not_allowed": ("该业务不允许主管远程授权", "this transaction cannot be escalated"),
    "all_checks_passed": ("全部核验通过", "all checks passed"),
    "supervisor_approved": ("主管已授权", "approved by a supervisor"),
    "supervisor_rejected": ("主管已拒绝", "rejected by a supervisor"),
    "escalation_timeout": ("主管未在时限内答复，已拒绝", "no supervisor answered in time: rejected"),
    "unknown_scenario": ("未知业务类型", "unknown transaction type"),
    "request_expired": ("请求已过期", "the request expired"),
    "bad_image": ("图片无法解码", "an image could not be decoded"),
}


def reason_text(code: str, language: str = "zh") -> str:
    """Plain words for a reason code; unknown codes are shown as they are."""
    zh, en = REASON_TEXT.get(code.split(":", 1)[0], (code, code))
    return zh if language.startswith("zh") else en


class PolicyError(ValueError):
    """A policy file that cannot be used (unknown key, value out of range)."""


TITLE_MAX = 64
RATIONALE_MAX = 200
CLASS_MAX = 32
UNRESOLVED = math.nan  # a threshold given as a false-accept rate, before a model pack turns it into a cosine


@dataclass(frozen=True)
class ScenarioPolicy:
    """One counter scenario's policy.  The defaults here are the defaults of the policy
    file too (a key it leaves out keeps them)."""

    name: str
    title_zh: str
    title_en: str
    rationale: str = ""  # one line: why the scenario has these checks and limits
    risk_class: str = ""  # the [class.NAME] table it takes its defaults from ("" = none)
    checks: frozenset[str] = frozenset(CHECKS)
    match_threshold: float = 0.40  # at or above: the faces match
    escalate_threshold: float = 0.30  # between this and match_threshold: a supervisor decides
    # The same two thresholds as false-accept rates of the 1:1 check: the model pack in
    # use turns them into cosines (resolve_thresholds), so a policy outlives a pack change.
    match_far: float | None = None
    escalate_far: float | None = None
    liveness_threshold: float = 0.5  # median live probability over the frames
    min_live_frames: int = 2
    auto_approve: bool = True
    escalation: bool = True
    auto_approve_max_amount: float | None = None  # over this, a supervisor decides

    def title(self, language: str = "zh") -> str:
        return self.title_zh if language.startswith("zh") else self.title_en


@dataclass(frozen=True)
class Policies:
    scenarios: Mapping[str, ScenarioPolicy]
    escalation_timeout_s: float = 120.0
    request_ttl_s: float = 60.0

    def get(self, name: str) -> ScenarioPolicy | None:
        return self.scenarios.get(name)


@dataclass(frozen=True)
class Evidence:
    """What the edge measured for one request.  ``None`` scores: not measured."""

    card_problems: tuple[str, ...] = ()  # reason codes from the card rules
    holder: Holder = "unknown"
    live_supplied: int = 0  # live frames in the request (0: the customer declined face capture)
    counter_camera_missing: bool = False  # the request asked for a counter camera the edge lacks
    live_frames: int = 0  # frames with a usable face
    live_scores: tuple[float, ...] = ()  # liveness per frame with a face
    live_quality_ok: bool = True
    live_face_found: bool = True
    card_face_found: bool = True
    match_score: float | None = None
    amount: float | None = None


@dataclass(frozen=True)
class ScoreItem:
    name: str
    value: float
    threshold: float


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reasons: tuple[str, ...]
    scores: tuple[ScoreItem, ...] = field(default=())


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def scores_of(policy: ScenarioPolicy, ev: Evidence) -> tuple[ScoreItem, ...]:
    items = []
    if ev.live_scores:
        items.append(ScoreItem("liveness", median(ev.live_scores), policy.liveness_threshold))
    if ev.match_score is not None:
        items.append(ScoreItem("face_match", ev.match_score, policy.match_threshold))
    return tuple(items)


def face_findings(policy: ScenarioPolicy, ev: Evidence) -> tuple[list[str], list[str]]:
    """(reject reasons, escalate reasons) of the liveness and face-match checks."""
    reject: list[str] = []
    escalate: list[str] = []
    face_checks = {"liveness", "face_match"} & policy.checks
    if not face_checks:
        return reject, escalate
    if ev.live_supplied == 0:
        # The non-face path: a supervisor checks by eye.
        return reject, ["counter_camera_unavailable" if ev.counter_camera_missing else "no_live_capture"]
    if not ev.live_face_found:
        return ["no_face_live"], escalate
    if not ev.live_quality_ok:
        reject.append("poor_live_quality")
    if "liveness" in policy.checks:
        if ev.live_frames < policy.min_live_frames:
            reject.append("too_few_live_frames")
        elif not ev.live_scores:
            reject.append("liveness_unavailable")
        elif median(ev.live_scores) < policy.liveness_threshold:
            reject.append("liveness_failed")
    if "face_match" in policy.checks:
        reject_match, escalate_match = match_findings(policy, ev)
        reject += reject_match
        escalate += escalate_match
    return reject, escalate


def match_findings(policy: ScenarioPolicy, ev: Evidence) -> tuple[list[str], list[str]]:
    if not ev.card_face_found:
        return ["no_face_card"], []
    score = ev.match_score if ev.match_score is not None else -math.inf
    if score >= policy.match_threshold:
        return [], []
    if score >= policy.escalate_threshold:
        return [], ["face_match_low"]
    return ["face_mismatch"], []


def card_findings(policy: ScenarioPolicy, ev: Evidence) -> tuple[list[str], list[str]]:
    reject: list[str] = []
    escalate: list[str] = []
    if "card_validity" in policy.checks and ev.card_problems:
        reject += ["card_invalid", *ev.card_problems]
    if "account_holder" in policy.checks:
        if ev.holder == "mismatch":
            reject.append("holder_mismatch")
        elif ev.holder == "unknown":
            escalate.append("holder_unknown")
    return reject, escalate


def amount_findings(ev: Evidence) -> list[str]:
    """A terminal's amount below zero would pass under any limit: refused, whatever its form said."""
    if ev.amount is not None and not (math.isfinite(ev.amount) and ev.amount >= 0):
        return ["amount_invalid"]
    return []


def approval_findings(policy: ScenarioPolicy, ev: Evidence) -> list[str]:
    escalate = []
    if not policy.auto_approve:
        escalate.append("supervisor_required")
    limit = policy.auto_approve_max_amount
    if limit is not None and ev.amount is not None and ev.amount > limit:
        escalate.append("amount_over_limit")
    return escalate


def decide(policy: ScenarioPolicy, ev: Evidence) -> Decision:
    """Reject on any hard failure; else escalate on any doubt; else approve."""
    if math.isnan(policy.match_threshold) or math.isnan(policy.escalate_threshold):
        raise PolicyError(f"scenario {policy.name}: thresholds given as false-accept rates are not yet "
                          "resolved against a model pack (resolve_thresholds)")
    scores = scores_of(policy, ev)
    card_reject, card_escalate = card_findings(policy, ev)
    face_reject, face_escalate = face_findings(policy, ev)
    reject = card_reject + face_reject + amount_findings(ev)
    if reject:
        return Decision("reject", tuple(reject), scores)
    escalate = card_escalate + face_escalate + approval_findings(policy, ev)
    if escalate and not policy.escalation:
        return Decision("reject", (*escalate, "escalation_not_allowed"), scores)
    if escalate:
        return Decision("escalate", tuple(escalate), scores)
    return Decision("approve", ("all_checks_passed",), scores)


# --- the policy file -----------------------------------------------------------------------
#
# Each key of a [scenario.NAME] table (and of [defaults]) maps to one ScenarioPolicy
# field and the check of its value; a key left out keeps the field's default above,
# so every default is written once, in the dataclasses.

Parse = Callable[[str, Any], Any]


def _number(low: float, high: float) -> Parse:
    def parse(where: str, value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            raise PolicyError(f"{where}: must be a number from {low} to {high}, got {value!r}")
        return float(value)
    return parse


def _whole(low: int, high: int) -> Parse:
    def parse(where: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise PolicyError(f"{where}: must be a whole number from {low} to {high}, got {value!r}")
        return value
    return parse


def _flag(where: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise PolicyError(f"{where}: must be true or false, got {value!r}")
    return value


def _checks(where: str, value: Any) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{where}: must be a list of check names")
    unknown = sorted(set(value) - set(CHECKS))
    if unknown:
        raise PolicyError(f"{where}: unknown check(s) {unknown}; known: {list(CHECKS)}")
    return frozenset(value)


def _text(limit: int) -> Parse:
    def parse(where: str, value: Any) -> str:
        if not isinstance(value, str) or not 0 < len(value) <= limit:
            raise PolicyError(f"{where}: must be a text of 1 to {limit} characters")
        return value
    return parse


# TOML key -> (ScenarioPolicy field, check of the value)
SCENARIO_KEYS: dict[str, tuple[str, Parse]] = {
    "title": ("title_zh", _text(TITLE_MAX)),
    "title_en": ("title_en", _text(TITLE_MAX)),
    "rationale": ("rationale", _text(RATIONALE_MAX)),
    "class": ("risk_class", _text(CLASS_MAX)),
    "checks": ("checks", _checks),
    "match_threshold": ("match_threshold", _number(-1, 1)),
    "escalate_threshold": ("escalate_threshold", _number(-1, 1)),
    "match_far": ("match_far", _number(1e-9, 0.5)),
    "escalate_far": ("escalate_far", _number(1e-9, 0.5)),
    "liveness_threshold": ("liveness_threshold", _number(0, 1)),
    "min_live_frames": ("min_live_frames", _whole(1, 3)),
    "auto_approve": ("auto_approve", _flag),
    "escalation": ("escalation", _flag),
    "auto_approve_max_amount": ("auto_approve_max_amount", _number(0, 1e12)),
}
# A threshold and its rate form: the more specific table's one wins over what it inherits.
RATE_FORM = {"match_threshold": "match_far", "match_far": "match_threshold",
             "escalate_threshold": "escalate_far", "escalate_far": "escalate_threshold"}
TOP_KEYS: dict[str, Parse] = {
    "escalation_timeout_s": _number(1, 3600),
    "request_ttl_s": _number(5, 3600),
}
SCENARIO_NAME = re.compile(r"[a-z0-9_]{1,64}")


def scenario_from_table(name: str, table: Mapping[str, Any]) -> ScenarioPolicy:
    where = f"scenario.{name}"
    unknown = sorted(set(table) - set(SCENARIO_KEYS))
    if unknown:
        raise PolicyError(f"{where}: unknown key(s) {unknown}")
    values = {"title": name[:TITLE_MAX], "title_en": name[:TITLE_MAX], **table}
    fields = {field: parse(f"{where}.{key}", values[key])
              for key, (field, parse) in SCENARIO_KEYS.items() if key in values}
    for rate, threshold in (("match_far", "match_threshold"), ("escalate_far", "escalate_threshold")):
        if fields.get(rate) is not None:
            fields[threshold] = UNRESOLVED  # the model pack decides (resolve_thresholds)
    policy = ScenarioPolicy(name=name, **fields)
    check_order(policy, where)
    return policy


def check_order(policy: ScenarioPolicy, where: str) -> None:
    if policy.match_far is not None and policy.escalate_far is not None:
        if policy.escalate_far < policy.match_far:
            raise PolicyError(f"{where}: escalate_far must not be below match_far")
    elif policy.escalate_threshold > policy.match_threshold:  # False while either is a rate (NaN)
        raise PolicyError(f"{where}: escalate_threshold must not exceed match_threshold")


def overlay(base: Mapping[str, Any], table: Mapping[str, Any]) -> dict[str, Any]:
    """``table`` over ``base``; a threshold given one way drops the inherited other way."""
    merged = {k: v for k, v in base.items() if RATE_FORM.get(k) not in table}
    merged.update(table)
    return merged


def policies_from_dict(data: Mapping[str, Any]) -> Policies:
    """Policies from a parsed TOML document: each scenario takes ``[defaults]``, then its
    ``[class.NAME]`` table (``class = "NAME"``), then its own keys."""
    unknown = sorted(set(data) - {"defaults", "class", "scenario", *TOP_KEYS})
    if unknown:
        raise PolicyError(f"unknown top-level key(s) {unknown}")
    defaults = data.get("defaults", {})
    classes = data.get("class", {})
    tables = data.get("scenario", {})
    if not all(isinstance(t, Mapping) for t in (defaults, classes, tables)) or not tables:
        raise PolicyError("need [defaults] as a table and at least one [scenario.NAME] table")
    for name, table in classes.items():
        if not isinstance(table, Mapping) or not SCENARIO_NAME.fullmatch(name):
            raise PolicyError(f"class.{name}: must be a table with a [a-z0-9_] name of at most 64")
        unknown = sorted(set(table) - (set(SCENARIO_KEYS) - {"class", "title", "title_en", "rationale"}))
        if unknown:
            raise PolicyError(f"class.{name}: unknown or scenario-only key(s) {unknown}")
    scenarios = {}
    for name, table in tables.items():
        if not isinstance(table, Mapping) or not SCENARIO_NAME.fullmatch(name):
            raise PolicyError(f"scenario.{name}: must be a table with a [a-z0-9_] name of at most 64")
        merged = overlay(defaults, table)
        risk = merged.get("class")
        if risk is not None:
            if not isinstance(risk, str) or risk not in classes:
                raise PolicyError(f"scenario.{name}.class: {risk!r} is not a [class.NAME] table of this file")
            merged = overlay(overlay(defaults, classes[risk]), table)
        scenarios[name] = scenario_from_table(name, merged)
    top = {key: parse(key, data[key]) for key, parse in TOP_KEYS.items() if key in data}
    return Policies(scenarios=scenarios, **top)


def rate_key(rate: float) -> str:
    """1e-3 -> "1e-3": how model packs name their calibrated false-accept rates."""
    mantissa, exponent = f"{rate:.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def resolve_thresholds(policies: Policies, thresholds: Mapping[str, float], source: str) -> Policies:
    """Each threshold given as a false-accept rate becomes the cosine ``thresholds`` names for
    that rate (a model pack's calibration, ``source`` says which); a rate it lacks is an error."""
    scenarios = {}
    for name, policy in policies.scenarios.items():
        changes: dict[str, Any] = {}
        for rate_field, threshold_field in (("match_far", "match_threshold"),
                                            ("escalate_far", "escalate_threshold")):
            rate = getattr(policy, rate_field)
            if rate is None:
                continue
            key = rate_key(rate)
            if key not in thresholds:
                known = ", ".join(sorted(thresholds)) or "none"
                raise PolicyError(f"scenario.{name}.{rate_field} = {key}: {source} has no 1:1 threshold "
                                  f"calibrated at that rate (it has: {known})")
            changes[threshold_field] = thresholds[key]
        resolved = dataclasses.replace(policy, **changes)
        if resolved.escalate_threshold > resolved.match_threshold:
            raise PolicyError(f"scenario.{name}: with {source}, escalate_threshold "
                              f"{resolved.escalate_threshold} exceeds match_threshold "
                              f"{resolved.match_threshold}")
        scenarios[name] = resolved
    return dataclasses.replace(policies, scenarios=scenarios)


def policies_digest(policies: Policies) -> str:
    """SHA-256 of what the policies say (not of the file's layout or comments): the same
    policies give the same digest on every machine, so an audit can name them."""
    def plain(value: Any) -> Any:
        return sorted(value) if isinstance(value, frozenset) else value

    body = {
        "escalation_timeout_s": policies.escalation_timeout_s,
        "request_ttl_s": policies.request_ttl_s,
        "scenarios": [{f.name: plain(getattr(p, f.name)) for f in dataclasses.fields(p)}
                      for p in policies.scenarios.values()],
    }
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
