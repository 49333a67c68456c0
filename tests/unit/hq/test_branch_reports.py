"""What a branch reports to head office's data platform, from its CRM tables: counts and
purchase links without any customer id or name, with event ids that say the same thing twice."""

from __future__ import annotations

from datetime import date

import pytest

from edge.crm.records import CrmStore
from edge.fleet.reports import daily_counts, purchase_links
from mqtt.codec import encode

DAY = date(2026, 11, 30)


@pytest.fixture
def crm(tmp_path):
    store = CrmStore.open(tmp_path / "crm.db")
    with store.transaction() as c:
        c.executemany("INSERT INTO crm_visits VALUES (?, ?, ?)",
                      [(f"v-{n}", f"C-SECRET-{n}", DAY.isoformat()) for n in range(3)])
        c.executemany("INSERT INTO crm_shown VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
            ("v-0", "td-3y", "C-SECRET-0", "RM-01", "affluent", DAY.isoformat(), 1, "maturing deposit"),
            ("v-1", "td-3y", "C-SECRET-1", "RM-01", "affluent", DAY.isoformat(), 1, "maturing deposit"),
            ("v-2", "fund-a", "C-SECRET-2", "RM-02", "mass", DAY.isoformat(), 2, "risk level fits")])
        c.executemany("INSERT INTO crm_attributions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            ("t-1", "v-0", "C-SECRET-0", "td-3y", "RM-01", "affluent", DAY.isoformat(), "2026-12-02",
             50000.0),
            ("t-2", "v-2", "C-SECRET-2", "fund-a", "RM 02 bad", "mass", DAY.isoformat(), "2026-12-03", 1.0)])
    yield store
    store.close()


def test_daily_counts_are_counts_only(crm):
    counts = daily_counts(crm, "b1", DAY)
    assert counts.arrivals == 3
    assert [(s.rm_id, s.product_id, s.segment, s.shown) for s in counts.shown] == [
        ("RM-01", "td-3y", "affluent", 2), ("RM-02", "fund-a", "mass", 1)]
    assert b"SECRET" not in encode(counts)
    assert daily_counts(crm, "b1", DAY).id == counts.id  # the same day as it stands: the same event
    with crm.transaction() as c:
        c.execute("INSERT INTO crm_visits VALUES ('v-9', 'C-9', ?)", (DAY.isoformat(),))
    assert daily_counts(crm, "b1", DAY).id != counts.id


def test_purchase_links_carry_the_visit_not_the_customer(crm):
    links = purchase_links(crm, "b1", 0)
    (first_row, first), (second_row, second) = links
    assert first is not None and (first.visit_id, first.rm_id, first.product_id, first.amount) == (
        "v-0", "RM-01", "td-3y", 50000.0)
    assert b"SECRET" not in encode(first)
    assert second is None  # an RM id no message may carry: skipped, counted by the agent
    assert purchase_links(crm, "b1", first_row)[0][0] == second_row
    assert purchase_links(crm, "b1", second_row) == []
    assert purchase_links(crm, "b1", 0)[0][1].id == first.id  # re-sent: the same event id
