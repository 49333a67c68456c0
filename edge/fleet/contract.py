"""The embedding contract this branch runs: templates of any other contract are refused."""

from __future__ import annotations

from pathlib import Path

from edge.config import EdgeConfig
from models.pack import load_pack, require_verified, resolve_models_dir
from mqtt.package import EmbeddingContract


def branch_contract(cfg: EdgeConfig, models_dir: Path | None = None) -> EmbeddingContract:
    """The configured pack's recognizer, by the digest of the file this branch has (verified
    against the pack's manifest), and how its input is prepared.

    Raises:
        ModelPackError: the pack is unknown or a model file is missing or not the expected one.
    """
    pack = load_pack(cfg.models.pack)
    root = resolve_models_dir(pack, models_dir, cfg.models.dir)
    recognizer = pack.one("recognizer")
    check = next(c for c in require_verified(pack, root) if c.spec == recognizer)
    return EmbeddingContract(pack.id, check.actual_sha256, recognizer.input_size, recognizer.color,
                             recognizer.mean, recognizer.std, recognizer.embedding_size)
