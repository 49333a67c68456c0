"""``branch-pad --demo``: the app without a broker, provisioning or an edge, to look at it.

What runs, all inside the one process and all fictional (no real person's photo or data):

- the embedded loopback broker (``mqtt.embedded``, no TLS, no accounts);
- a stand-in edge (:class:`DemoEdge`) that replays the demo branch's arrivals
  (``ui.state.sample``: drawn faces), publishes the counter scenarios, answers the
  teller's verification requests with the core's policy rules on made-up scores (it
  compares no faces), and sends the supervisor escalations;
- for the teller page, the ID-card reader simulator with fictional sample cards and a
  folder of drawn faces as the counter camera.

The app stays open until it is closed (window, Ctrl-C, SIGTERM: exit code 0).  Its state
(outbox, seen ids, journal) lives in a private temporary folder removed at exit.
"""

from __future__ import annotations

import base64
import logging
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from edge.core.auth_policy import Evidence, Policies, decide, policies_from_dict
from edge.core.files import private_dir
from mqtt.client import BranchClient, Identity
from mqtt.dedup import SeenIds
from mqtt.embedded import EmbeddedBroker
from mqtt.messages import (
    AuthEscalation,
    AuthRequest,
    AuthResponse,
    AuthScenarios,
    Scenario,
    Score,
    utc_now,
)
from mqtt.receiver import Delivery, Receiver
from mqtt.topics import BranchTopics
from ui.state.config import PadConfig, Role, parse_pad_config
from ui.state.sample import DEMO_VISITORS, demo_arrival, drawn_face_jpeg

logger = logging.getLogger(__name__)

BRANCH = "demo"
EDGE = "edge-demo"
DEVICES: dict[str, tuple[str, str]] = {  # role -> (device id, staff id)
    "rm": ("pad-rm-1", "rm-1"),
    "teller": ("teller-1", "t-1"),
    "supervisor": ("sup-1", "s-1"),
}
ARRIVAL_EVERY_S = 20.0  # after the first few, one new visit this often
FIRST_ARRIVALS = 3  # shown at once, so the feed is not empty
ESCALATION_EVERY_S = 45.0
SUPERVISOR_ANSWERS_S = 5.0  # the stand-in supervisor's answer to a teller's escalated request
# The demo's counter scenarios, in the policy file's form (edge/counter/policies.toml).
POLICIES: dict[str, Any] = {
    "escalation_timeout_s": 120,
    "request_ttl_s": 60,
    "scenario": {
        "card_replacement": {"title": "补办银行卡", "title_en": "Card replacement"},
        "password_reset": {"title": "密码重置", "title_en": "Password reset", "match_threshold": 0.46},
        "large_withdrawal": {"title": "大额取现", "title_en": "Large withdrawal", "match_threshold": 0.46,
                             "auto_approve_max_amount": 50000.0},
        "account_closure": {"title": "销户", "title_en": "Account closure", "auto_approve": False},
    },
}
# Made-up scores for the stand-in edge: the demo compares no faces.
DEMO_LIVENESS = 0.93
DEMO_MATCH = 0.58


def demo_mqtt(port: int, device_id: str, state: Path) -> dict[str, Any]:
    """``[mqtt]`` for a device on the embedded broker (loopback, no TLS)."""
    return {"host": "127.0.0.1", "port": port, "device_id": device_id,
            "client_id": f"{device_id}-{BRANCH}", "outbox_path": str(state / f"{device_id}-outbox.db"),
            "seen_ids_path": str(state / f"{device_id}-seen.db"), "reconnect_min_s": 0.1,
            "reconnect_max_s": 2.0}


def demo_config(role: Role, port: int, state: Path, base: dict[str, Any] | None = None,
                counter: dict[str, str] | None = None) -> PadConfig:
    """The PAD's config for the demo: ``base`` (a pad.toml's tables, e.g. a teller's written
    before provisioning) with its ``[mqtt]`` and ``mqtt_file`` replaced by the embedded broker;
    ``counter``: the demo's reader and camera when ``base`` names none."""
    data = dict(base or {})
    data.pop("mqtt_file", None)
    data.pop("journal_path", None)
    data["branch_id"] = BRANCH
    data["role"] = role
    device, staff = DEVICES[role]
    data["rm_id"] = staff
    data["mqtt"] = demo_mqtt(port, device, state)
    data.setdefault("sound", False)
    if counter and not data.get("counter"):
        data["counter"] = counter
    return parse_pad_config(data, "demo")


class DemoCounter:
    """The teller's devices: the ID-card reader simulator on a pseudo-terminal with fictional
    sample cards (drawn photos; each stays on the reader for half a minute), and a folder of
    drawn faces as the counter camera."""

    def __init__(self, state: Path) -> None:
        # The simulator is only for the teller's demo: imported when asked for.
        from ui.devices.idcard.samples import sample_cards, write_deck  # noqa: PLC0415
        from ui.devices.idcard.simulator import PtySimulator, load_cards  # noqa: PLC0415

        deck = write_deck(private_dir(state / "cards"), sample_cards(date.today()), remove_after=30.0)
        self.simulator = PtySimulator(load_cards(deck))
        camera = private_dir(state / "camera")
        for seed in range(3):
            face = base64.b64decode(drawn_face_jpeg(seed + 20, side=320))
            (camera / f"face-{seed}.jpg").write_bytes(face)
        self.settings = {"idcard_port": self.simulator.path, "wlt_decoder": f"simulator:{deck}",
                         "camera": str(camera)}

    def close(self) -> None:
        self.simulator.close()


def scenarios_message(branch_id: str, policies: Policies | None = None) -> AuthScenarios:
    """The demo's counter scenarios as the edge publishes them (retained ``auth/scenarios``)."""
    policies = policies or policies_from_dict(POLICIES)
    return AuthScenarios(
        branch_id=branch_id, policy_sha256="0" * 64, escalation_timeout_s=policies.escalation_timeout_s,
        request_ttl_s=policies.request_ttl_s,
        scenarios=[Scenario(name=p.name, title=p.title_zh, title_en=p.title_en, checks=sorted(p.checks),
                            auto_approve=p.auto_approve, escalation=p.escalation,
                            auto_approve_max_amount=p.auto_approve_max_amount)
                   for p in policies.scenarios.values()])


@dataclass
class Replay:
    """When the stand-in edge sends what: for an RM, a new arrival every ``arrival_every_s``
    after the first ``first`` at once; for a supervisor, an escalation every
    ``escalation_every_s``; a teller gets answers to its own requests."""

    role: Role = "rm"
    arrival_every_s: float = ARRIVAL_EVERY_S
    first: int = FIRST_ARRIVALS
    escalation_every_s: float = ESCALATION_EVERY_S

    @property
    def arrivals(self) -> bool:
        return self.role == "rm"

    @property
    def escalations(self) -> bool:
        return self.role == "supervisor"


class DemoEdge:
    """Publishes as the branch's edge would, on its own thread; answers teller requests."""

    def __init__(self, port: int, state: Path, replay: Replay | None = None) -> None:
        self.replay = replay or Replay()
        self.topics = BranchTopics(BRANCH)
        self.policies: Policies = policies_from_dict(POLICIES)
        self.sent_arrivals = 0
        self.sent_escalations = 0
        self.requests: list[AuthRequest] = []  # as they came over the broker
        self._stop = threading.Event()
        self._timers: list[threading.Timer] = []
        mqtt = parse_pad_config({"branch_id": BRANCH, "mqtt": demo_mqtt(port, EDGE, state)}).mqtt
        receiver = Receiver(SeenIds(mqtt.seen_ids_path), handler=self._on_delivery)
        self.client = BranchClient(mqtt, Identity(BRANCH, EDGE, "edge"), receiver=receiver,
                                   subscriptions=[self.topics.leaf("auth/requests/+")])
        self._thread = threading.Thread(target=self._run, name="demo-edge", daemon=True)

    def start(self, ready: Callable[[], bool]) -> None:
        """Connect, publish the scenarios, and replay once ``ready()`` (the PAD is connected:
        its broker session, and so its subscriptions, exist from then on)."""
        self.client.start()
        self._ready = ready
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        for timer in self._timers:
            timer.cancel()
        if self._thread.is_alive():
            self._thread.join(5)
        self.client.stop(drain_s=0.5)

    def scenarios(self) -> AuthScenarios:
        return scenarios_message(BRANCH, self.policies)

    def _run(self) -> None:
        while not self._stop.is_set() and not self._ready():
            self._stop.wait(0.1)
        self.client.publish(self.scenarios())
        next_arrival = next_escalation = 0.0
        elapsed = 0.0
        while not self._stop.is_set():
            if self.replay.arrivals and elapsed >= next_arrival:
                self.send_arrival()
                first = self.sent_arrivals < self.replay.first
                next_arrival = elapsed + (0.3 if first else self.replay.arrival_every_s)
            if self.replay.escalations and elapsed >= next_escalation:
                self.send_escalation()
                next_escalation = elapsed + self.replay.escalation_every_s
            step = 0.1
            self._stop.wait(step)
            elapsed += step

    def send_arrival(self) -> None:
        visitor = DEMO_VISITORS[self.sent_arrivals % len(DEMO_VISITORS)]
        self.client.publish(demo_arrival(visitor, BRANCH, seed=self.sent_arrivals))
        self.sent_arrivals += 1

    def send_escalation(self, request: AuthRequest | None = None, reasons: tuple[str, ...] = ()) -> None:
        names = list(self.policies.scenarios)
        n = self.sent_escalations
        self.client.publish(AuthEscalation(
            branch_id=BRANCH, expires_at=utc_now() + timedelta(seconds=self.policies.escalation_timeout_s),
            request_id=request.id if request else str(uuid.uuid4()),
            teller_device_id=request.device_id if request else DEVICES["teller"][0],
            scenario=request.scenario if request else names[n % len(names)],
            masked_card_number=(request.card.id_number[:4] + "**********" + request.card.id_number[-4:]
                                if request else f"3101**********{1000 + n}"),
            reasons=list(reasons or ("face_match_low",)),
            scores=[Score(name="liveness", value=DEMO_LIVENESS, threshold=0.5),
                    Score(name="face_match", value=0.35, threshold=0.46)],
            card_photo_jpeg_b64=drawn_face_jpeg(100 + n), live_jpeg_b64=drawn_face_jpeg(200 + n)))
        self.sent_escalations += 1

    def _on_delivery(self, delivery: Delivery) -> None:
        """A teller's request: decided by the core's rules on made-up scores."""
        request = delivery.message
        if not isinstance(request, AuthRequest):
            return
        self.requests.append(request)
        policy = self.policies.get(request.scenario)
        if policy is None:
            self._answer(request, "reject", ("unknown_scenario",))
            return
        frames = len(request.live_jpeg_b64) if request.live_source == "terminal" else 3
        evidence = Evidence(holder="match", live_supplied=frames, live_frames=frames,
                            live_scores=(DEMO_LIVENESS,) * frames, match_score=DEMO_MATCH if frames else None,
                            amount=request.amount)
        decision = decide(policy, evidence)
        scores = [Score(name=s.name, value=s.value, threshold=s.threshold) for s in decision.scores]
        self._answer(request, decision.verdict, decision.reasons, scores)
        if decision.verdict == "escalate":
            self.send_escalation(request, decision.reasons)
            timer = threading.Timer(SUPERVISOR_ANSWERS_S, self._supervisor_approves, (request, scores))
            timer.daemon = True
            self._timers.append(timer)
            timer.start()

    def _supervisor_approves(self, request: AuthRequest, scores: list[Score]) -> None:
        if not self._stop.is_set():
            self._answer(request, "approve", ("supervisor_approved",), scores, decided_by="s-demo")

    def _answer(self, request: AuthRequest, verdict: str, reasons: tuple[str, ...],
                scores: list[Score] | None = None, decided_by: str | None = None) -> None:
        self.client.publish(AuthResponse(
            branch_id=BRANCH, request_id=request.id, device_id=request.device_id,
            verdict=verdict,  # type: ignore[arg-type]  # the core's Verdict is the same Literal
            reasons=list(reasons), scores=scores or [], decided_by=decided_by))


class DemoBranch:
    """The broker, the stand-in edge, the teller's devices and the private state folder of
    one ``--demo`` run::

        with DemoBranch("rm") as demo:
            run_gui(demo.config, ..., started=lambda pad: demo.start(lambda: pad.link.connected))
    """

    def __init__(self, role: Role, base: dict[str, Any] | None = None, replay: Replay | None = None) -> None:
        self.state = private_dir(Path(tempfile.mkdtemp(prefix="branch-pad-demo-")))
        self.broker = EmbeddedBroker()
        self.counter: DemoCounter | None = None
        self.edge: DemoEdge | None = None
        try:
            port = self.broker.start()
            if role == "teller" and not (base or {}).get("counter"):
                self.counter = DemoCounter(self.state)
            self.config = demo_config(role, port, self.state, base,
                                      self.counter.settings if self.counter else None)
            self.edge = DemoEdge(port, self.state, replay or Replay(role))
        except BaseException:
            self.close()
            raise

    def start(self, pad_connected: Callable[[], bool]) -> None:
        assert self.edge is not None
        self.edge.start(pad_connected)

    def close(self) -> None:
        if self.edge is not None:
            self.edge.stop()
        if self.counter is not None:
            self.counter.close()
        self.broker.stop()
        shutil.rmtree(self.state, ignore_errors=True)

    def __enter__(self) -> DemoBranch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
