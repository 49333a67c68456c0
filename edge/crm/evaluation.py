"""Offline evaluation of the recommender on held-out later purchases (a time split).

The history is cut at ``cutoff`` (default: ``horizon`` days before the last
purchase).  Everything the recommender learns comes from before the cut:
purchases before it, holdings opened before it.  For every customer who
bought something in the ``horizon`` days from the cut, the lists made on the
cut day are scored against what they bought:

* ``hit_rate_at_3``: any of the top 3 was bought;
* ``new_product_hit_rate_at_3``: any of the top 3 was a *new* product for the
  customer (one they neither held at the cut nor had bought before it), over
  the customers who bought a new product;
* ``map_at_7``: mean average precision of the top 7 over those new products
  (the metric of the public Santander product-recommendation benchmark,
  which scores the products a customer adds), and ``map_at_7_all_purchases``
  against everything each evaluated customer bought, renewals included;
* ``coverage``: the share of products on sale at the cut that were in
  anyone's top 3.

In the same run: an ablation without life-event triggers, and two baselines
under the same suitability and targeting rules: ``most_popular_baseline``, the
most bought products of the year before the cut, held or not, and
``most_popular_unheld_baseline``, the most bought products before the cut
that the customer does not hold yet (``tools/popular_unheld.py`` of the bank
extract).
"""

from __future__ import annotations

import copy
from collections import Counter
from datetime import date, timedelta
from typing import Any

from edge.config import CrmConfig
from edge.core.errors import BranchEdgeError
from edge.core.ranking import average_precision, hit_at
from edge.crm.history import held_before
from edge.crm.recommend import ASSESSMENT_PRODUCT, Population, Recommender, eligible_products, holdings_as_of
from edge.crm.records import CrmStore

TOP_K = 3
MAP_K = 7
LISTS = ("recommender", "recommender_without_triggers", "most_popular_baseline",
         "most_popular_unheld_baseline")


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
    last_year = Counter(t.product_id for ts in pop.buys.values() for t in ts if (cut - t.on).days <= 365)
    ever = Counter(t.product_id for ts in pop.buys.values() for t in ts)
    lists: dict[str, dict[str, list[str]]] = {name: {} for name in LISTS}
    new: dict[str, set[str]] = {}
    for cid in sorted(c for c in later if c in pop.customers):
        held = holdings_as_of(pop, cid, cut)
        held_ids = {s.product_id for s in held_before(pop.spells(cid), cut)}
        bought = {t.product_id for t in pop.buys.get(cid, [])}
        new[cid] = later[cid] - held_ids - bought
        lists["recommender"][cid] = [r.product_id for r in rec.recommend(cid, cut, held, MAP_K)]
        lists["recommender_without_triggers"][cid] = [
            r.product_id for r in peers_only.recommend(cid, cut, held, MAP_K)]
        options = eligible_products(rec, cid, cut, held)
        if not options:  # the assessment has expired: the baselines may offer nothing either
            for name in ("most_popular_baseline", "most_popular_unheld_baseline"):
                lists[name][cid] = [ASSESSMENT_PRODUCT]
            continue
        by_year = sorted(options, key=lambda p: (-last_year[p.product_id], p.product_id))
        lists["most_popular_baseline"][cid] = [p.product_id for p in by_year[:MAP_K]]
        unheld = sorted((p for p in options if p.product_id not in held_ids),
                        key=lambda p: (-ever[p.product_id], p.product_id))
        lists["most_popular_unheld_baseline"][cid] = [p.product_id for p in unheld[:MAP_K]]
    on_sale = [p for p in pop.products.values() if p.terms.sale_from is None or p.terms.sale_from <= cut]
    return {
        "cutoff": cut.isoformat(), "horizon_days": horizon_days, "k": TOP_K,
        "segments": len(set(rec.segments.keys)), "customers_evaluated": len(lists["recommender"]),
        "products_on_sale": len(on_sale), "map_k": MAP_K,
        **{name: _scores(ranked, later, new, len(on_sale)) for name, ranked in lists.items()},
    }


def _scores(lists: dict[str, list[str]], later: dict[str, set[str]], new: dict[str, set[str]],
            catalogue: int) -> dict[str, Any]:
    hits = sum(1 for cid, items in lists.items() if hit_at(later[cid], items, TOP_K))
    with_new = [cid for cid in lists if new.get(cid)]
    new_hits = sum(1 for cid in with_new if hit_at(new[cid], lists[cid], TOP_K))
    new_ap = [average_precision(new[cid], lists[cid], MAP_K) for cid in with_new]
    all_ap = [average_precision(later[cid], lists[cid], MAP_K) for cid in lists]
    shown = {p for items in lists.values() for p in items[:TOP_K]}
    return {
        "hit_rate_at_3": round(hits / len(lists), 4) if lists else 0.0,
        "hits": hits,
        # only purchases of products the customer neither held at the cut nor had bought before it
        "new_product_hit_rate_at_3": round(new_hits / len(with_new), 4) if with_new else 0.0,
        "new_product_hits": new_hits,
        "customers_with_new_products": len(with_new),
        "map_at_7": round(sum(new_ap) / len(new_ap), 4) if new_ap else 0.0,
        "map_at_7_all_purchases": round(sum(all_ap) / len(all_ap), 4) if all_ap else 0.0,
        "coverage": round(len(shown - {ASSESSMENT_PRODUCT}) / catalogue, 4) if catalogue else 0.0,
        "assessment_only": sum(1 for items in lists.values() if items == [ASSESSMENT_PRODUCT]),
    }
