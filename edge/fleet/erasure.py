"""Applying head office's erasure at the branch: what ``branch-edge erase`` does (store,
gallery, outbox), once per erasure id, with the acknowledgement to send back.

The store transaction that erases the customer also records the erasure id and its result,
so a re-sent erasure (head office re-sends until it hears back) is answered with the same
acknowledgement and never applied twice.  The running daemon sees the erasure in the store:
it reloads its gallery, forgets the visit and retracts what PADs show.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Literal

from edge.commands.erase import forget_waiting_arrivals
from edge.store.base import iso, parse_time, utc_now
from edge.store.database import Store
from mqtt.messages import Erasure, ErasureAck

log = logging.getLogger(__name__)

ACTOR = "hq-erasure"
APPLIED_PREFIX = "hq_erasure:"  # + erasure id -> the acknowledgement's fields (JSON)
LAST_KEY = "hq_last_erasure"  # the last erasure applied: {"erasure_id", "applied_at"}


Result = Literal["erased", "not_enrolled"]


def apply_erasure(store: Store, erasure: Erasure, outboxes: Callable[[], list[Path]] = list) -> ErasureAck:
    """Erase ``erasure.customer_id`` here (once per erasure id); the acknowledgement to send.

    A failure (the store cannot be written) is acknowledged as ``failed`` with the error, and
    head office re-sends the erasure later.
    """
    recorded = store.meta_value(APPLIED_PREFIX + erasure.erasure_id)
    if recorded is not None:
        data = json.loads(recorded)
        return _ack(erasure, data["result"], parse_time(data["applied_at"]),
                    templates=data["templates_removed"], photos=data["photos_removed"], arrivals=0)
    cid = erasure.customer_id
    result: Result = "not_enrolled"
    templates = photos = 0
    now = utc_now()
    try:
        with store.transaction():
            if store.get_customer(cid) is not None:
                done = store.erase_customer(cid, ACTOR, f"head office: {erasure.reason}"[:200], scrub=False)
                result, templates, photos = "erased", done.templates_removed, done.photos_removed
            record = {"result": result, "applied_at": iso(now), "templates_removed": templates,
                      "photos_removed": photos}
            store.set_meta_value(APPLIED_PREFIX + erasure.erasure_id, json.dumps(record))
            last = {"erasure_id": erasure.erasure_id, "applied_at": iso(now)}
            store.set_meta_value(LAST_KEY, json.dumps(last))
    except Exception as err:  # one erasure's failure is reported back, never kills the agent
        log.error("erasure %s not applied: %s", erasure.erasure_id, type(err).__name__)
        return ErasureAck(branch_id=erasure.branch_id, erasure_id=erasure.erasure_id, customer_id=cid,
                          applied_at=utc_now(), result="failed", error=f"{type(err).__name__}: {err}"[:300])
    arrivals = 0
    if result == "erased":
        store.scrub()
        arrivals = forget_waiting_arrivals(outboxes(), cid)
    log.info("head-office erasure applied", extra={"erasure_id": erasure.erasure_id, "result": result})
    return _ack(erasure, result, now, templates=templates, photos=photos, arrivals=arrivals)


def last_erasure(store: Store) -> tuple[str, datetime] | None:
    value = store.meta_value(LAST_KEY)
    if value is None:
        return None
    data = json.loads(value)
    return str(data["erasure_id"]), parse_time(str(data["applied_at"]))


def _ack(erasure: Erasure, result: Result, applied_at: datetime, *, templates: int, photos: int,
         arrivals: int) -> ErasureAck:
    return ErasureAck(branch_id=erasure.branch_id, erasure_id=erasure.erasure_id,
                      customer_id=erasure.customer_id, applied_at=applied_at, result=result,
                      templates_removed=int(templates), photos_removed=int(photos),
                      arrivals_removed=int(arrivals))
