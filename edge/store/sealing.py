"""Which key seals which rows: the key check, and re-sealing rows under a new key."""

from __future__ import annotations

from edge.core.errors import StoreError
from edge.store.base import StoreBase
from edge.store.biometrics import _template_purpose
from edge.store.crypto import associated_data, blob_key_id_of

_KEY_CHECK_PLAINTEXT = b"branch-edge key check v1"


class Sealing(StoreBase):
    """The key check and re-encryption for ``branch-edge keys rotate``."""

    def _check_key(self) -> None:
        aad = associated_data("meta", "", "key_check")
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
        if row is None:
            with self.transaction():
                blob = self._keys.encrypt(_KEY_CHECK_PLAINTEXT, aad)
                self._conn.execute("INSERT INTO meta VALUES ('key_check', ?)", (blob,))
            return
        if self._keys.decrypt(bytes(row[0]), aad, f"database {self.path}") != _KEY_CHECK_PLAINTEXT:
            raise StoreError(f"database {self.path}: key check failed")

    # -- key rotation (``branch-edge keys rotate``) -------------------------------------

    def rows_under_other_keys(self) -> dict[str, int]:
        """Per table, how many rows are sealed (or hashed) with a key other than the primary."""
        return {table: int(self._conn.execute(
            f"SELECT COUNT(*) FROM {table} WHERE key_id != ?", (self.key_id,)).fetchone()[0])
            for table in ("templates", "photos", "holder_ids")}

    def rows_sealed_outside(self, key_ids: tuple[str, ...]) -> int:
        """Templates and photos sealed by none of ``key_ids`` (they would not decrypt)."""
        marks = ",".join("?" * len(key_ids))
        return sum(int(self._conn.execute(
            f"SELECT COUNT(*) FROM {table} WHERE key_id NOT IN ({marks})", key_ids).fetchone()[0])
            for table in _SEALED_ROWS)

    def reencrypt_batch(self, table: str, limit: int) -> int:
        """Re-seal up to ``limit`` rows of ``table`` under the primary key in one short
        transaction; the rows not yet done still decrypt with the older keys in the ring."""
        if table not in _SEALED_ROWS:
            raise StoreError(f"{table} holds no encrypted rows")
        with self.transaction() as c:
            rows = c.execute(_SEALED_ROWS[table], (self.key_id, limit)).fetchall()
            for row_id, customer_id, pack, sha, blob in rows:
                aad = _sealed_aad(table, customer_id, pack, sha)
                plain = self._keys.decrypt(bytes(blob), aad, f"{table} row {row_id}")
                c.execute(
                    f"UPDATE {table} SET {_BLOB_COLUMN[table]} = ?, key_id = ? WHERE id = ?",
                    (self._keys.encrypt(plain, aad), self.key_id, row_id),
                )
        return len(rows)

    def key_check_id(self) -> str:
        """The id of the key that sealed the key-check blob (the key the store expects)."""
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'key_check'").fetchone()
        return blob_key_id_of(bytes(row[0]), f"database {self.path}")

    def reseal_key_check(self) -> None:
        """Seal the key check with the primary key: from now on the store expects that key."""
        aad = associated_data("meta", "", "key_check")
        with self.transaction() as c:
            blob = self._keys.encrypt(_KEY_CHECK_PLAINTEXT, aad)
            c.execute("UPDATE meta SET value = ? WHERE key = 'key_check'", (blob,))

_SEALED_ROWS = {
    "templates": "SELECT id, customer_id, model_pack, source_sha256, embedding FROM templates "
                 "WHERE key_id != ? ORDER BY id LIMIT ?",
    "photos": "SELECT id, customer_id, '', sha256, ciphertext FROM photos "
              "WHERE key_id != ? ORDER BY id LIMIT ?",
}
_BLOB_COLUMN = {"templates": "embedding", "photos": "ciphertext"}


def _sealed_aad(table: str, customer_id: str, model_pack: str, sha: str) -> bytes:
    if table == "templates":
        return associated_data("templates", customer_id, _template_purpose(model_pack, sha))
    return associated_data("photos", customer_id, f"photo:{sha}")


