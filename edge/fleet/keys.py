"""The branch's keys for head office: its own X25519 key (packages are encrypted for it) and
head office's Ed25519 public key (packages must be signed by it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from edge.config import FleetConfig
from edge.core.errors import ConfigError
from mqtt.files import read_bounded
from mqtt.package import PackageError, load_private_key, load_public_key, public_pem, write_private_key


@dataclass(frozen=True)
class FleetKeys:
    hq: Ed25519PublicKey
    branch: X25519PrivateKey


def generate_branch_key(private_path: Path, public_path: Path) -> bytes:
    """A new X25519 key pair: the private key 0600 at ``private_path``, the public key (PEM,
    what head office registers for this branch) at ``public_path``; returns the public PEM."""
    key = X25519PrivateKey.generate()
    try:
        write_private_key(key, private_path)
    except PackageError as err:
        raise ConfigError(str(err)) from err
    pem = public_pem(key.public_key())
    public_path.write_bytes(pem)
    return pem


def load_fleet_keys(cfg: FleetConfig, hq_public_key: Path | None = None,
                    branch_key: Path | None = None) -> FleetKeys:
    """Raises ConfigError naming the missing or unusable key."""
    hq_path, branch_path = hq_public_key or cfg.hq_public_key, branch_key or cfg.branch_key
    if hq_path is None or branch_path is None:
        raise ConfigError("[fleet] hq_public_key and branch_key must both be set (or given as options)")
    try:
        hq = load_public_key(read_bounded(hq_path, 16 * 1024, "head office key"), Ed25519PublicKey,
                             str(hq_path))
        branch = load_private_key(branch_path, X25519PrivateKey)
    except OSError as err:
        raise ConfigError(f"cannot read head office's public key {hq_path}: {err}") from err
    except PackageError as err:
        raise ConfigError(str(err)) from err
    return FleetKeys(hq, branch)
