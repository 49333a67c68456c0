"""Key rotation: re-seal every encrypted row of the store under a new key, online.

The store is opened with ``KeyRing(primary=new, older=(old, ...))``.  Rows are
re-encrypted a small batch per transaction (``Store.reencrypt_batch``), so a
daemon reading the store concurrently is never blocked for long, and its ring
(``store.key_file`` = new, ``store.old_key_files`` = [old]) decrypts rows of
either key while the rotation runs.  Only when every row is done is the key
check resealed: from then on the store expects the new key.  An interrupted
rotation leaves a consistent store (each row under one key or the other); a
re-run skips the rows already done and finishes.

Holder-ID hashes are HMACs under a key derived from the store key; they cannot
be recomputed without the ID numbers, so they are counted, not rotated.

Audit entries are not rewritten either: each names the key whose derived key
sealed its MAC (``edge.store.audit``).  Entries written after the rotation are
sealed with the new key, and since each entry's hash covers every entry before
it, their MACs vouch for the old entries too: ``audit verify`` stays green with
the new key alone, and heads recorded before the rotation still match.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from edge.store.database import Store

SEALED_TABLES = ("templates", "photos")
DEFAULT_BATCH = 50


@dataclass(frozen=True)
class RotationReport:
    new_key_id: str
    previous_key_id: str  # the key the store expected before (from the key check)
    templates_reencrypted: int
    photos_reencrypted: int
    batches: int
    seconds: float
    holder_ids_need_old_key: int  # HMACs that only the old key can check (see module doc)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def rotate_store(store: Store, actor: str, batch_size: int = DEFAULT_BATCH,
                 on_batch: Callable[[str, int], None] | None = None,
                 pause_s: float = 0.0) -> RotationReport:
    """Re-encrypt every template and photo under ``store``'s primary key; reseal the key check.

    ``on_batch(table, rows)`` is called after each committed batch; ``pause_s`` sleeps
    between batches to leave the disk to a busy daemon.
    """
    started = time.monotonic()
    previous = store.key_check_id()
    pending = store.rows_under_other_keys()
    store.audit(actor, "key_rotation_started", "store",
                {"new_key_id": store.key_id, "previous_key_id": previous,
                 "templates_pending": pending["templates"], "photos_pending": pending["photos"]})
    done = dict.fromkeys(SEALED_TABLES, 0)
    batches = 0
    for table in SEALED_TABLES:
        while rows := store.reencrypt_batch(table, batch_size):
            done[table] += rows
            batches += 1
            if on_batch is not None:
                on_batch(table, rows)
            if pause_s:
                time.sleep(pause_s)
    store.reseal_key_check()
    report = RotationReport(
        store.key_id, previous, done["templates"], done["photos"], batches,
        round(time.monotonic() - started, 3), store.rows_under_other_keys()["holder_ids"])
    store.audit(actor, "key_rotated", "store", report.to_dict())
    return report
