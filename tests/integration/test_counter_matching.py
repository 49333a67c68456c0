"""The counter's 1:1 with the real default pack: card photo preparation, several live frames,
both recognizers fused; the card protocol of `evaluate` and `bench counter` on a small folder."""

from __future__ import annotations

import base64
import json
import os
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from edge.cli import main
from edge.core.auth_policy import ScenarioPolicy
from edge.counter import matching
from edge.counter.verifier import Verifier, decode_jpeg
from edge.store.crypto import KeyRing
from edge.store.database import Store
from edge.tools.counter_eval import simulate_burst
from edge.vision.card_photo import CardLook, degrade_card, jpeg_bytes
from edge.vision.imageio import load_image
from mqtt.messages import AuthRequest, CardFields, utc_now

PEOPLE = ("Hitomi_Soga", "Fujio_Cho", "Yao_Ming")


@pytest.fixture(scope="module")
def small_asia(data_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three people, three photos each (links into faces_asia)."""
    root = tmp_path_factory.mktemp("asia")
    for person in PEOPLE:
        (root / person).mkdir()
        for photo in sorted((data_dir / "faces_asia" / person).iterdir())[:3]:
            (root / person / photo.name).symlink_to(photo)
    return root


def usable_frames(engine, image: np.ndarray, count: int) -> list:
    frames = [engine.analyze(f, max_faces=1, embed=False) for f in simulate_burst(image, count, seed=1)]
    return [found[0] for found in frames if found]


AGED = CardLook()


def card_of(engine, path: Path, look: CardLook = AGED) -> np.ndarray:
    image = load_image(path)
    return degrade_card(image, engine.analyze(image, max_faces=1, embed=False)[0].face, look)


def test_a_card_matches_its_holder_over_several_frames_and_not_someone_else(engine, small_asia):
    hitomi = sorted((small_asia / "Hitomi_Soga").iterdir())
    other = sorted((small_asia / "Fujio_Cho").iterdir())[1]
    card = card_of(engine, hitomi[0])
    holder = usable_frames(engine, load_image(hitomi[1]), 3)
    stranger = usable_frames(engine, load_image(other), 3)
    same = matching.match(engine, card, holder)
    different = matching.match(engine, card, stranger)
    assert same.card_face_found and same.frames_used == 3 and not same.card_monochrome
    assert same.score is not None and different.score is not None
    assert same.score > different.score + 0.2
    single = matching.match(engine, card, holder[:1])
    assert single.frames_used == 1 and single.score != same.score  # the frames are fused, not one taken
    alone = matching.match(engine, card, holder, matching.MatchRecipe(fuse=False))
    assert alone.score != same.score  # both recognizers count


def test_a_grey_card_is_compared_with_colour_live_crops_and_a_missing_face_is_said(engine, small_asia):
    photos = sorted((small_asia / "Yao_Ming").iterdir())
    grey = card_of(engine, photos[0], CardLook(grey=True))
    live = usable_frames(engine, load_image(photos[1]), 2)
    result = matching.match(engine, grey, live)
    assert result.card_monochrome and result.score is not None and result.score > 0.3
    greyed = matching.match(engine, grey, live, matching.MatchRecipe(grey_match=True))
    assert greyed.score != result.score  # the live crops stay in colour unless asked
    blank = np.full((126, 102, 3), 128, np.uint8)
    assert matching.match(engine, blank, live) == matching.Match(None, False, 0, False)
    assert matching.match(engine, grey, []).score is None


def test_evaluate_card_reports_the_counter_step_by_step(small_asia, models_dir, tmp_path, capsys):
    out = tmp_path / "card.json"
    assert main(["evaluate", "--faces", str(small_asia), "--degrade", "card", "--models", str(models_dir),
                 "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "counter 1:1 step by step" in text and "live: 3 camera frames fused (the counter)" in text
    report = json.loads(out.read_text(encoding="utf-8"))
    counter = report["counter"]
    assert counter["recognizers"] == ["mobilefacenet_paddlex.onnx",
                                      "face_recognition_sface_2021dec_int8bq.onnx"]
    assert counter["recipe"]["frames"] == 3 and counter["recipe"]["fuse"]
    assert len(counter["steps"]) >= 8 and len(counter["each_recognizer"]) == 2
    assert set(counter["steps"][0]["threshold_at_far"]) == {"5e-2", "1e-2", "1e-3", "1e-4"}
    # 9 photos: 18 ordered genuine pairs (a photo is never compared with itself), 54 impostor ones
    ver = report["verification"]
    assert (ver["genuine_pairs"], ver["impostor_pairs"]) == (18, 54)
    assert counter["live_frames_simulated"] == 9 * 5
    assert "support_at_far" in ver  # what a rate rests on is still said


def test_bench_counter_times_request_to_decision_for_one_and_several_frames(small_asia, models_dir, capsys):
    assert main(["bench", "counter", "--faces", str(small_asia), "--requests", "2", "--frames", "1,3",
                 "--models", str(models_dir), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["live_frames"] for r in result["results"]] == [1, 3]
    for r in result["results"]:
        assert r["requests"] == 2 and 0 < r["p50_ms"] <= r["p95_ms"] <= r["max_ms"]
        assert 0 < r["cpu_p50_ms"] <= r["cpu_p95_ms"]
        assert sum(r["reasons"].values()) >= 3  # two timed, one to warm up, each with its reasons
    assert len(result["machine"]["load_average_before"]) == 3 and result["machine"]["cpus"] >= 1
    assert result["recognizers"][1] == "face_recognition_sface_2021dec_int8bq.onnx"


def test_bench_counter_refuses_more_frames_than_a_request_carries(small_asia, models_dir, capsys):
    assert main(["bench", "counter", "--faces", str(small_asia), "--frames", "4",
                 "--models", str(models_dir)]) == 2
    assert "at most 3" in capsys.readouterr().err


def test_the_verifier_scores_a_request_with_the_counters_recipe(engine, small_asia, tmp_path):
    def b64(image: np.ndarray) -> str:
        return base64.b64encode(jpeg_bytes(image, 90)).decode("ascii")

    photos = sorted((small_asia / "Fujio_Cho").iterdir())
    frames = simulate_burst(load_image(photos[1]), 3, seed=2)
    request = AuthRequest(
        branch_id="b1", expires_at=utc_now() + timedelta(minutes=1), device_id="teller-1", teller_id="t",
        transaction_id="x", scenario="s", account_holder_id="c",
        card=CardFields(card_type="resident", id_number="", name="n"),
        card_photo_jpeg_b64=b64(card_of(engine, photos[0])), live_jpeg_b64=[b64(f) for f in frames])
    with Store.open(tmp_path / "e.db", KeyRing(os.urandom(32))) as store:
        policy = ScenarioPolicy(name="s", title_zh="s", title_en="s")
        evidence = Verifier(engine, store).evidence(request, policy)
    live = [engine.analyze(decode_jpeg(f), max_faces=1, embed=False)[0] for f in request.live_jpeg_b64]
    expected = matching.match(engine, decode_jpeg(request.card_photo_jpeg_b64), live)
    assert evidence.live_frames == expected.frames_used == 3
    assert evidence.match_score == pytest.approx(expected.score, abs=1e-6)
