"""Head office's keys: the Ed25519 key that signs gallery packages, the data key that seals
templates at rest, and each branch's X25519 public key (packages are encrypted for it)."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from hq.errors import HqError
from mqtt.files import check_secret_mode, create_private, read_bounded
from mqtt.package import PackageError, load_private_key, public_pem, write_private_key

DATA_KEY_BYTES = 32


def init_keys(signing_key: Path, data_key: Path, public_out: Path) -> bytes:
    """Create both keys (never overwriting) and write the signing key's public half (PEM),
    which every branch is provisioned with; returns that PEM."""
    key = Ed25519PrivateKey.generate()
    try:
        write_private_key(key, signing_key)
    except PackageError as err:
        raise HqError(str(err)) from err
    if data_key.exists():
        raise HqError(f"{data_key} exists: refusing to overwrite a key")
    create_private(data_key)
    data_key.write_text(os.urandom(DATA_KEY_BYTES).hex() + "\n", encoding="ascii")
    pem = public_pem(key.public_key())
    public_out.write_bytes(pem)
    return pem


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    try:
        key: Ed25519PrivateKey = load_private_key(path, Ed25519PrivateKey)
    except PackageError as err:
        raise HqError(str(err)) from err
    return key


def load_data_key(path: Path) -> AESGCM:
    try:
        check_secret_mode(path, "data key")
        raw = bytes.fromhex(read_bounded(path, 256, "data key").decode("ascii").strip())
    except (OSError, ValueError) as err:
        raise HqError(f"cannot load the data key {path}: {err}") from err
    if len(raw) != DATA_KEY_BYTES:
        raise HqError(f"{path}: the data key must be {DATA_KEY_BYTES} bytes (hex)")
    return AESGCM(raw)
