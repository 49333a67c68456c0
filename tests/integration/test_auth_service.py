"""Counter authorization end to end over a real Mosquitto broker, with the real face
engine: a teller terminal asks, the edge decides or escalates, a supervisor answers."""

from __future__ import annotations

import base64
import os
import threading
import time
import uuid
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from edge.core.auth_policy import policies_from_dict
from edge.core.idcard_rules import mod11_2_check_char
from edge.counter.service import AuthService, auth_subscriptions
from edge.store.crypto import KeyRing
from edge.store.database import Store
from edge.vision.card_photo import degrade_card, jpeg_bytes
from edge.vision.imageio import load_image
from mqtt.messages import AuthDecision, AuthEscalation, AuthRequest, AuthResponse, CardFields, utc_now
from tests.mqtt_fixtures import make_client, roster_of, wait_until

BRANCH = "b1"
CUSTOMER = "c-100"
FIRST17 = "11010519491231002"  # Beijing, born 1949-12-31, sequence 002 (even: female)
ID_NUMBER = FIRST17 + mod11_2_check_char(FIRST17)
POLICIES = {
    "escalation_timeout_s": 2,
    "defaults": {"match_threshold": 0.40, "escalate_threshold": 0.32},
    "scenario": {
        "card_replacement": {},
        "large_withdrawal": {"auto_approve_max_amount": 50000.0},
        # a strict scenario where a genuine but ordinary score lands in the supervisor band
        "strict_check": {"match_threshold": 0.95, "escalate_threshold": 0.30},
    },
}


def b64_jpeg(image) -> str:
    return base64.b64encode(jpeg_bytes(image, 90)).decode("ascii")


def card_photo(engine, path: Path) -> str:
    """An ID-card-like photo (102x126, aged, compressed) made from a real face photo."""
    image = load_image(path)
    face = engine.analyze(image, max_faces=1, embed=False)[0].face
    return b64_jpeg(degrade_card(image, face))


@pytest.fixture(scope="module")
def photos(engine, data_dir):
    asia = data_dir / "faces_asia"
    return {
        "card": card_photo(engine, asia / "Hitomi_Soga" / "Hitomi_Soga_0001.jpg"),
        "other_card": card_photo(engine, asia / "Fujio_Cho" / "Fujio_Cho_0001.jpg"),
        "live": [b64_jpeg(load_image(asia / "Hitomi_Soga" / f"Hitomi_Soga_000{i}.jpg")) for i in (2, 3)],
    }


@pytest.fixture
def keys() -> KeyRing:
    return KeyRing(os.urandom(32))


@pytest.fixture
def db(tmp_path, keys) -> Path:
    path = tmp_path / "edge.db"
    with Store.open(path, keys) as store:
        store.upsert_customer(CUSTOMER, actor="test")
        store.set_holder_id_number(CUSTOMER, ID_NUMBER, actor="test")
    return path


class Bus:
    """The edge service, a teller terminal and a supervisor PAD on one real broker."""

    def __init__(self, prov, tmp_path, engine, *, db, keys, policies, counter_frames=None) -> None:
        self.responses: list[AuthResponse] = []
        self.escalations: list[AuthEscalation] = []
        topics = auth_subscriptions(BRANCH)
        # The edge checks who sends what against the provisioned roster (teller-1 is t-7, sup-1 is s-1).
        self.edge = make_client(prov, "edge-1", tmp_path / "edge", subscriptions=topics,
                                roster_file=roster_of(prov, "edge-1"))
        self.teller = make_client(prov, "teller-1", tmp_path / "teller",
                                  subscriptions=(f"bank/v1/branch/{BRANCH}/auth/responses/teller-1",),
                                  handler=lambda d: self.responses.append(d.message))
        self.supervisor = make_client(prov, "sup-1", tmp_path / "sup",
                                      subscriptions=(f"bank/v1/branch/{BRANCH}/auth/escalations",),
                                      handler=lambda d: self.escalations.append(d.message))
        self.service = AuthService(engine, lambda: Store.open(db, keys, create=False), self.edge,
                                   policies_from_dict(policies), counter_frames=counter_frames)
        self.clients = (self.edge, self.teller, self.supervisor)
        for client in self.clients:
            client.start()
        assert all(c.wait_connected(10) for c in self.clients)
        self.service.start(threading.Event())

    def close(self) -> None:
        self.service.stop()
        for client in self.clients:
            client.stop(drain_s=1)

    def final(self, request: AuthRequest, timeout: float = 30) -> AuthResponse:
        def done() -> list[AuthResponse]:
            return [r for r in self.responses if r.request_id == request.id and r.verdict != "escalate"]

        assert wait_until(lambda: bool(done()), timeout), self.responses
        return done()[0]

    def interim(self, request: AuthRequest) -> AuthResponse:
        assert wait_until(lambda: any(r.request_id == request.id for r in self.responses), 30)
        return next(r for r in self.responses if r.request_id == request.id)


@pytest.fixture
def bus(provisioned_branch, mosquitto_broker, tmp_path, engine, *, db, keys):
    mosquitto_broker(provisioned_branch)
    made: list[Bus] = []

    def start(policies=POLICIES, counter_frames=None) -> Bus:
        made.append(Bus(provisioned_branch, tmp_path, engine, db=db, keys=keys, policies=policies,
                        counter_frames=counter_frames))
        return made[-1]

    yield start
    for one in made:
        one.close()


def request(photos, scenario="card_replacement", *, card_photo_key="card", amount=None,
            id_number=ID_NUMBER, live=True) -> AuthRequest:
    return AuthRequest(
        branch_id=BRANCH, expires_at=utc_now() + timedelta(minutes=1), device_id="teller-1",
        teller_id="t-7", transaction_id="tx-1", scenario=scenario, account_holder_id=CUSTOMER,
        card=CardFields(card_type="resident", id_number=id_number, name="测试", gender="2", nation_code="01",
                        birth_date=date(1949, 12, 31), valid_from=date(2015, 3, 1), valid_until=None),
        card_photo_jpeg_b64=photos[card_photo_key],
        live_jpeg_b64=photos["live"] if live else [], amount=amount,
        reader_sam_id="05.01-20101025-0012345678",
    )


def audit_actions(db: Path, keys: KeyRing, request_id: str) -> list[str]:
    with Store.open(db, keys, create=False) as store:
        entries = store.audit_entries(request_id)
        assert store.verify_audit() is None
    text = repr(entries)
    assert ID_NUMBER not in text and "测试" not in text and "/9j/" not in text  # no number, name, JPEG
    return [e["action"] for e in entries]


def test_the_account_holder_with_a_matching_face_is_approved(bus, photos, db, keys):
    edge = bus()
    req = request(photos)
    edge.teller.publish(req)
    answer = edge.final(req)
    assert answer.verdict == "approve", answer.reasons
    scores = {s.name: s for s in answer.scores}
    assert scores["face_match"].value >= scores["face_match"].threshold == 0.40
    assert scores["liveness"].value >= 0.5
    assert audit_actions(db, keys, req.id) == ["auth_requested", "auth_decided"]


def test_another_persons_card_photo_is_rejected(bus, photos):
    edge = bus()
    req = request(photos, card_photo_key="other_card")
    edge.teller.publish(req)
    answer = edge.final(req)
    assert answer.verdict == "reject"
    assert "face_mismatch" in answer.reasons
    assert next(s for s in answer.scores if s.name == "face_match").value < 0.32


def test_a_card_that_is_not_the_account_holders_is_rejected(bus, photos):
    edge = bus()
    first17 = "11010519491231004"  # a valid number of somebody else
    req = request(photos, id_number=first17 + mod11_2_check_char(first17))
    edge.teller.publish(req)
    answer = edge.final(req)
    assert answer.verdict == "reject" and "holder_mismatch" in answer.reasons


def test_low_score_escalates_and_the_supervisor_decision_reaches_the_teller(bus, photos, db, keys):
    edge = bus()
    req = request(photos, scenario="strict_check")
    edge.teller.publish(req)
    assert edge.interim(req).verdict == "escalate"
    assert wait_until(lambda: bool(edge.escalations), 10)
    escalation = edge.escalations[0]
    assert escalation.request_id == req.id and "face_match_low" in escalation.reasons
    assert escalation.masked_card_number == ID_NUMBER[:6] + "********" + ID_NUMBER[-4:]
    assert escalation.card_photo_jpeg_b64 == photos["card"] and escalation.live_jpeg_b64
    edge.supervisor.publish(AuthDecision(branch_id=BRANCH, request_id=req.id, supervisor_id="s-1",
                                         device_id="sup-1", decision="approve", reason="known customer"))
    answer = edge.final(req)
    assert answer.verdict == "approve" and answer.decided_by == "s-1"
    assert answer.reasons == ["supervisor_approved", "note:known customer"]
    assert audit_actions(db, keys, req.id) == [
        "auth_requested", "auth_escalated", "auth_supervisor_decision", "auth_decided"]


def test_an_amount_over_the_limit_escalates_and_a_supervisor_can_reject(bus, photos):
    edge = bus()
    req = request(photos, scenario="large_withdrawal", amount=80000.0)
    edge.teller.publish(req)
    assert "amount_over_limit" in edge.interim(req).reasons
    assert wait_until(lambda: bool(edge.escalations), 10)
    edge.supervisor.publish(AuthDecision(branch_id=BRANCH, request_id=req.id, supervisor_id="s-1",
                                         device_id="sup-1", decision="reject", reason="call back"))
    answer = edge.final(req)
    assert answer.verdict == "reject" and answer.reasons[0] == "supervisor_rejected"


def test_no_supervisor_answer_within_the_timeout_is_a_reject(bus, photos, db, keys):
    edge = bus()
    req = request(photos, live=False)  # declined face capture: only a supervisor can approve
    started = time.monotonic()
    edge.teller.publish(req)
    assert edge.interim(req).reasons == ["no_live_capture"]
    answer = edge.final(req)
    assert answer.verdict == "reject" and answer.reasons == ["escalation_timeout"]
    assert time.monotonic() - started >= 2.0  # not before the policy's timeout
    late = AuthDecision(branch_id=BRANCH, request_id=req.id, supervisor_id="s-1", device_id="sup-1",
                        decision="approve", reason="too late")
    edge.supervisor.publish(late)
    assert wait_until(lambda: "auth_decision_ignored" in audit_actions(db, keys, req.id), 10)
    assert [r.verdict for r in edge.responses if r.request_id == req.id] == ["escalate", "reject"]


def test_an_unknown_scenario_and_an_undecodable_photo_are_rejected(bus, photos):
    edge = bus()
    unknown = request(photos, scenario="teleport")
    broken = replace(request(photos), id=str(uuid.uuid4()),
                     card_photo_jpeg_b64=base64.b64encode(b"not a jpeg").decode())
    stale = replace(request(photos), id=str(uuid.uuid4()), sent_at=utc_now() - timedelta(minutes=5))
    for one in (unknown, broken, stale):
        edge.teller.publish(one)
    assert edge.final(unknown).reasons == ["unknown_scenario"]
    assert edge.final(broken).reasons == ["bad_image"]
    assert edge.final(stale).reasons == ["request_expired"]  # sent longer ago than request_ttl_s


def test_the_daemon_gets_a_receiver_and_the_auth_topics_only_when_enabled():
    from edge.config import EdgeConfig
    from edge.counter.service import auth_client_parts

    assert auth_client_parts(EdgeConfig()) == (None, ())
    receiver, topics = auth_client_parts(EdgeConfig.model_validate(
        {"branch_id": BRANCH, "auth": {"enabled": True}, "mqtt": {"seen_ids_path": ":memory:"}}))
    assert receiver is not None
    assert topics == (f"bank/v1/branch/{BRANCH}/auth/requests/+", f"bank/v1/branch/{BRANCH}/auth/decisions/+")


def test_start_refuses_a_store_connection_it_cannot_use(provisioned_branch, tmp_path, engine, db, keys):
    from edge.counter.policies import AuthError

    client = make_client(provisioned_branch, "edge-1", tmp_path / "edge")
    with Store.open(db, keys, create=False) as store:
        service = AuthService(engine, store, client, policies_from_dict(POLICIES))
        with pytest.raises(AuthError, match="store factory"):
            service.start()
    client.outbox.close()


def test_live_frames_from_the_edges_counter_camera(bus, photos, db, keys):
    """live_source = counter_camera: the edge verifies against its own camera's frames."""
    import dataclasses

    from edge.counter.verifier import decode_jpeg

    frames = [decode_jpeg(b64) for b64 in photos["live"]]
    edge = bus(counter_frames=lambda: list(frames))
    req = dataclasses.replace(request(photos), live_jpeg_b64=[], live_source="counter_camera")
    edge.teller.publish(req)
    answer = edge.final(req)
    assert answer.verdict == "approve", answer.reasons


def test_counter_camera_requested_but_absent_goes_to_a_supervisor(bus, photos):
    import dataclasses

    edge = bus()  # this edge has no counter camera
    req = dataclasses.replace(request(photos), live_jpeg_b64=[], live_source="counter_camera")
    edge.teller.publish(req)
    interim = edge.interim(req)
    assert interim.verdict == "escalate"
    assert "counter_camera_unavailable" in interim.reasons
    assert wait_until(lambda: bool(edge.escalations), 10)
    assert "counter_camera_unavailable" in edge.escalations[0].reasons
