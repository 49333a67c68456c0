"""Pack manifests and `branch-edge models verify`."""

from __future__ import annotations

import json
import shutil

import pytest

from edge.cli import main
from models.pack import ModelPackError, available_packs, load_pack, parse_pack


def test_every_shipped_pack_parses_with_the_roles_it_needs():
    assert {"default", "fast", "yunet", "buffalo_l", "buffalo_s"} <= set(available_packs())
    for pack_id in available_packs():
        pack = load_pack(pack_id)
        assert pack.one("detector") and pack.one("recognizer")
        for spec in pack.models:
            assert spec.licence


def test_default_pack_uses_the_documented_models():
    pack = load_pack("default")
    assert pack.one("detector").file == "det_500m.onnx"
    assert pack.one("recognizer").file == "mobilefacenet_paddlex.onnx"
    assert [s.crop_scale for s in pack.by_role("liveness")] == [2.7, 4.0]
    assert load_pack("fast").one("recognizer").file == "mobilefacenet.onnx"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "missing \\[pack\\]"),
        ({"pack": {"id": "x"}}, "no \\[\\[model\\]\\]"),
        ({"pack": {"id": "x"}, "model": [{"role": "eyes"}]}, "role must be one of"),
        ({"pack": {"id": "x"}, "model": [{"role": "detector", "kind": "scrfd", "file": "a", "licence": "l",
                                          "input_size": [640, 640], "sha256": "zz"}]}, "64 hex digits"),
        ({"pack": {"id": "x"}, "model": [{"role": "detector", "kind": "scrfd", "file": "a", "licence": "l",
                                          "input_size": [640, 640], "mean": "wide"}]},
         "mean must be a number"),
        ({"pack": {"id": "x"}, "model": [{"role": "recognizer", "kind": "arcface", "file": "a",
                                          "licence": "l", "input_size": [112, 112], "embedding_size": 2.5}]},
         "embedding_size must be an integer"),
    ],
)
def test_invalid_manifests_are_explained(tmp_path, data, message):
    with pytest.raises(ModelPackError, match=message):
        parse_pack(data, tmp_path / "x.toml")


def test_unknown_pack_lists_the_shipped_ones():
    with pytest.raises(ModelPackError, match="shipped packs: buffalo_l"):
        load_pack("nope")


def test_verify_prints_licences_and_research_only_flags(models_dir, capsys):
    assert main(["models", "verify", "--models", str(models_dir)]) == 0
    out = capsys.readouterr().out
    assert "det_500m.onnx" in out and "[RESEARCH ONLY]" in out and "Apache-2.0" in out
    assert "all files verified" in out


def test_verify_json_reports_a_mismatch_and_fails(models_dir, tmp_path, capsys):
    for spec in load_pack("fast").models:
        shutil.copy(models_dir / spec.file, tmp_path / spec.file)
    (tmp_path / "mobilefacenet.onnx").write_bytes(b"not a model")
    assert main(["models", "verify", "--pack", "fast", "--models", str(tmp_path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    bad = [f for f in report["files"] if not f["ok"]]
    assert [f["file"] for f in bad] == ["mobilefacenet.onnx"]
    assert bad[0]["status"] == "mismatch"
    assert bad[0]["expected_sha256"].startswith("0c9ad2a8")


def test_models_folder_precedence(monkeypatch, tmp_path):
    from pathlib import Path

    from models.pack import resolve_models_dir

    pack = load_pack("default")
    monkeypatch.setenv("BRANCH_EDGE_MODELS", str(tmp_path / "env"))
    assert resolve_models_dir(pack, Path("/cli"), Path("/cfg")) == Path("/cli")
    assert resolve_models_dir(pack, None, Path("/cfg")) == tmp_path / "env"
    monkeypatch.delenv("BRANCH_EDGE_MODELS")
    assert resolve_models_dir(pack, None, Path("/cfg")) == Path("/cfg")
    with pytest.raises(ModelPackError, match="no models folder"):
        resolve_models_dir(pack, None, None)
    buffalo = load_pack("buffalo_l")
    assert resolve_models_dir(buffalo, None, None) == Path.home() / ".insightface" / "models" / "buffalo_l"
