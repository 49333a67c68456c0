"""Config validation names the key and the allowed range."""

from __future__ import annotations

import pytest

from edge.config import EdgeConfig, load_config
from edge.core.errors import ConfigError


def test_defaults_load_without_a_file(monkeypatch):
    monkeypatch.delenv("BRANCH_EDGE_CONFIG", raising=False)
    assert load_config(None) == EdgeConfig()


def test_reads_toml(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text('branch_id = "sh-001"\n[recognition]\nthreshold = 0.5\n')
    cfg = load_config(path)
    assert cfg.branch_id == "sh-001" and cfg.recognition.threshold == 0.5


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[recognition]\nthreshold = 1.5\n",
         r"recognition\.threshold: Input should be less than or equal to 1"),
        ("[detection]\ninput_size = 650\n", r"detection\.input_size: Input should be a multiple of 32"),
        ("[runtime]\ndevice = 'tpu'\n", r"runtime\.device: Input should be 'cpu', 'gpu' or 'auto'"),
        ("[recognition]\nthreshhold = 0.4\n", r"recognition\.threshhold: Extra inputs are not permitted"),
        ("branch_id = 'a b'\n", r"branch_id: String should match pattern"),
    ],
)
def test_invalid_values_name_key_and_range(tmp_path, toml, message):
    path = tmp_path / "edge.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_unreadable_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[recognition\nthreshold=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_threshold_defaults_to_the_packs_calibrated_one(tmp_path):
    assert EdgeConfig().recognition.threshold == 0.442
    fast = tmp_path / "fast.toml"
    fast.write_text('[models]\npack = "fast"\n')
    assert load_config(fast).recognition.threshold == 0.4769
    fast.write_text('[models]\npack = "fast"\n[recognition]\nthreshold = 0.5\n')
    assert load_config(fast).recognition.threshold == 0.5


def test_uncalibrated_pack_needs_an_explicit_threshold(tmp_path):
    path = tmp_path / "edge.toml"
    path.write_text('[models]\npack = "buffalo_l"\n')
    with pytest.raises(ConfigError, match="pack 'buffalo_l' has no calibrated threshold"):
        load_config(path)
    path.write_text('[models]\npack = "buffalo_l"\n[recognition]\nthreshold = 0.3\n')
    assert load_config(path).recognition.threshold == 0.3
    path.write_text('[models]\npack = "nope"\n')
    with pytest.raises(ConfigError, match="unknown model pack 'nope'"):
        load_config(path)
