"""The edge's measurements with the real engine: spoof samples, card photos, and the
card-vs-live 1:1 evaluation that the shipped thresholds come from."""

from __future__ import annotations

import base64
import os
from dataclasses import replace
from datetime import timedelta

import numpy as np
import pytest

from edge.core.auth_policy import decide
from edge.counter.policies import load_policies
from edge.counter.verifier import Verifier
from edge.store.crypto import KeyRing
from edge.store.database import Store
from edge.tools.evaluate import Options, evaluate_faces
from edge.vision.card_photo import CARD_SIZE, CardLook, degrade_card, jpeg_bytes
from edge.vision.imageio import load_image
from mqtt.messages import AuthRequest, CardFields, utc_now

LIVE = "live_image_T1.jpg"
SPOOFS = ["spoof_image_F1.jpg", "spoof_image_F2.jpg", "spoof_rgb_fake.jpg"]


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "edge.db", KeyRing(os.urandom(32))) as opened:
        yield opened


def b64(image: np.ndarray) -> str:
    return base64.b64encode(jpeg_bytes(image)).decode("ascii")


def shifted(image: np.ndarray, dx: int) -> np.ndarray:
    """A second frame: the same scene a few pixels on, as a camera would give."""
    return np.roll(image, dx, axis=1)


def self_request(engine, image: np.ndarray) -> AuthRequest:
    """The card photo made from the same person, so only liveness can fail."""
    face = engine.analyze(image, max_faces=1, embed=False)[0].face
    side = max(image.shape[:2])
    small = image if side <= 800 else image[:: side // 800 + 1, :: side // 800 + 1]
    return AuthRequest(
        branch_id="b1", expires_at=utc_now() + timedelta(minutes=1), device_id="teller-1",
        teller_id="t", transaction_id="x", scenario="card_replacement", account_holder_id="c",
        card=CardFields(card_type="resident", id_number="", name="n"),
        card_photo_jpeg_b64=b64(degrade_card(image, face)),
        live_jpeg_b64=[b64(small), b64(shifted(small, 6))],
    )


@pytest.mark.parametrize(("name", "live"), [(LIVE, True)] + [(s, False) for s in SPOOFS])
def test_spoof_samples_are_rejected_and_the_live_one_is_not(engine, store, data_dir, name, live):
    policy = load_policies().scenarios["card_replacement"]
    policy = replace(policy, checks=frozenset({"liveness", "face_match"}))
    image = load_image(data_dir / "liveness" / name)
    evidence = Verifier(engine, store).evidence(self_request(engine, image), policy)
    decision = decide(policy, evidence)
    assert evidence.live_frames == 2
    assert (decision.verdict == "approve") == live, (decision, evidence.live_scores)
    assert ("liveness_failed" in decision.reasons) != live


def test_card_photo_looks_like_a_card_chip_photo(engine, data_dir):
    image = load_image(data_dir / "faces_asia" / "Hitomi_Soga" / "Hitomi_Soga_0001.jpg")
    face = engine.analyze(image, max_faces=1, embed=False)[0].face
    card = degrade_card(image, face)
    grey = degrade_card(image, face, CardLook(grey=True))
    assert card.shape == (CARD_SIZE[1], CARD_SIZE[0], 3)
    assert card.std() < image.std()  # faded
    assert float(card[..., 2].mean() - card[..., 0].mean()) > float(
        image[..., 2].mean() - image[..., 0].mean())  # yellowed: more red than blue
    assert np.abs(grey[..., 0].astype(int) - grey[..., 2].astype(int)).mean() < 3
    found = engine.analyze(card, max_faces=1)
    assert found, "the face must still be found on the small card photo"
    assert float(found[0].embedding @ engine.analyze(image, max_faces=1)[0].embedding) > 0.4


@pytest.fixture(scope="module")
def subset(tmp_path_factory, data_dir):
    """Twelve faces_asia identities with at least four photos each (symlinks)."""
    root = tmp_path_factory.mktemp("asia12")
    people = [p for p in sorted((data_dir / "faces_asia").iterdir()) if len(list(p.iterdir())) >= 4][:12]
    for person in people:
        (root / person.name).mkdir()
        for photo in sorted(person.iterdir())[:4]:
            (root / person.name / photo.name).symlink_to(photo)
    return root


def test_card_evaluation_reports_tar_at_far_and_is_harder_than_plain(engine, subset):
    plain = evaluate_faces(engine, subset, Options()).report["verification"]
    card = evaluate_faces(engine, subset, Options(degrade="card")).report
    ver = card["verification"]
    assert card["dataset"]["degrade"] == "card" and card["identification"] is None
    assert ver["genuine_pairs"] == 2 * plain["genuine_pairs"]  # card side first, both ways
    assert set(ver["tar_at_far"]) == {"1e-2", "1e-3", "1e-4"}
    assert 0.5 <= ver["tar_at_far"]["1e-2"] <= 1.0
    assert ver["genuine_score"]["mean"] < plain["genuine_score"]["mean"]  # the card photo costs
    assert ver["genuine_score"]["mean"] > ver["impostor_score"]["p99"]
    assert 0.2 <= ver["threshold_at_far"]["1e-2"] <= 0.5


def test_unknown_degradation_is_a_clear_error(engine, subset):
    from edge.tools.evaluate import EvaluationError

    with pytest.raises(EvaluationError, match="unknown degradation"):
        evaluate_faces(engine, subset, Options(degrade="sepia"))
