"""Customer segments from what customers hold, named so the name is true of every member.

k-means (scikit-learn) groups customers by their holdings and profile: which
products they hold, the share of their money per category, how much and how
many, their risk level and tier.  A cluster's name is then read from its
centroid, facet by facet, and each facet is one that the centroid can only
have when every member has it:

* style, from the risk level: C1–C2 conservative, C3 balanced, C4–C5 growth;
* the tier;
* what most of the money is in: the category holding strictly the largest
  amount ("no holdings yet" with nothing held, "mixed" on a tie, nothing
  said when no holding has an amount);
* breadth: 1 product, 2–3 products, 4+ products;
* up to two products that every member holds.

To make that hold, each k-means cluster is split by the first four facets
(the mean of values that all lie in one band lies in it too, and a category
that is each member's largest is the mean's largest), and groups that end
up with the same name are one segment.  So "mostly time deposits" is never
shown beside a customer whose money is mostly in a current account, and a
customer who holds nothing is never described by what others hold.  A name
longer than the card allows loses facets from the end (fewer claims, still
true).

Past states (the months the propensity models learn from) are assigned the
same way, which gives every segment its take-up rates: the priors used for
customers with little history of their own.  The tier is part of the name,
so two customers who hold nothing but differ in tier are in different
segments and get different priors.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from sklearn.cluster import KMeans
from sklearn.preprocessing import StandardScaler

from edge.crm.catalogue import CATEGORIES, Product, category_name

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

STYLES = {1: ("稳健型", "conservative"), 2: ("稳健型", "conservative"), 3: ("平衡型", "balanced"),
          4: ("进取型", "growth"), 5: ("进取型", "growth")}
NO_HOLDINGS = ("暂无持仓", "no holdings yet")
MIXED = ("多类持仓", "mixed holdings")
BREADTH = {1: ("1个产品", "1 product"), 2: ("2–3个产品", "2–3 products"), 4: ("4个以上产品", "4+ products")}
TIER_EN = {"大众": "mass market", "贵宾": "VIP", "财富管理": "wealth", "私人银行": "private banking"}
MAX_NAME = 64  # characters: the arrival message's limit for the segment
MAX_FIT_ROWS = 20_000  # k-means is fitted on a sample of this many customers at most


def style(risk: int) -> tuple[str, str]:
    return STYLES.get(risk, STYLES[1])


def breadth_band(count: int) -> int:
    """0, 1, 2 (2–3 products) or 4 (4+)."""
    return 0 if count <= 0 else 1 if count == 1 else 2 if count <= 3 else 4


def main_category(amounts: FloatArray, held_any: bool) -> int:
    """Index into CATEGORIES of the strictly largest positive amount; -1: nothing held,
    -2: two or more categories tie for the most money, -3: held, but no money in any."""
    if not held_any:
        return -1
    top = float(amounts.max()) if len(amounts) else 0.0
    if top <= 0:
        return -3
    if int(np.sum(amounts == top)) > 1:
        return -2
    return int(np.argmax(amounts))


@dataclass(frozen=True)
class Facets:
    style: int  # risk level band: 1 (C1–C2), 3 (C3), 4 (C4–C5)
    tier: str
    main: int  # see main_category
    breadth: int  # see breadth_band

    def words(self) -> list[tuple[str, str]]:
        out = [style(self.style), (self.tier, TIER_EN.get(self.tier, self.tier))]
        if self.main == -1:
            out.append(NO_HOLDINGS)
        elif self.main == -2:
            out.append(MIXED)
        elif self.main >= 0:
            cat = CATEGORIES[self.main]
            out.append((f"{category_name(cat, 'zh-CN')}为主", f"mostly {category_name(cat, 'en')}"))
        if self.breadth:
            out.append(BREADTH[self.breadth])
        return out


@dataclass
class Profiles:
    """What the segments are computed from, one row per customer (or past state)."""

    held: BoolArray  # catalogue products held
    amounts: FloatArray  # money (or count) per category, all holdings with an amount
    products_held: IntArray  # distinct products held, in the catalogue or not
    risk: IntArray
    tier: npt.NDArray[np.str_]

    def facet_codes(self) -> IntArray:
        """(style band, main category, breadth band) per row, by the rules of ``main_category``
        and ``breadth_band``, for all rows at once."""
        style_band = np.where(self.risk <= 2, 1, np.where(self.risk == 3, 3, 4))
        amounts = self.amounts
        top = amounts.max(axis=1) if amounts.shape[1] else np.zeros(len(amounts))
        ties = (amounts == top[:, None]).sum(axis=1) > 1
        main = np.where(self.products_held <= 0, -1,
                        np.where(top <= 0, -3, np.where(ties, -2, amounts.argmax(axis=1))))
        n = self.products_held
        breadth = np.where(n <= 0, 0, np.where(n == 1, 1, np.where(n <= 3, 2, 4)))
        return np.column_stack([style_band, main, breadth]).astype(np.int64)


class Segments:
    """k-means clusters split by facets, one readable name each."""

    def __init__(self, profiles: Profiles, products: list[Product], k: int, seed: int = 0) -> None:
        self.products = products
        self.tiers = sorted(set(np.unique(np.asarray(profiles.tier)).tolist()))
        self.names: dict[str, tuple[str, str]] = {}  # segment key (the English name) -> (zh, en)
        self.group_key: dict[tuple[int, Facets], tuple[str, list[int]]] = {}
        x = self._vectors(profiles)
        n = len(x)
        rng = np.random.default_rng(seed)
        sample = rng.choice(n, size=MAX_FIT_ROWS, replace=False) if n > MAX_FIT_ROWS else np.arange(n)
        self.scaler = StandardScaler().fit(x[sample]) if n else None
        distinct = len(np.unique(x[sample], axis=0)) if n else 0  # k-means needs as many distinct points
        self.kmeans = KMeans(n_clusters=max(1, min(k, distinct)), n_init=3, random_state=seed).fit(
            self.scaler.transform(x[sample])) if self.scaler is not None else None
        self.keys = self._keys(profiles, x, naming=True)
        self.members = Counter(self.keys)

    def _vectors(self, p: Profiles) -> FloatArray:
        amounts = p.amounts.clip(min=0)
        total = amounts.sum(axis=1, keepdims=True)
        shares = np.divide(amounts, total, out=np.zeros_like(amounts), where=total > 0)
        tier = (np.asarray(p.tier)[:, None] == np.asarray(self.tiers)[None, :]).astype(np.float64)
        return np.hstack([p.held.astype(np.float64), shares, np.log10(total + 1.0),
                          np.log1p(p.products_held)[:, None], p.risk[:, None].astype(np.float64), tier])

    def _keys(self, p: Profiles, x: FloatArray, naming: bool) -> list[str]:
        if self.kmeans is None or self.scaler is None or not len(x):
            return []
        cluster = self.kmeans.predict(self.scaler.transform(x))
        tiers = np.asarray(p.tier)
        tier_code = np.unique(tiers, return_inverse=True)[1].ravel()
        codes = np.column_stack([cluster, tier_code, p.facet_codes()])
        groups, inverse = np.unique(codes, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(groups) + 1))
        keys = np.empty(len(x), dtype=object)
        for g, row in enumerate(groups):
            idx = order[bounds[g]: bounds[g + 1]]
            facets = Facets(int(row[2]), str(tiers[idx[0]]), int(row[3]), int(row[4]))
            group = (int(row[0]), facets)
            if naming:
                name, shared = self._name(facets, p, idx)
                self.names.setdefault(name[1], name)
                self.group_key[group] = (name[1], shared)
                keys[idx] = name[1]
                continue
            plain = self._name(facets, p, np.zeros(0, dtype=np.int64))[0]
            self.names.setdefault(plain[1], plain)
            key, products = self.group_key.get(group, ("", []))
            # the fitted group's name only where it is true of the row (it holds those products)
            fits = np.full(len(idx), bool(key))
            if products:
                fits &= p.held[np.ix_(idx, np.asarray(products, dtype=np.intp))].all(axis=1)
            keys[idx] = np.where(fits, key, plain[1])
        return [str(k) for k in keys]

    def _name(self, f: Facets, p: Profiles, members: IntArray) -> tuple[tuple[str, str], list[int]]:
        """The facets, plus up to two products every member holds; and those products (what a
        row must hold to carry the name)."""
        words = f.words()
        shared = [int(j) for j in np.flatnonzero(p.held[members].all(axis=0))][:2] if len(members) else []
        for j in shared:
            product = self.products[j]
            words.append((f"持有{product.name_zh}", f"holds {product.name_en}"))
        while len(words) > 1 and max(len("·".join(w[0] for w in words)),
                                     len(", ".join(w[1] for w in words))) > MAX_NAME:
            words.pop()  # the card has room for so much; fewer facets are still true
        return ("·".join(w[0] for w in words), ", ".join(w[1] for w in words)), shared

    def assign(self, profiles: Profiles, chunk: int = 200_000) -> list[str]:
        """Segment keys for rows that were not part of the fit (past states, new customers).
        A row gets its group's name where that name is true of it, else its facets' name."""
        keys: list[str] = []
        for at in range(0, len(profiles.risk), chunk):
            part = Profiles(profiles.held[at: at + chunk], profiles.amounts[at: at + chunk],
                            profiles.products_held[at: at + chunk], profiles.risk[at: at + chunk],
                            np.asarray(profiles.tier)[at: at + chunk])
            keys += self._keys(part, self._vectors(part), naming=False)
        return keys
