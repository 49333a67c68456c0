"""The embedding contract head office builds packages for, from the same model pack manifest
the branches load (:mod:`models.pack`), by the digest of the recognizer file it verified."""

from __future__ import annotations

from pathlib import Path

from models.pack import load_pack, require_verified, resolve_models_dir
from mqtt.package import EmbeddingContract


def pack_contract(pack_name: str, models_dir: Path | None = None) -> EmbeddingContract:
    """Raises ModelPackError: unknown pack, missing or unexpected recognizer file."""
    pack = load_pack(pack_name)
    root = resolve_models_dir(pack, models_dir, None)
    recognizer = pack.one("recognizer")
    check = next(c for c in require_verified(pack, root) if c.spec == recognizer)
    return EmbeddingContract(pack.id, check.actual_sha256, recognizer.input_size, recognizer.color,
                             recognizer.mean, recognizer.std, recognizer.embedding_size)
