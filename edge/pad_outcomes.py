"""Minimal edge-side recorder of RMs' outcomes (PAD -> ``outcomes`` topic -> CRM store).

Writes each :class:`mqtt.messages.Outcome` into the ``crm_outcomes`` table of
:class:`edge.crm.CrmStore`, keyed by the message id, so a redelivered outcome
is stored once.  Meant to be replaced by the outcome-linking code's own ingest
when it lands; the table is that code's.

The store's SQLite connection belongs to the thread that opened it: feed the
recorder from the MQTT receiver's queue (``drain``), not from paho's thread.
"""

from __future__ import annotations

import json
import queue

from edge.crm import CrmStore
from mqtt.messages import Outcome
from mqtt.receiver import Delivery

_INSERT = (
    "INSERT OR IGNORE INTO crm_outcomes (message_id, visit_id, arrival_id, customer_id, rm_id, result, "
    "product_ids, follow_up_on, note, sent_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)


class OutcomeRecorder:
    def __init__(self, store: CrmStore) -> None:
        self.store = store

    def record(self, outcome: Outcome) -> bool:
        """Store ``outcome``; ``False`` when this message id was stored before."""
        follow = outcome.follow_up_on.isoformat() if outcome.follow_up_on else None
        with self.store.transaction() as conn:
            cursor = conn.execute(_INSERT, (
                outcome.id, outcome.visit_id, outcome.arrival_id, outcome.customer_id, outcome.rm_id,
                outcome.result, json.dumps(outcome.product_ids), follow, outcome.note,
                outcome.sent_at.isoformat(),
            ))
        return cursor.rowcount == 1

    def drain(self, deliveries: queue.Queue[Delivery], timeout: float = 0.0) -> int:
        """Record the outcomes waiting in ``deliveries`` (others are skipped); how many were new."""
        stored = 0
        while True:
            try:
                delivery = deliveries.get(timeout=timeout)
            except queue.Empty:
                return stored
            if isinstance(delivery.message, Outcome):
                stored += self.record(delivery.message)
