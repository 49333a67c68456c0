"""The face engine over the real models and photos."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from edge.config import EdgeConfig, RuntimeConfig
from edge.core.errors import EngineError
from edge.vision.engine import FaceEngine
from edge.vision.imageio import load_image
from edge.vision.session import select_providers
from models.pack import DigestPins, ModelPackError

# Faces a person can count in each scene, and how many of them are cut off by
# the frame edge badly enough that missing them is acceptable.
SCENE_FACES = {
    "couple.jpg": (2, 0),
    "kit_with_rose.jpg": (2, 0),
    "multiface.jpg": (6, 0),
    "obama_and_biden.jpg": (3, 0),
    "selfie-many-people.jpg": (7, 1),
    "two_people.jpg": (2, 0),
}


@pytest.mark.parametrize(("scene", "expected"), SCENE_FACES.items())
def test_detects_every_face_in_scenes(engine, data_dir, scene, expected):
    total, may_miss = expected
    image = load_image(data_dir / "scenes" / scene)
    faces = engine.detect(image)
    assert total - may_miss <= len(faces) <= total
    for face in faces:
        x1, y1, x2, y2 = face.bbox
        cx, cy = face.landmarks.mean(axis=0)
        assert x1 < cx < x2 and y1 < cy < y2, "landmarks belong to their box"


def test_primary_face_is_largest_and_central(engine, data_dir):
    image = load_image(data_dir / "scenes" / "obama_and_biden.jpg")
    faces = engine.detect(image)
    areas = [f.area for f in faces]
    # The girl at the right edge is the smallest face and must not come first.
    assert faces[0].area >= 0.5 * max(areas)
    assert faces[-1].area == min(areas)


def test_alignment_matches_insightface_norm_crop(engine, data_dir):
    from insightface.utils import face_align

    image = load_image(data_dir / "faces" / "Adrien_Brody" / "Adrien_Brody_0001.jpg")
    obs = engine.analyze(image)[0]
    with pytest.warns(FutureWarning):  # insightface 2.1 calls a deprecated skimage API
        reference = face_align.norm_crop(image, obs.face.landmarks)
    assert obs.aligned.shape == (112, 112, 3)
    assert np.abs(reference.astype(int) - obs.aligned.astype(int)).mean() < 0.5


def _primary_embedding(engine, path: Path) -> np.ndarray:
    obs = engine.analyze(load_image(path))
    assert obs, f"no face in {path}"
    return obs[0].embedding


def test_same_person_scores_higher_than_different_people(engine, data_dir):
    faces = data_dir / "faces"
    a1 = _primary_embedding(engine, faces / "Adrien_Brody" / "Adrien_Brody_0001.jpg")
    a2 = _primary_embedding(engine, faces / "Adrien_Brody" / "Adrien_Brody_0002.jpg")
    b = _primary_embedding(engine, faces / "Ai_Sugiyama" / "Ai_Sugiyama_0001.jpg")
    assert np.linalg.norm(a1) == pytest.approx(1.0, abs=1e-5)
    assert float(a1 @ a2) > 0.5
    assert float(a1 @ b) < 0.3


def test_batched_embedding_equals_one_by_one(engine, data_dir):
    paths = sorted((data_dir / "faces" / "Alejandro_Toledo").iterdir())[:5]
    crops = [engine.analyze(load_image(p), embed=False)[0].aligned for p in paths]
    batched = engine.embed(crops)
    single = np.vstack([engine.embed([c]) for c in crops])
    assert batched.shape == (5, engine.embedding_size)
    np.testing.assert_allclose(batched, single, atol=1e-4)


def test_tight_crops_are_found_after_padding(engine, data_dir):
    crop_path = sorted((data_dir / "faces_asia" / "Kpop_Seulgi").iterdir())[0]
    image = load_image(crop_path)
    assert engine.detector.detect(image) == [], "SCRFD alone misses tight crops"
    faces = engine.detect(image)
    assert len(faces) == 1
    centre = (faces[0].bbox[:2] + faces[0].bbox[2:]) / 2
    assert 0 < centre[0] < image.shape[1] and 0 < centre[1] < image.shape[0]


@pytest.mark.parametrize(
    ("name", "live"),
    [("live_image_T1.jpg", True), ("spoof_image_F1.jpg", False),
     ("spoof_image_F2.jpg", False), ("spoof_rgb_fake.jpg", False)],
)
def test_liveness_separates_live_from_spoof(engine, data_dir, name, live):
    image = load_image(data_dir / "liveness" / name)
    face = engine.detect(image)[0]
    score = engine.liveness(image, face)
    assert (score >= engine.cfg.liveness.threshold) == live, score


def test_quality_flags_blur_and_small_faces(engine, data_dir):
    import cv2

    image = load_image(data_dir / "faces" / "Adrien_Brody" / "Adrien_Brody_0002.jpg")
    sharp = engine.analyze(image, embed=False)[0].quality
    blurred = engine.analyze(cv2.GaussianBlur(image, (0, 0), 4), embed=False)[0].quality
    tiny = engine.analyze(cv2.resize(image, (60, 60)), embed=False)
    assert "blurry" not in sharp.failures(engine.cfg.quality)
    assert blurred.blur < sharp.blur / 4
    assert "blurry" in blurred.failures(engine.cfg.quality)
    assert not tiny or "too_small" in tiny[0].quality.failures(engine.cfg.quality)


def test_yunet_pack_detects_and_embeds(models_dir, data_dir):
    cfg = EdgeConfig.model_validate({"models": {"pack": "yunet"}})
    yunet = FaceEngine.from_config(cfg, models_dir)
    faces = yunet.detect(load_image(data_dir / "scenes" / "multiface.jpg"))
    assert len(faces) == 6
    obs = yunet.analyze(load_image(data_dir / "faces" / "Adrien_Brody" / "Adrien_Brody_0001.jpg"))
    assert obs[0].embedding.shape == (128,)


def test_gpu_requested_without_gpu_is_an_error():
    with pytest.raises(EngineError, match="no GPU provider"):
        select_providers(RuntimeConfig(device="gpu"), ["CPUExecutionProvider"])
    auto = RuntimeConfig(device="auto")
    assert select_providers(auto, ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with_gpu = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert select_providers(auto, with_gpu)[0] == "CUDAExecutionProvider"


def test_gpu_config_fails_loudly_on_this_machine(models_dir):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has a GPU provider")
    cfg = EdgeConfig.model_validate({"runtime": {"device": "gpu"}})
    with pytest.raises(EngineError, match="no GPU provider"):
        FaceEngine.from_config(cfg, models_dir)


def _copy_pack(models_dir: Path, dest: Path) -> Path:
    for name in ("det_500m.onnx", "mobilefacenet_paddlex.onnx", "face_recognition_sface_2021dec_int8bq.onnx",
                 "2.7_80x80_MiniFASNetV2.onnx", "4_0_0_80x80_MiniFASNetV1SE.onnx"):
        shutil.copy(models_dir / name, dest / name)
    return dest


def test_corrupted_model_is_refused_naming_file_and_digest(models_dir, tmp_path):
    root = _copy_pack(models_dir, tmp_path)
    data = bytearray((root / "mobilefacenet_paddlex.onnx").read_bytes())
    data[-1] ^= 0xFF
    (root / "mobilefacenet_paddlex.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelPackError, match=r"mobilefacenet_paddlex\.onnx.*expected 6ced4e0c36ab"):
        FaceEngine.from_config(EdgeConfig(), root)


def test_missing_model_is_refused(models_dir, tmp_path):
    root = _copy_pack(models_dir, tmp_path)
    (root / "det_500m.onnx").unlink()
    with pytest.raises(ModelPackError, match=r"det_500m\.onnx is missing \(expected sha256 5e4447f5"):
        FaceEngine.from_config(EdgeConfig(), root)


def _unpinned_manifest(tmp_path: Path, embedding_size: int) -> Path:
    text = (Path(__file__).resolve().parents[2] / "models" / "packs" / "default.toml").read_text()
    text = text.replace('id = "default"', 'id = "local"').replace(
        'sha256 = "6ced4e0c36abba9dd24b48d725f7dbb94089f75b3d3445d3d67b85157cb64743"', 'sha256 = ""'
    ).replace("embedding_size = 128", f"embedding_size = {embedding_size}")
    manifest = tmp_path / "local.toml"
    manifest.write_text(text)
    return manifest


def test_unknown_digest_is_pinned_on_first_verified_use(models_dir, tmp_path):
    root = _copy_pack(models_dir, tmp_path / "m" if (tmp_path / "m").mkdir() is None else tmp_path)
    pins = DigestPins(tmp_path / "pins.json")
    cfg = EdgeConfig.model_validate({"models": {"pack": str(_unpinned_manifest(tmp_path, 128))}})
    FaceEngine.from_config(cfg, root, pins)
    assert "local/mobilefacenet_paddlex.onnx" in pins.path.read_text()
    data = bytearray((root / "mobilefacenet_paddlex.onnx").read_bytes())
    data[-1] ^= 0xFF
    (root / "mobilefacenet_paddlex.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelPackError, match="wrong or corrupted"):
        FaceEngine.from_config(cfg, root, pins)


def test_file_failing_its_signature_is_not_pinned(models_dir, tmp_path):
    root = _copy_pack(models_dir, tmp_path / "m" if (tmp_path / "m").mkdir() is None else tmp_path)
    pins = DigestPins(tmp_path / "pins.json")
    cfg = EdgeConfig.model_validate({"models": {"pack": str(_unpinned_manifest(tmp_path, 512))}})
    with pytest.raises(EngineError, match="embedding size 128, manifest says 512"):
        FaceEngine.from_config(cfg, root, pins)
    assert not pins.path.exists()
