"""Outcome linking: what the edge recommended at each visit, what the RM
reported (``Outcome`` messages from the PAD), and which later purchases of a
recommended product are attributed to that visit and RM.

A purchase is linked to the latest visit at which the same product was
recommended to the same customer, when it falls on the visit day or within
``[crm] attribution_days`` after it.  The RM credited is the one whose
outcome message came for the visit, else the RM assigned at the time.

An outcome is taken only for a visit the edge announced, for that visit's
customer (``crm_visits``, written when the arrival is built); the receiver has
already checked that its RM is the one bound to the tablet that sent it
(``mqtt.roster``), so a tablet cannot report for another RM's customers or
take another RM's credit.
"""

from __future__ import annotations

import csv
import json
import logging
import sqlite3
import threading
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from edge.core.safe_output import csv_row
from edge.crm.recommend import ASSESSMENT_PRODUCT, Recommended
from edge.crm.records import CrmStore
from mqtt.messages import Outcome
from mqtt.roster import Rejected

log = logging.getLogger(__name__)

DIMENSIONS = ("rm", "product", "segment")
_COLUMN = {"rm": "s.rm_id", "product": "s.product_id", "segment": "s.segment"}


def record_shown(crm: CrmStore, visit_id: str, customer_id: str, recs: list[Recommended], *,
                 rm_id: str, segment: str, shown_on: date) -> int:
    """Remember what an arrival recommended (once per visit and product), and the visit."""
    rows = [(visit_id, r.product_id, customer_id, rm_id, segment, shown_on.isoformat(), rank,
             r.why) for rank, r in enumerate(recs, start=1) if r.product_id != ASSESSMENT_PRODUCT]
    record_visit(crm, visit_id, customer_id, shown_on)
    with crm.transaction() as c:
        before = c.total_changes
        c.executemany("INSERT OR IGNORE INTO crm_shown VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
        return c.total_changes - before


def record_visit(crm: CrmStore, visit_id: str, customer_id: str, seen_on: date) -> None:
    """Remember that ``visit_id`` is ``customer_id``'s visit (once; the first sighting wins)."""
    with crm.transaction() as c:
        c.execute("INSERT OR IGNORE INTO crm_visits VALUES (?, ?, ?)",
                  (visit_id, customer_id, seen_on.isoformat()))


def check_outcome(c: Any, outcome: Outcome) -> None:
    """Raise :class:`~mqtt.roster.Rejected` unless ``outcome`` is for a visit the edge announced
    and that visit's customer."""
    row = c.execute("SELECT customer_id FROM crm_visits WHERE visit_id = ?", (outcome.visit_id,)).fetchone()
    if row is None:
        raise Rejected("unknown_visit", f"outcome {outcome.id}: no such visit")
    if row[0] != outcome.customer_id:
        raise Rejected("not_the_visits_customer", f"outcome {outcome.id}: another customer's visit")


def record_outcome(crm: CrmStore, outcome: Outcome) -> bool:
    """Store an RM's outcome against its visit; a redelivered message is ignored.
    The RM who reported becomes the visit's RM for attribution.

    Raises:
        Rejected: not a visit the edge announced, or not that visit's customer.
    """
    row = (outcome.id, outcome.visit_id, outcome.arrival_id, outcome.customer_id, outcome.rm_id,
           outcome.result, json.dumps(outcome.product_ids),
           outcome.follow_up_on.isoformat() if outcome.follow_up_on else None, outcome.note,
           outcome.sent_at.isoformat())
    with crm.transaction() as c:
        check_outcome(c, outcome)
        new = c.execute("INSERT OR IGNORE INTO crm_outcomes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        row).rowcount == 1
        if new:
            c.execute("UPDATE crm_shown SET rm_id = ? WHERE visit_id = ?", (outcome.rm_id, outcome.visit_id))
            c.execute("UPDATE crm_attributions SET rm_id = ? WHERE visit_id = ?",
                      (outcome.rm_id, outcome.visit_id))
    return new


class OutcomeSink:
    """A ``mqtt.receiver`` handler: stores Outcome messages, ignores the rest.

    The receiver has already marked the message as seen and the broker will not send
    it again, so an outcome the store cannot take now (locked longer than its busy
    timeout, disk full) is kept and retried every ``retry_s`` until it is stored.

    An outcome that is not for its visit's customer raises :class:`~mqtt.roster.Rejected`
    at once (the receiver counts it); one found out only when a parked outcome is
    stored later is dropped, logged and counted in ``rejected``.
    """

    def __init__(self, crm: CrmStore, retry_s: float = 2.0) -> None:
        self.crm = crm
        self.retry_s = retry_s
        self.parked: list[Outcome] = []
        self.rejected = 0
        self._lock = threading.Lock()  # guards parked and the two flags below
        self._timer: threading.Timer | None = None
        self._flushing = False

    def __call__(self, delivery: Any) -> None:
        if isinstance(delivery.message, Outcome):
            self._precheck(delivery.message)
            with self._lock:
                self.parked.append(delivery.message)
                busy = self._flushing or self._timer is not None
            if not busy:  # else the flush under way (or the retry timer) stores it, in order
                self.flush()

    def _precheck(self, outcome: Outcome) -> None:
        """The visit check, read-only, on the receiver's thread; a store that cannot answer now
        leaves it to :func:`record_outcome`, which checks again in its transaction."""
        try:
            with self.crm.lock:
                check_outcome(self.crm, outcome)
        except sqlite3.Error as err:
            log.warning("outcome %s: visit not checked yet (%s)", outcome.id, err)

    def flush(self) -> None:
        """Store every parked outcome, oldest first; on a storage error, retry later."""
        with self._lock:
            if self._flushing:
                return
            self._flushing, self._timer = True, None
        while True:
            with self._lock:
                if not self.parked:
                    self._flushing = False
                    return
                head = self.parked[0]
            try:
                record_outcome(self.crm, head)
            except sqlite3.OperationalError as err:
                self._retry_later(head, err)
                return
            except Rejected as err:
                self.rejected += 1
                log.warning("outcome %s dropped: %s", head.id, err)
            with self._lock:
                self.parked.pop(0)

    def _retry_later(self, head: Outcome, err: Exception) -> None:
        with self._lock:
            log.error("outcome %s not stored yet (%s); %d waiting, retrying in %.0f s",
                      head.id, err, len(self.parked), self.retry_s)
            self._timer = threading.Timer(self.retry_s, self.flush)
            self._timer.daemon = True
            self._flushing = False
            self._timer.start()


def link_sales(crm: CrmStore, window_days: int) -> int:
    """Attribute purchases of recommended products to visits; returns new links."""
    sql = """
        SELECT t.transaction_id, t.customer_id, t.product_id, t.on_date, t.amount FROM crm_transactions t
         WHERE t.kind = 'buy'
           AND NOT EXISTS (SELECT 1 FROM crm_attributions a WHERE a.transaction_id = t.transaction_id)
           AND EXISTS (SELECT 1 FROM crm_shown s
                        WHERE s.customer_id = t.customer_id AND s.product_id = t.product_id)"""
    linked = 0
    with crm.transaction() as c:
        for txn, customer, product, on, amount in c.execute(sql).fetchall():
            visit = _latest_visit(c, customer, product, date.fromisoformat(on), window_days)
            if visit is not None:
                visit_id, rm, segment, shown_on = visit
                c.execute("INSERT INTO crm_attributions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                          (txn, visit_id, customer, product, rm, segment, shown_on, on, amount))
                linked += 1
    return linked


def _latest_visit(c: Any, customer: str, product: str, on: date, window_days: int) -> tuple[str, ...] | None:
    row = c.execute(
        "SELECT visit_id, rm_id, segment, shown_on FROM crm_shown WHERE customer_id = ? "
        "AND product_id = ? AND shown_on <= ? AND shown_on >= ? ORDER BY shown_on DESC, visit_id LIMIT 1",
        (customer, product, on.isoformat(), (on - timedelta(days=window_days)).isoformat()),
    ).fetchone()
    return tuple(row) if row else None


def conversion(crm: CrmStore, start: date, end: date) -> list[dict[str, Any]]:
    """Per RM, product and segment: recommendations shown in [start, end], how many
    converted into an attributed purchase, the amount, and the RMs' reported sales."""
    rows = []
    for dimension in DIMENSIONS:
        column = _COLUMN[dimension]
        sql = f"""
            SELECT {column}, COUNT(*), COUNT(a.visit_id), COALESCE(SUM(a.amount), 0),
                   SUM(EXISTS (SELECT 1 FROM crm_outcomes o, json_each(o.product_ids) j
                                WHERE o.visit_id = s.visit_id AND o.result = 'product_sold'
                                  AND j.value = s.product_id))
              FROM crm_shown s
              LEFT JOIN (SELECT visit_id, product_id, SUM(amount) AS amount FROM crm_attributions
                          GROUP BY visit_id, product_id) a
                     ON a.visit_id = s.visit_id AND a.product_id = s.product_id
             WHERE s.shown_on BETWEEN ? AND ?
             GROUP BY {column} ORDER BY {column}"""
        for key, shown, converted, amount, reported in crm.execute(sql, (start.isoformat(), end.isoformat())):
            rows.append({"dimension": dimension, "key": key, "recommended": shown, "converted": converted,
                         "conversion_rate": round(converted / shown, 4) if shown else 0.0,
                         "sales_amount": round(float(amount), 2), "reported_sold": int(reported or 0)})
    return rows


def write_csv(rows: list[dict[str, Any]], path: Path) -> None:
    columns = ["dimension", "key", "recommended", "converted", "conversion_rate", "sales_amount",
               "reported_sold"]
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.DictWriter(out, fieldnames=columns)
        writer.writeheader()
        # Keys are segments, RM and product ids from imports: no formula or bidi reaches a spreadsheet.
        writer.writerows(csv_row(row) for row in rows)


def plot_png(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    import matplotlib  # noqa: PLC0415 - only the report draws

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, len(DIMENSIONS), figsize=(5 * len(DIMENSIONS), 4.5), squeeze=False)
    for ax, dimension in zip(axes[0], DIMENSIONS, strict=True):
        part = [r for r in rows if r["dimension"] == dimension]
        labels = [str(r["key"]) for r in part]
        ax.barh(labels, [100 * r["conversion_rate"] for r in part], color="#3a7bd5")
        for y, r in enumerate(part):
            ax.text(1, y, f"{r['converted']}/{r['recommended']}", va="center")
        ax.set_xlim(0, 100)
        ax.set_title(f"conversion by {dimension}")
        ax.set_xlabel("% of recommendations converted")
        ax.invert_yaxis()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
