"""Offline evaluation of the recommender on held-out later purchases.

The history is cut at ``cutoff`` (default: ``horizon`` days before the last
purchase).  Segments and propensities are learnt from purchases before the
cut; for every customer who bought something in the ``horizon`` days after it,
the top-3 recommendations made on the cut day score a hit when they include a
product the customer then bought.  The baseline recommends the three most
bought products of the year before the cut that are suitable for the customer
(the same suitability and targeting rules apply to both).  Coverage is the
share of products on sale at the cut that were recommended to anyone.
"""

from __future__ import annotations

from collections import Counter
from datetime import date, timedelta
from typing import Any

from edge.config import CrmConfig
from edge.crm import CrmStore
from edge.errors import BranchEdgeError
from edge.recommend import Population, Recommender, eligible_products, holdings_as_of

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
    popular = Counter(t.product_id for ts in pop.buys.values() for t in ts if (cut - t.on).days <= 365)
    model_lists, baseline_lists = {}, {}
    for cid in sorted(later):
        if cid not in pop.customers:
            continue
        held = holdings_as_of(pop, cid, cut)
        model_lists[cid] = [r.product_id for r in rec.recommend(cid, cut, held, TOP_K)]
        options = eligible_products(rec, cid, cut, held)
        options.sort(key=lambda p: (-popular[p.product_id], p.product_id))
        baseline_lists[cid] = [p.product_id for p in options[:TOP_K]]
    on_sale = [p for p in pop.products.values() if p.terms.sale_from is None or p.terms.sale_from <= cut]
    return {
        "cutoff": cut.isoformat(), "horizon_days": horizon_days, "k": TOP_K,
        "segments": len(rec.model.names), "customers_evaluated": len(model_lists),
        "products_on_sale": len(on_sale),
        "recommender": _scores(model_lists, later, len(on_sale)),
        "most_popular_baseline": _scores(baseline_lists, later, len(on_sale)),
    }


def _scores(lists: dict[str, list[str]], later: dict[str, set[str]], catalogue: int) -> dict[str, Any]:
    hits = sum(1 for cid, items in lists.items() if set(items) & later[cid])
    shown = {p for items in lists.values() for p in items}
    assessment_only = sum(1 for items in lists.values() if items == ["RISK-ASSESSMENT"])
    return {
        "hit_rate_at_3": round(hits / len(lists), 4) if lists else 0.0,
        "hits": hits,
        "coverage": round(len(shown - {"RISK-ASSESSMENT"}) / catalogue, 4) if catalogue else 0.0,
        "assessment_only": assessment_only,
    }
