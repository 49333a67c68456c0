"""The licence-clean pack and SFace, real files: the graph repair, the digest check before
it, the input recipe against OpenCV's own SFace, and `models verify`'s commercial verdict."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from edge.cli import main
from edge.config import EdgeConfig, RuntimeConfig
from edge.core.errors import EngineError
from edge.vision.engine import FaceEngine
from edge.vision.imageio import load_image
from edge.vision.recognizer import SFaceRecognizer, dequantize_blocks, repair_sface_graph
from models.pack import ModelPackError, load_pack, parse_pack

SFACE = "face_recognition_sface_2021dec_int8bq.onnx"


@pytest.fixture(scope="module")
def clean_engine(models_dir: Path) -> FaceEngine:
    cfg = EdgeConfig()
    cfg = cfg.model_copy(update={"models": cfg.models.model_copy(update={"pack": "clean"})})
    return FaceEngine.from_config(cfg, models_dir)


def quiet() -> ort.SessionOptions:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return options


def test_onnx_runtime_refuses_sface_as_shipped_and_runs_the_repaired_graph(models_dir):
    data = (models_dir / SFACE).read_bytes()
    face = np.zeros((1, 3, 112, 112), np.float32)
    shipped = ort.InferenceSession(data, quiet(), providers=["CPUExecutionProvider"])
    assert len(shipped.get_inputs()) == 30  # the face and 29 weights nobody feeds
    with pytest.raises(ValueError, match="Required inputs"):
        shipped.run(None, {"data": face})
    session = ort.InferenceSession(repair_sface_graph(data), quiet(), providers=["CPUExecutionProvider"])
    assert [(i.name, i.shape) for i in session.get_inputs()] == [("data", [1, 3, 112, 112])]
    assert session.run(None, {"data": face})[0].shape == (1, 128)


def test_the_clean_pack_embeds_like_opencvs_own_sface(clean_engine, models_dir, data_dir):
    image = load_image(data_dir / "faces_asia" / "Hitomi_Soga" / "Hitomi_Soga_0001.jpg")
    aligned = clean_engine.analyze(image, max_faces=1, embed=False)[0].aligned
    ours = clean_engine.embed([aligned])[0]
    reference = cv2.FaceRecognizerSF.create(str(models_dir / SFACE), "").feature(aligned).ravel()
    assert float(ours @ (reference / np.linalg.norm(reference))) > 0.9999
    assert isinstance(clean_engine.recognizer, SFaceRecognizer) and clean_engine.verifiers == ()


def test_the_default_pack_adds_sface_as_a_counter_verifier(engine):
    assert [type(m).__name__ for m in engine.recognizers] == ["ArcFaceRecognizer", "SFaceRecognizer"]
    assert engine.embedding_size == 128  # the lobby's gallery still uses the first one alone


def test_a_file_whose_digest_differs_is_never_repaired_or_run(models_dir, tmp_path):
    spec = load_pack("clean").one("recognizer")
    data = bytearray((models_dir / SFACE).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / SFACE).write_bytes(bytes(data))
    with pytest.raises(EngineError, match=f"sha256 .* the manifest says {spec.sha256}"):
        SFaceRecognizer(tmp_path / SFACE, spec, RuntimeConfig())


def test_block_dequantisation_follows_the_onnx_definition():
    quantized = np.array([[-128, 0, 5, 127, 3]], np.int8)
    scale = np.array([[0.5, 2.0]], np.float32)
    zero = np.array([[1, -1]], np.int8)
    out = dequantize_blocks(quantized, scale, zero, axis=1, block=3)
    assert out.tolist() == [[-64.5, -0.5, 2.0, 256.0, 8.0]]


def test_models_verify_says_which_packs_are_commercially_usable(models_dir, capsys):
    assert main(["models", "verify", "--pack", "clean", "--models", str(models_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["commercial_use"] == "yes"
    assert {f["commercial_use"] for f in report["files"]} == {"yes"}
    assert main(["models", "verify", "--pack", "default", "--models", str(models_dir)]) == 0
    out = capsys.readouterr().out
    assert "NOT for commercial use" in out and "commercial" in out.splitlines()[1]
    assert main(["models", "list", "--json"]) == 0
    verdicts = {p["id"]: p["commercial_use"] for p in json.loads(capsys.readouterr().out)}
    assert verdicts["clean"] == "yes" and verdicts["default"] == "no" and verdicts["yunet"] == "review"


def test_the_clean_pack_is_calibrated_for_the_counter_and_the_lobby():
    pack = load_pack("clean")
    assert pack.commercial_use == "yes" and pack.threshold is not None
    assert {"1e-2", "1e-3", "1e-4"} <= set(pack.counter_thresholds)
    rates = sorted(pack.counter_thresholds, key=float)
    cosines = [pack.counter_thresholds[r] for r in rates]
    assert cosines == sorted(cosines, reverse=True)  # a lower false-accept rate, a higher threshold


@pytest.mark.parametrize(("change", "message"), [
    ({"sha256": ""}, "needs its sha256"),
    ({"commercial_use": "maybe"}, "commercial_use must be one of"),
    ({"research_only": True, "commercial_use": "yes"}, "research-only"),
])
def test_invalid_recognizer_entries_are_explained(tmp_path, change, message):
    entry = {"role": "recognizer", "kind": "sface", "file": SFACE, "licence": "Apache-2.0",
             "input_size": [112, 112], "embedding_size": 128, "sha256": "ab" * 32, **change}
    detector = {"role": "detector", "kind": "yunet", "file": "d.onnx", "licence": "MIT",
                "input_size": [640, 640]}
    with pytest.raises(ModelPackError, match=message):
        parse_pack({"pack": {"id": "x"}, "model": [detector, entry]}, tmp_path / "x.toml")


def test_counter_thresholds_must_be_rates_with_cosines(tmp_path):
    base = load_pack("clean")
    raw = {"pack": {"id": "x", "counter_thresholds": {"0.001": 0.4}},
           "model": [{"role": "detector", "kind": "yunet", "file": "d", "licence": "MIT",
                      "input_size": [1, 1]},
                     {"role": "recognizer", "kind": "arcface", "file": "r", "licence": "MIT",
                      "input_size": [112, 112], "embedding_size": 128}]}
    with pytest.raises(ModelPackError, match="written like"):
        parse_pack(raw, tmp_path / "x.toml")
    raw["pack"]["counter_thresholds"] = {"1e-3": 1.5}
    with pytest.raises(ModelPackError, match="cosine between"):
        parse_pack(raw, tmp_path / "x.toml")
    assert base.counter_thresholds  # the shipped one parses


def test_verify_catches_a_tampered_sface_file_before_any_load(models_dir, tmp_path, capsys):
    for spec in load_pack("clean").models:
        shutil.copy(models_dir / spec.file, tmp_path / spec.file)
    (tmp_path / SFACE).write_bytes(b"not a model")
    assert main(["models", "verify", "--pack", "clean", "--models", str(tmp_path), "--json"]) == 1
    bad = [f for f in json.loads(capsys.readouterr().out)["files"] if not f["ok"]]
    assert [(f["file"], f["status"]) for f in bad] == [(SFACE, "mismatch")]
