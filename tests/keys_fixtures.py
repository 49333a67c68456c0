"""A store filled with real JPEG photos and unit-vector templates, and key files on disk,
for the key rotation, backup and audit tests."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge.store.base import utc_now
from edge.store.crypto import generate_key_file, read_key_file
from edge.store.database import Store

ACTOR = "test-officer"
PACK = "default"
DIM = 512


@dataclass
class Enrolled:
    photos: dict[int, bytes]  # photo id -> plaintext JPEG bytes
    vectors: dict[str, list[np.ndarray]]  # customer id -> templates in insertion order


def new_key(directory: Path, name: str) -> tuple[Path, bytes]:
    path = directory / name
    generate_key_file(path)
    return path, read_key_file(path)


def real_jpegs(data_dir: Path, count: int) -> list[bytes]:
    files = sorted((data_dir / "faces").glob("*/*.jpg"))[:count]
    assert len(files) == count, "the shared photo set is smaller than the test needs"
    return [f.read_bytes() for f in files]


def populate(store: Store, jpegs: list[bytes], customers: int, per_customer: int,
             seed: int = 0) -> Enrolled:
    rng = np.random.default_rng(seed)
    enrolled = Enrolled({}, {})
    for c in range(customers):
        cid = f"C{c:04d}"
        store.upsert_customer(cid, ACTOR, display_name=f"Test Person {c}", tier="gold")
        store.record_consent(cid, "paper-form", utc_now(), ACTOR)
        for i in range(per_customer):
            # Real JPEG bytes, made unique (the store keys photos by content hash).
            jpeg = jpegs[(c * per_customer + i) % len(jpegs)] + f"#{cid}/{i}".encode()
            photo_id, _ = store.add_photo(cid, jpeg)
            vector = rng.standard_normal(DIM).astype(np.float32)
            vector /= np.linalg.norm(vector)
            store.add_template(cid, PACK, vector, quality={}, photo_id=photo_id,
                               source_sha256=os.urandom(32).hex(), source_name=f"{i}.jpg")
            enrolled.photos[photo_id] = jpeg
            enrolled.vectors.setdefault(cid, []).append(vector)
    return enrolled


def raw_bytes(path: Path) -> bytes:
    """The database file and its WAL, as a thief copying the directory would get them."""
    wal = Path(f"{path}-wal")
    return path.read_bytes() + (wal.read_bytes() if wal.exists() else b"")
