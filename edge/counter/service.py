"""Counter authorization at the edge: verify a teller's request, decide, escalate.

Flow (README "Counter authorization"): on start the service publishes the scenarios
of the policy file it enforces (``AuthScenarios``, retained on ``auth/scenarios``),
which the teller terminals offer; a teller terminal publishes an ``AuthRequest``;
:class:`AuthService` measures the evidence (card rules, liveness on each live frame,
face quality, card photo vs live face, card holder vs account holder), lets
:func:`edge.core.auth_policy.decide` judge it under the scenario's policy and answers
on ``auth/responses/{device}``.  An escalation goes to the supervisors' PADs; the
first supervisor ``AuthDecision`` settles it, and none within the timeout means
reject.  Every step is audited without names, full ID numbers, images or embeddings.
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from edge.config import EdgeConfig
from edge.core import idcard_rules as rules
from edge.core.auth_policy import (
    CHECKS,
    Decision,
    Policies,
    decide,
    policies_digest,
)
from edge.counter.policies import AuthError, resolve_for_pack
from edge.counter.verifier import BadImageError, Verifier
from edge.store.database import Store
from edge.vision.engine import FaceEngine
from mqtt.client import BranchClient
from mqtt.codec import EncodeError
from mqtt.messages import (
    AuthDecision,
    AuthEscalation,
    AuthRequest,
    AuthResponse,
    AuthScenarios,
    Scenario,
    Score,
    utc_now,
)
from mqtt.receiver import Delivery, Receiver, make_receiver
from mqtt.topics import BranchTopics

log = logging.getLogger(__name__)
ACTOR = "edge-auth"


# --- the service ----------------------------------------------------------------------------


def auth_subscriptions(branch_id: str) -> tuple[str, str]:
    """What the edge's client subscribes to for this service."""
    topics = BranchTopics(branch_id)
    return topics.auth_requests, topics.auth_decisions


def auth_client_parts(cfg: EdgeConfig) -> tuple[Receiver | None, tuple[str, ...]]:
    """The receiver and subscriptions the edge's BranchClient needs when ``[auth] enabled``
    (``(None, ())`` otherwise): ``BranchClient(cfg.mqtt, identity, receiver=r, subscriptions=t)``."""
    if not cfg.auth.enabled:
        return None, ()
    return make_receiver(cfg.mqtt), auth_subscriptions(cfg.branch_id)


@dataclass(frozen=True)
class Pending:
    request: AuthRequest
    decision: Decision
    deadline: float  # time.monotonic()


def scenarios_message(branch_id: str, policies: Policies) -> AuthScenarios:
    """The scenarios of the policies in force, for the teller terminals (retained)."""
    return AuthScenarios(
        branch_id=branch_id, policy_sha256=policies_digest(policies),
        escalation_timeout_s=policies.escalation_timeout_s, request_ttl_s=policies.request_ttl_s,
        scenarios=[Scenario(name=p.name, title=p.title_zh, title_en=p.title_en, rationale=p.rationale,
                            checks=[c for c in CHECKS if c in p.checks], auto_approve=p.auto_approve,
                            escalation=p.escalation, auto_approve_max_amount=p.auto_approve_max_amount)
                   for p in policies.scenarios.values()],
    )


def response_scores(decision: Decision) -> list[Score]:
    return [Score(name=s.name, value=round(s.value, 4), threshold=s.threshold) for s in decision.scores]


def audit_request_facts(request: AuthRequest) -> dict[str, Any]:
    """What the audit log keeps of a request: no name, no full number, no image."""
    return {
        "scenario": request.scenario, "transaction_id": request.transaction_id,
        "teller_id": request.teller_id, "device_id": request.device_id,
        "customer_id": request.account_holder_id, "card_type": request.card.card_type,
        "masked_id_number": rules.mask_id_number(request.card.id_number),
        "reader_sam_id": request.reader_sam_id, "amount": request.amount,
        "live_frames": len(request.live_jpeg_b64),
    }


class AuthService:
    """Serves ``auth/requests`` and ``auth/decisions`` from a Receiver queue.

    ``store`` may be a zero-argument callable that opens the store: SQLite
    connections belong to one thread, and :meth:`start` runs the loop on its own.
    """

    def __init__(self, engine: FaceEngine, store: Store | Callable[[], Store], client: BranchClient,
                 policies: Policies, *, clock: Callable[[], float] = time.monotonic,
                 inbox: queue.Queue[Delivery] | None = None,
                 counter_frames: Callable[[], list[np.ndarray]] | None = None) -> None:
        self.engine = engine
        self.counter_frames = counter_frames
        # Deliveries to serve: the client's receiver queue, unless a host that shares
        # the client routes auth messages here with submit().
        if inbox is None and client.receiver is not None:
            inbox = client.receiver.queue
        self.inbox: queue.Queue[Delivery] = inbox if inbox is not None else queue.Queue()
        self._store_source = store
        self._store: Store | None = store if isinstance(store, Store) else None
        self.client = client
        # Thresholds written as false-accept rates become this engine's pack's cosines.
        self.policies = resolve_for_pack(policies, engine.pack)
        self.clock = clock
        self.pending: dict[str, Pending] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    @property
    def store(self) -> Store:
        if self._store is None:
            assert callable(self._store_source)
            self._store = self._store_source()
        return self._store

    @property
    def branch_id(self) -> str:
        return self.client.identity.branch_id

    # -- dispatch --

    def submit(self, delivery: Delivery) -> None:
        """Queue a delivery for the service thread (safe from the MQTT network thread)."""
        self.inbox.put(delivery)

    def handle(self, delivery: Delivery) -> None:
        message = delivery.message
        if isinstance(message, AuthRequest):
            self.on_request(message, delivery.actor)
        elif isinstance(message, AuthDecision):
            self.on_decision(message, delivery.actor)

    def on_request(self, request: AuthRequest, actor: str | None = None) -> None:
        """``actor``: who sent it as the receiver verified it (the teller the roster binds to
        the terminal of the topic, else the terminal); the answer goes to ``request.device_id``,
        which the receiver checked is that terminal."""
        facts = audit_request_facts(request)
        self.store.audit(actor or request.device_id, "auth_requested", request.id, facts)
        age_s = (utc_now() - request.sent_at).total_seconds()
        if age_s > self.policies.request_ttl_s:
            self.finish(request, Decision("reject", ("request_expired",)), None)
            return
        policy = self.policies.get(request.scenario)
        if policy is None:
            self.finish(request, Decision("reject", ("unknown_scenario",)), None)
            return
        try:
            verifier = Verifier(self.engine, self.store, self.counter_frames)
            decision = decide(policy, verifier.evidence(request, policy))
        except BadImageError as err:
            log.warning("auth request %s: bad image: %s", request.id, err)
            decision = Decision("reject", ("bad_image",))
        if decision.verdict == "escalate":
            self.escalate(request, decision)
        else:
            self.finish(request, decision, None)

    def finish(self, request: AuthRequest, decision: Decision, decided_by: str | None,
               extra: tuple[str, ...] = ()) -> None:
        response = AuthResponse(
            branch_id=self.branch_id, request_id=request.id, device_id=request.device_id,
            verdict=decision.verdict, reasons=list(decision.reasons + extra)[:20],
            scores=response_scores(decision), decided_by=decided_by,
        )
        # Audit first: a decision the teller has seen is always in the audit log.
        self.store.audit(decided_by or ACTOR, "auth_decided", request.id, {
            "verdict": decision.verdict, "reasons": list(decision.reasons),
            "scores": [vars(s) for s in decision.scores], "scenario": request.scenario,
        })
        self.client.publish(response)
        log.info("auth %s (%s): %s %s", request.id, request.scenario, decision.verdict,
                 ",".join(decision.reasons))

    def escalate(self, request: AuthRequest, decision: Decision) -> None:
        timeout = self.policies.escalation_timeout_s
        self.pending[request.id] = Pending(request, decision, self.clock() + timeout)
        self.store.audit(ACTOR, "auth_escalated", request.id, {
            "reasons": list(decision.reasons), "scores": [vars(s) for s in decision.scores],
            "timeout_s": timeout,
        })
        self.client.publish(AuthEscalation(
            branch_id=self.branch_id, expires_at=utc_now() + dt.timedelta(seconds=timeout),
            request_id=request.id, teller_device_id=request.device_id, scenario=request.scenario,
            masked_card_number=rules.mask_id_number(request.card.id_number),
            reasons=list(decision.reasons), scores=response_scores(decision),
            card_photo_jpeg_b64=request.card_photo_jpeg_b64,
            live_jpeg_b64=request.live_jpeg_b64[0] if request.live_jpeg_b64 else None,
        ))
        # The teller sees "waiting for a supervisor" until the final answer comes.
        self.client.publish(AuthResponse(
            branch_id=self.branch_id, request_id=request.id, device_id=request.device_id,
            verdict="escalate", reasons=list(decision.reasons), scores=response_scores(decision),
        ))
        log.info("auth %s (%s): escalated %s", request.id, request.scenario, ",".join(decision.reasons))

    def on_decision(self, decision: AuthDecision, actor: str | None = None) -> None:
        """``actor``: the supervisor as the receiver verified it (see :meth:`on_request`)."""
        actor = actor or decision.device_id
        pending = self.pending.pop(decision.request_id, None)
        details = {"decision": decision.decision, "reason": decision.reason,
                   "supervisor_device": decision.device_id}
        if pending is None:
            self.store.audit(actor, "auth_decision_ignored", decision.request_id, details)
            log.info("supervisor decision for %s ignored: not pending", decision.request_id)
            return
        self.store.audit(actor, "auth_supervisor_decision", decision.request_id, details)
        code = "supervisor_approved" if decision.decision == "approve" else "supervisor_rejected"
        final = replace(pending.decision, verdict=decision.decision, reasons=(code,))
        self.finish(pending.request, final, actor,
                    extra=(f"note:{decision.reason}"[:200],) if decision.reason else ())

    def expire_due(self) -> int:
        """Reject every escalation whose timeout has passed; returns how many."""
        now = self.clock()
        due = [key for key, p in self.pending.items() if p.deadline <= now]
        for key in due:
            pending = self.pending.pop(key)
            self.store.audit(ACTOR, "auth_escalation_timeout", key, {
                "timeout_s": self.policies.escalation_timeout_s})
            self.finish(pending.request, replace(pending.decision, verdict="reject",
                                                 reasons=("escalation_timeout",)), None)
        return len(due)

    # -- the loop --

    def publish_scenarios(self) -> AuthScenarios | None:
        """Tell the teller terminals which scenarios this service enforces (retained on
        ``auth/scenarios``, so a terminal that starts later gets them too)."""
        message = scenarios_message(self.branch_id, self.policies)
        try:
            self.client.publish(message)
        except EncodeError as err:
            log.error("cannot publish the counter scenarios; teller terminals will wait for them: %s", err)
            return None
        self.store.audit(ACTOR, "auth_scenarios_published", message.id, {
            "policy_sha256": message.policy_sha256, "scenarios": [s.name for s in message.scenarios]})
        log.info("published %d counter scenarios (policy %s)", len(message.scenarios),
                 message.policy_sha256[:12])
        return message

    def run(self, stop: threading.Event, poll_s: float = 0.2) -> None:
        """Publish the scenarios, then serve until ``stop`` is set (blocking); the daemon may
        host this in its thread."""
        try:
            self.publish_scenarios()
        except Exception:  # the store may be unavailable for a while: serve what can be served
            log.exception("publishing the counter scenarios failed; serving requests anyway")
        while not stop.is_set() and not self._stop.is_set():
            try:
                delivery = self.inbox.get(timeout=poll_s)
            except queue.Empty:
                delivery = None
            try:
                if delivery is not None:
                    self.handle(delivery)
                self.expire_due()
            except Exception:  # one bad request must not stop the service
                log.exception("auth service failed on a message; continuing")
        if self._store is not None and self._store is not self._store_source:
            self._store.close()  # opened by this thread from the factory
            self._store = None

    def start(self, stop: threading.Event | None = None) -> None:
        """Serve on a thread of its own until ``stop`` is set or :meth:`stop` is called."""
        if isinstance(self._store_source, Store):
            raise AuthError("start() needs a store factory (a callable that opens the store): "
                            "an SQLite connection cannot move to the service thread")
        self._thread = threading.Thread(target=self.run, args=(stop or threading.Event(),),
                                        name="auth-service", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
