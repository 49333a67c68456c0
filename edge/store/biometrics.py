"""Face data: encrypted photos and templates, and their erasure."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge.core.errors import StoreError
from edge.store.base import iso, utc_now
from edge.store.crypto import associated_data
from edge.store.customers import Customers

log = logging.getLogger(__name__)


class NoConsentError(StoreError):
    """No active consent for the customer (never given, or withdrawn by an erasure)."""

    def __init__(self, customer_id: str) -> None:
        super().__init__(f"customer {customer_id} has no active consent: no face data is stored")
        self.customer_id = customer_id


@dataclass(frozen=True)
class Erasure:
    customer_id: str
    erased_at: str
    templates_removed: int
    photos_removed: int
    consents_withdrawn: int
    actor: str
    scrubbed: bool  # WAL checkpointed and file vacuumed: no old pages left

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class Biometrics(Customers):
    """Photos and templates, sealed per customer; erasure removes both in one transaction."""

    def add_photo(self, customer_id: str, data: bytes) -> tuple[int, bool]:
        """Store an encrypted photo; (id, created).  The same bytes twice give the same row."""
        sha = hashlib.sha256(data).hexdigest()
        with self.transaction() as c:
            sql = "SELECT id, customer_id FROM photos WHERE sha256 = ?"
            row = c.execute(sql, (sha,)).fetchone()
            if row is not None:
                if row[1] != customer_id:
                    raise StoreError(f"photo {sha[:12]} is already enrolled for another customer")
                return int(row[0]), False
            self._require_consent(customer_id)
            blob = self._keys.encrypt(data, associated_data("photos", customer_id, f"photo:{sha}"))
            cur = c.execute(
                "INSERT INTO photos (customer_id, sha256, key_id, ciphertext, created_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (customer_id, sha, self._keys.primary_id, blob, iso(utc_now())),
            )
        return int(cur.lastrowid or 0), True

    def load_photo(self, photo_id: int) -> bytes:
        row = self._conn.execute(
            "SELECT customer_id, sha256, ciphertext FROM photos WHERE id = ?", (photo_id,)
        ).fetchone()
        if row is None:
            raise StoreError(f"no photo with id {photo_id}")
        customer_id, sha, blob = row
        aad = associated_data("photos", customer_id, f"photo:{sha}")
        data = self._keys.decrypt(bytes(blob), aad, f"photo {photo_id}")
        if hashlib.sha256(data).hexdigest() != sha:
            raise StoreError(f"photo {photo_id}: content does not match its recorded digest")
        return data

    def template_owner(self, model_pack: str, source_sha256: str) -> str | None:
        """The customer whose template of ``model_pack`` came from this photo, if any."""
        row = self._conn.execute(
            "SELECT customer_id FROM templates WHERE model_pack = ? AND source_sha256 = ?",
            (model_pack, source_sha256),
        ).fetchone()
        return str(row[0]) if row else None

    def count_templates(self, customer_id: str, model_pack: str) -> int:
        row = self._conn.execute(
            "SELECT COUNT(*) FROM templates WHERE customer_id = ? AND model_pack = ?",
            (customer_id, model_pack),
        ).fetchone()
        return int(row[0])

    def add_template(self, customer_id: str, model_pack: str, embedding: np.ndarray, *,
                     quality: dict[str, Any], source_sha256: str, source_name: str,
                     photo_id: int | None = None) -> tuple[int, bool]:
        """Store an encrypted template; (id, created).  Idempotent on (pack, source photo)."""
        vector = np.ascontiguousarray(embedding, dtype="<f4").reshape(-1)
        if vector.size == 0 or not np.all(np.isfinite(vector)):
            raise StoreError(f"customer {customer_id}: template is empty or not finite")
        with self.transaction() as c:
            owner = self.template_owner(model_pack, source_sha256)
            if owner is not None:
                if owner != customer_id:
                    raise StoreError(f"photo {source_sha256[:12]} is enrolled for another customer")
                row = c.execute(
                    "SELECT id FROM templates WHERE model_pack = ? AND source_sha256 = ?",
                    (model_pack, source_sha256),
                ).fetchone()
                return int(row[0]), False
            self._require_consent(customer_id)
            purpose = _template_purpose(model_pack, source_sha256)
            aad = associated_data("templates", customer_id, purpose)
            cur = c.execute(
                "INSERT INTO templates (customer_id, model_pack, key_id, embedding, quality, "
                "source_sha256, source_name, photo_id, created_at) VALUES (?,?,?,?,?,?,?,?,?)",
                (customer_id, model_pack, self._keys.primary_id,
                 self._keys.encrypt(vector.tobytes(), aad), json.dumps(quality, sort_keys=True),
                 source_sha256, source_name, photo_id, iso(utc_now())),
            )
            self._bump_gallery_generation()
        return int(cur.lastrowid or 0), True

    def _require_consent(self, customer_id: str) -> None:
        """Face data is written only under a consent that is active in this very transaction:
        an erasure that committed a moment ago (another process) wins over a running enrolment."""
        if self.active_consent(customer_id) is None:
            raise NoConsentError(customer_id)

    def load_templates(self, model_pack: str, dim: int | None = None,
                       customer_id: str | None = None) -> tuple[list[str], np.ndarray]:
        """Decrypted templates of one model pack: (customer ids, float32 (n, d) embeddings).

        Templates of other packs are never returned: their vectors live in another space.
        """
        sql = "SELECT id, customer_id, source_sha256, embedding FROM templates WHERE model_pack = ?"
        params: tuple[str, ...] = (model_pack,)
        if customer_id is not None:
            sql, params = sql + " AND customer_id = ?", (model_pack, customer_id)
        ids: list[str] = []
        vectors: list[np.ndarray] = []
        for template_id, owner, sha, blob in self._conn.execute(sql + " ORDER BY id", params):
            aad = associated_data("templates", owner, _template_purpose(model_pack, sha))
            plain = self._keys.decrypt(bytes(blob), aad, f"template {template_id}")
            vectors.append(np.frombuffer(plain, dtype="<f4"))
            ids.append(owner)
        return ids, _stack(vectors, dim, model_pack)

    # -- erasure -----------------------------------------------------------------

    def erase_customer(self, customer_id: str, actor: str, reason: str = "customer request",
                       scrub: bool = True) -> Erasure:
        """Remove the customer's templates and photos in one transaction and record it.

        The consent is marked withdrawn, so enrolling again needs a new consent.  The customer
        row (CRM data, no biometrics) stays.  ``scrub`` checkpoints the WAL and vacuums.
        """
        with self.transaction() as c:
            if self.get_customer(customer_id) is None:
                raise StoreError(f"unknown customer id {customer_id!r}")
            now = iso(utc_now())
            where = "WHERE customer_id = ?"
            n_templates = c.execute(f"DELETE FROM templates {where}", (customer_id,)).rowcount
            n_photos = c.execute(f"DELETE FROM photos {where}", (customer_id,)).rowcount
            n_consents = c.execute(
                f"UPDATE consents SET withdrawn_at = ? {where} AND withdrawn_at IS NULL",
                (now, customer_id),
            ).rowcount
            c.execute(
                "INSERT INTO erasures (customer_id, erased_at, templates_removed, photos_removed, "
                "actor, reason) VALUES (?, ?, ?, ?, ?, ?)",
                (customer_id, now, n_templates, n_photos, actor, reason),
            )
            counts = {"templates_removed": n_templates, "photos_removed": n_photos,
                      "consents_withdrawn": n_consents, "reason": reason}
            self.audit(actor, "customer_erased", customer_id, counts)
            self._bump_gallery_generation()
        scrubbed = self.scrub() if scrub else False
        log.info("erased customer %s: %d templates, %d photos", customer_id, n_templates, n_photos)
        return Erasure(customer_id, now, n_templates, n_photos, n_consents, actor, scrubbed)

    def scrub(self) -> bool:
        """Push deleted pages out of the WAL and the file; False when a reader kept the WAL."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._conn.execute("VACUUM")
        busy = self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0]
        if busy:
            log.warning("store %s: a reader holds the WAL; old pages remain until the next "
                        "checkpoint", self.path)
        return not busy

    def erasures_since(self, erasure_id: int, limit: int = 100) -> list[tuple[int, str, str]]:
        """(id, customer id, erased at) of the erasures recorded after ``erasure_id``, oldest first."""
        rows = self._conn.execute(
            "SELECT id, customer_id, erased_at FROM erasures WHERE id > ? ORDER BY id LIMIT ?",
            (erasure_id, limit)).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def last_erasure_id(self) -> int:
        return int(self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM erasures").fetchone()[0])

    def last_erased_at(self, customer_id: str) -> str | None:
        row = self._conn.execute(
            "SELECT MAX(erased_at) FROM erasures WHERE customer_id = ?", (customer_id,)).fetchone()
        return None if row[0] is None else str(row[0])

    def erasures(self, customer_id: str) -> list[dict[str, Any]]:
        cur = self._conn.execute(
            "SELECT * FROM erasures WHERE customer_id = ? ORDER BY id", (customer_id,)
        )
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def _template_purpose(model_pack: str, source_sha256: str) -> str:
    return f"embedding:{model_pack}:{source_sha256}"


def _stack(vectors: list[np.ndarray], dim: int | None, model_pack: str) -> np.ndarray:
    if not vectors:
        return np.zeros((0, dim or 0), dtype=np.float32)
    sizes = {v.size for v in vectors}
    if len(sizes) != 1 or (dim is not None and sizes != {dim}):
        raise StoreError(
            f"templates of pack {model_pack!r} have sizes {sorted(sizes)}"
            + (f", expected {dim}" if dim is not None else "")
        )
    return np.stack(vectors).astype(np.float32, copy=False)


