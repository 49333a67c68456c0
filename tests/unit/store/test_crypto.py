"""Encryption at rest: AES-GCM blobs bound to their row, keys outside the database."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge import cli
from edge.config import StoreConfig
from edge.core.errors import StoreError
from edge.store.crypto import (
    HEADER_BYTES,
    KEY_BYTES,
    KeyRing,
    associated_data,
    blob_key_id_of,
    generate_key_file,
    key_id_of,
    load_key_ring,
    parse_key,
    read_key_file,
)

AAD = associated_data("templates", "C001", "embedding:default:abc")


@pytest.fixture
def ring() -> KeyRing:
    return KeyRing(os.urandom(KEY_BYTES))


def test_round_trip_and_fresh_nonce(ring: KeyRing) -> None:
    secret = b"\x01\x02 face template bytes"
    first, second = ring.encrypt(secret, AAD), ring.encrypt(secret, AAD)
    assert first != second  # random nonce: equal templates do not give equal blobs
    assert secret not in first
    assert ring.decrypt(first, AAD) == secret
    assert blob_key_id_of(first) == ring.primary_id == key_id_of(ring.primary)


def test_blob_moved_to_another_customer_fails(ring: KeyRing) -> None:
    blob = ring.encrypt(b"template of C001", AAD)
    other = associated_data("templates", "C002", "embedding:default:abc")
    with pytest.raises(StoreError, match="failed authentication"):
        ring.decrypt(blob, other)
    as_photo = associated_data("photos", "C001", "embedding:default:abc")
    with pytest.raises(StoreError, match="failed authentication"):
        ring.decrypt(blob, as_photo)


def test_wrong_key_names_the_expected_key_id(ring: KeyRing) -> None:
    blob = ring.encrypt(b"secret", AAD)
    thief = KeyRing(os.urandom(KEY_BYTES))
    with pytest.raises(StoreError, match=f"key id {ring.primary_id}") as err:
        thief.decrypt(blob, AAD, "template 7")
    assert "template 7" in str(err.value)


def test_older_key_in_ring_still_decrypts_for_rotation(ring: KeyRing) -> None:
    old_blob = ring.encrypt(b"old", AAD)
    rotated = KeyRing(os.urandom(KEY_BYTES), older=(ring.primary,))
    assert rotated.decrypt(old_blob, AAD) == b"old"
    assert blob_key_id_of(rotated.encrypt(b"new", AAD)) == rotated.primary_id != ring.primary_id


@settings(max_examples=60, deadline=None)
@given(plaintext=st.binary(max_size=600), position=st.integers(min_value=0), bit=st.integers(0, 7))
def test_any_flipped_bit_is_detected(plaintext: bytes, position: int, bit: int) -> None:
    ring = KeyRing(b"k" * KEY_BYTES)
    blob = bytearray(ring.encrypt(plaintext, AAD))
    assert ring.decrypt(bytes(blob), AAD) == plaintext
    blob[position % len(blob)] ^= 1 << bit
    with pytest.raises(StoreError):
        ring.decrypt(bytes(blob), AAD)


_PART = st.text(alphabet=st.characters(blacklist_characters="\x00"), max_size=8)


@given(parts=st.tuples(_PART, _PART, _PART), other=st.tuples(_PART, _PART, _PART))
def test_associated_data_is_unambiguous(parts: tuple[str, str, str],
                                        other: tuple[str, str, str]) -> None:
    assert (associated_data(*parts) == associated_data(*other)) == (parts == other)


def test_associated_data_refuses_nul() -> None:
    with pytest.raises(StoreError, match="NUL"):
        associated_data("templates", "C\x00001", "x")


def test_truncated_or_foreign_blob_is_a_clear_error(ring: KeyRing) -> None:
    with pytest.raises(StoreError, match="not an encrypted"):
        ring.decrypt(b"\xff\xd8\xff plain jpeg", AAD)
    with pytest.raises(StoreError, match="not an encrypted"):
        ring.decrypt(ring.encrypt(b"x", AAD)[: HEADER_BYTES + 3], AAD)


def test_parse_key_accepts_hex_and_raw_only() -> None:
    key = os.urandom(KEY_BYTES)
    assert parse_key(key.hex().encode() + b"\n", "t") == key
    assert parse_key(key, "t") == key
    with pytest.raises(StoreError, match="not a key"):
        parse_key(b"abc", "t")
    with pytest.raises(StoreError, match="not a key"):
        parse_key(b"z" * 64, "t")


def test_generate_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "edge.key"
    key_id = generate_key_file(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key_id_of(read_key_file(path)) == key_id
    before = path.read_bytes()
    with pytest.raises(StoreError, match="refusing to overwrite"):
        generate_key_file(path)
    assert path.read_bytes() == before


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_file_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "edge.key"
    generate_key_file(path)
    path.chmod(mode)
    with pytest.raises(StoreError, match=f"mode {mode:04o}.*chmod 600"):
        read_key_file(path)
    path.chmod(0o400)
    assert len(read_key_file(path)) == KEY_BYTES


def test_key_ring_from_file_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "edge.key"
    file_id = generate_key_file(path)
    env_key = os.urandom(KEY_BYTES)
    monkeypatch.setenv("TEST_EDGE_KEY", env_key.hex())
    cfg = StoreConfig(key_env="TEST_EDGE_KEY")
    assert load_key_ring(cfg).primary_id == key_id_of(env_key)
    assert load_key_ring(cfg.model_copy(update={"key_file": path})).primary_id == file_id
    assert load_key_ring(cfg, key_file=path).primary_id == file_id
    monkeypatch.delenv("TEST_EDGE_KEY")
    with pytest.raises(StoreError, match=r"no encryption key.*keys generate"):
        load_key_ring(cfg)
    with pytest.raises(StoreError, match="does not exist"):
        load_key_ring(cfg, key_file=tmp_path / "missing.key")


def test_cli_keys_generate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(cli, "COMMANDS", ("keys",))
    path = tmp_path / "new.key"
    assert cli.main(["keys", "generate", "--out", str(path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["key_id"] == key_id_of(read_key_file(path))
    assert cli.main(["keys", "generate", "--out", str(path)]) == 2
    assert "refusing to overwrite" in capsys.readouterr().err
