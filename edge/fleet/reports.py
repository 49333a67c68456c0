"""What the branch tells head office's data platform, from its CRM tables: per day, how many
enrolled customers arrived and which recommendations were shown (counts by RM, product and
segment), and each purchase linked to a visit (marketing outcome linking).  No customer id,
no name, no face: see docs/hq.md, "What the data platform holds".

Event ids are derived from what they describe (a day's counts as they stand, a purchase's
transaction), so a message sent twice is the same event to the collector.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from datetime import date

from edge.crm.records import CrmStore
from mqtt.messages import ID_PATTERN, ArrivalCounts, PurchaseLink, ShownCount

NAMESPACE = uuid.UUID("0b7f1e2a-6c3d-4f5e-9a1b-2c3d4e5f6a7b")
CURSOR_KEY = "hq_purchase_links_through"  # store meta: the last crm_attributions rowid sent
MAX_SHOWN = 1000


def _ident(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(ID_PATTERN, value) is not None


def daily_counts(crm: CrmStore, branch_id: str, day: date) -> ArrivalCounts:
    on = day.isoformat()
    (arrivals,) = crm.execute("SELECT COUNT(*) FROM crm_visits WHERE seen_on = ?", (on,)).fetchone()
    rows = crm.execute(
        "SELECT rm_id, product_id, segment, COUNT(*) FROM crm_shown WHERE shown_on = ? "
        "GROUP BY rm_id, product_id, segment ORDER BY rm_id, product_id, segment", (on,)).fetchall()
    shown = [ShownCount(rm_id=rm, product_id=product, segment=str(segment)[:64], shown=int(n))
             for rm, product, segment, n in rows if _ident(rm) and _ident(product)][:MAX_SHOWN]
    digest = hashlib.sha256(repr((int(arrivals), [(s.rm_id, s.product_id, s.segment, s.shown)
                                                  for s in shown])).encode()).hexdigest()
    event = uuid.uuid5(NAMESPACE, f"{branch_id}/counts/{day.isoformat()}/{digest}")
    return ArrivalCounts(id=str(event), branch_id=branch_id, day=day, arrivals=int(arrivals), shown=shown)


def purchase_links(crm: CrmStore, branch_id: str, after_rowid: int,
                   limit: int = 500) -> list[tuple[int, PurchaseLink | None]]:
    """(rowid, link) of the attributions recorded after ``after_rowid``, oldest first; the link
    is None for a row no message can carry (an id outside the contract's pattern)."""
    rows = crm.execute(
        "SELECT rowid, transaction_id, visit_id, rm_id, product_id, segment, shown_on, purchased_on, amount "
        "FROM crm_attributions WHERE rowid > ? ORDER BY rowid LIMIT ?", (after_rowid, limit)).fetchall()
    out: list[tuple[int, PurchaseLink | None]] = []
    for rowid, txn, visit, rm, product, segment, shown_on, purchased_on, amount in rows:
        if not (_ident(visit) and _ident(rm) and _ident(product)):
            out.append((int(rowid), None))
            continue
        event = uuid.uuid5(NAMESPACE, f"{branch_id}/purchase/{txn}")
        out.append((int(rowid), PurchaseLink(
            id=str(event), branch_id=branch_id, visit_id=visit, rm_id=rm, product_id=product,
            segment=str(segment)[:64], shown_on=date.fromisoformat(shown_on),
            purchased_on=date.fromisoformat(purchased_on), amount=float(amount))))
    return out
