"""Offline evaluation of the recommender on held-out later purchases.

The history is cut at ``cutoff`` (default: ``horizon`` days before the last
purchase).  Segments and propensities are learnt from purchases before the
cut; for every customer who bought something in the ``horizon`` days after it,
the top-3 recommendations made on the cut day score a hit when they include a
product the customer then bought (``new_product_hit_rate_at_3`` counts only
products the customer had never bought before the cut).  An ablation without
life-event triggers shows what the segments and propensities alone do.  The baseline recommends the three most
bought products of the year before the cut that are suitable for the customer
(the same suitability and targeting rules apply to both).  Coverage is the
share of products on sale at the cut that were recommended to anyone.
"""

from __future__ import annotations

import copy
from collections import Counter
from datetime import date, timedelta
from typing import Any

from edge.config import CrmConfig
from edge.core.errors import BranchEdgeError
from edge.crm.recommend import Population, Recommender, eligible_products, holdings_as_of
from edge.crm.records import CrmStore

TOP_K = 3


def evaluate_recommender(crm: CrmStore, cfg: CrmConfig, horizon_days: int = 180,
                         cutoff: date | None = None) -> dict[str, Any]:
    everything = [t for t in crm.transactions() if t.kind == "buy"]
    if not everything:
        raise BranchEdgeError("no purchases in the CRM: import transactions first")
    cut = cutoff or max(t.on for t in everything) - timedelta(days=horizon_days)
    later: dict[str, set[str]] = {}
    for t in everything:
        if cut <= t.on < cut + timedelta(days=horizon_days):
            later.setdefault(t.customer_id, set()).add(t.product_id)
    pop = Population.load(crm, as_of=cut)
    rec = Recommender(pop, cfg, as_of=cut)
    peers_only = copy.copy(rec)
    peers_only.use_triggers = False
    popular = Counter(t.product_id for ts in pop.buys.values() for t in ts if (cut - t.on).days <= 365)
    lists: dict[str, dict[str, list[str]]] = {"recommender": {}, "recommender_without_triggers": {},
                                              "most_popular_baseline": {}}
    for cid in sorted(c for c in later if c in pop.customers):
        held = holdings_as_of(pop, cid, cut)
        lists["recommender"][cid] = [r.product_id for r in rec.recommend(cid, cut, held, TOP_K)]
        lists["recommender_without_triggers"][cid] = [
            r.product_id for r in peers_only.recommend(cid, cut, held, TOP_K)]
        options = eligible_products(rec, cid, cut, held)
        options.sort(key=lambda p: (-popular[p.product_id], p.product_id))
        lists["most_popular_baseline"][cid] = [p.product_id for p in options[:TOP_K]]
    on_sale = [p for p in pop.products.values() if p.terms.sale_from is None or p.terms.sale_from <= cut]
    bought_before = {cid: {t.product_id for t in ts} for cid, ts in pop.buys.items()}
    new = {cid: items - bought_before.get(cid, set()) for cid, items in later.items()}
    return {
        "cutoff": cut.isoformat(), "horizon_days": horizon_days, "k": TOP_K,
        "segments": len(rec.model.names), "customers_evaluated": len(lists["recommender"]),
        "products_on_sale": len(on_sale),
        **{name: _scores(ranked, later, new, len(on_sale)) for name, ranked in lists.items()},
    }


def _scores(lists: dict[str, list[str]], later: dict[str, set[str]], new: dict[str, set[str]],
            catalogue: int) -> dict[str, Any]:
    hits = sum(1 for cid, items in lists.items() if set(items) & later[cid])
    with_new = [cid for cid in lists if new.get(cid)]
    new_hits = sum(1 for cid in with_new if set(lists[cid]) & new[cid])
    shown = {p for items in lists.values() for p in items}
    return {
        "hit_rate_at_3": round(hits / len(lists), 4) if lists else 0.0,
        "hits": hits,
        # only purchases of products the customer had never bought before the cut
        "new_product_hit_rate_at_3": round(new_hits / len(with_new), 4) if with_new else 0.0,
        "customers_with_new_products": len(with_new),
        "coverage": round(len(shown - {"RISK-ASSESSMENT"}) / catalogue, 4) if catalogue else 0.0,
        "assessment_only": sum(1 for items in lists.values() if items == ["RISK-ASSESSMENT"]),
    }
