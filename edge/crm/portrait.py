"""The customer portrait of an arrival: who this is, what they hold, what to
offer and what to say, from the CRM tables.

``PortraitBuilder`` keeps one fitted recommender and refits it when the CRM
data changes (an import bumps ``data_version``: at once, so an imported
customer has a portrait on their next arrival) or the day changes (in the
background: fitting takes tens of seconds on a large CRM, and the first
arrival of the day is served by yesterday's model rather than wait for it;
the lists still use today's date for suitability and triggers).  It is safe
to call from the daemon's threads.
"""

from __future__ import annotations

import logging
import threading
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

from edge.config import CrmConfig, EdgeConfig
from edge.core.bands import amount_band
from edge.crm.catalogue import ASSET_CATEGORIES, Product, category_name
from edge.crm.outcomes import record_shown, record_visit
from edge.crm.recommend import ASSESSMENT_PRODUCT, Population, Recommended, Recommender, customer_triggers
from edge.crm.records import CrmCustomer, CrmStore, HoldingRecord
from edge.crm.talking_points import event_point, reason, talking_points
from mqtt.messages import Holding, Interaction, LifeEvent, Portrait, Recommendation

log = logging.getLogger(__name__)

AssessmentState = Literal["valid", "expiring", "expired", "missing"]
RECENT_INTERACTIONS = 3
ASSESSMENT_NAME = ("重新进行风险评估", "Redo the risk assessment")
LANGUAGE_NAMES = {"zh-CN": ("偏好语言：中文", "prefers Chinese"), "en": ("偏好语言：英语", "prefers English")}


@dataclass(frozen=True)
class PortraitBundle:
    portrait: Portrait
    recommendations: list[Recommendation]
    talking_points: list[str]  # zh-CN
    talking_points_en: list[str]
    masked_id_number: str
    masked_account: str


def holdings_summary(holdings: list[HoldingRecord], language: str) -> list[Holding]:
    totals: dict[str, float] = defaultdict(float)
    for h in holdings:
        if h.amount > 0:
            totals[h.category] += h.amount
    ordered = sorted(totals.items(), key=lambda kv: -kv[1])
    return [Holding(category=category_name(c, language), amount_band=amount_band(a, language))
            for c, a in ordered]


def aum_band(customer: CrmCustomer, holdings: list[HoldingRecord], language: str) -> str:
    if customer.aum_band:
        return customer.aum_band
    return amount_band(sum(h.amount for h in holdings if h.category in ASSET_CATEGORIES), language)


class PortraitBuilder:
    def __init__(self, crm: CrmStore, cfg: CrmConfig) -> None:
        self.crm = crm
        self.cfg = cfg
        self._lock = threading.Lock()
        self._fitted: tuple[int, date, Recommender | None] | None = None
        self._swap = threading.Lock()  # guards _fitted, _refit_thread and _refit_failed
        self._refit_thread: threading.Thread | None = None
        self._refit_failed: tuple[int, date] | None = None  # not retried until the day or data change
        self._closed = False

    @classmethod
    def open(cls, cfg: EdgeConfig, path: Path | None = None) -> PortraitBuilder:
        return cls(CrmStore.open(path or cfg.crm.path or cfg.store.path), cfg.crm)

    def close(self) -> None:
        # A background refit reading the CRM finishes its read first; one still fitting is left
        # to end on its own (it no longer touches the CRM), so a stop is never held up by a fit.
        with self.crm.lock:
            self._closed = True
            self.crm.close()

    def recommender(self, today: date) -> Recommender | None:
        """The fitted recommender, or None while the CRM holds no customers."""
        version = self.crm.data_version()
        with self._swap:
            fitted = self._fitted
            if fitted is not None and fitted[:2] == (version, today):
                return fitted[2]
            if fitted is not None and fitted[0] == version and fitted[2] is not None:
                self._start_refit(version, today)  # only the day changed: yesterday's model serves
                return fitted[2]
        with self.crm.lock:
            pop = Population.load(self.crm)
        rec = Recommender(pop, self.cfg, as_of=today) if pop.customers else None
        with self._swap:
            self._fitted = (version, today, rec)
        return rec

    def wait_for_refit(self, timeout: float | None = None) -> None:
        """Until a background refit has finished (tests, and an orderly stop)."""
        refit = self._refit_thread
        if refit is not None:
            refit.join(timeout)

    def _start_refit(self, version: int, today: date) -> None:
        running = self._refit_thread is not None and self._refit_thread.is_alive()
        if running or self._refit_failed == (version, today):
            return
        self._refit_thread = threading.Thread(target=self._refit, args=(version, today),
                                              name="recommender-refit", daemon=True)
        self._refit_thread.start()

    def _refit(self, version: int, today: date) -> None:
        """Background thread: fit for ``today``; swapped in unless the data changed meanwhile."""
        try:
            with self.crm.lock:
                if self._closed or self.crm.data_version() != version:
                    return  # closed, or an import came first: the next arrival refits for it at once
                pop = Population.load(self.crm)
            rec = Recommender(pop, self.cfg, as_of=today) if pop.customers else None
            with self._swap:
                if self._fitted is not None and self._fitted[0] == version:
                    self._fitted = (version, today, rec)
        except Exception:  # the day's lists stay yesterday's model's; retried when the day or data change
            log.exception("refitting the recommender for %s failed; yesterday's model stays", today)
            with self._swap:
                self._refit_failed = (version, today)

    def build(self, customer_id: str, today: date, visit_id: str | None = None,
              rm_id: str = "") -> PortraitBundle | None:
        """The portrait, or None when the CRM does not know the customer.  With a
        ``visit_id`` the recommendations are remembered for outcome linking."""
        with self._lock, self.crm.lock:  # one connection shared with the outcome handler's thread
            if visit_id:  # even for a customer the CRM does not know: RMs report outcomes on it
                record_visit(self.crm, visit_id, customer_id, today)
            rec = self.recommender(today)
            customer = rec.pop.customers.get(customer_id) if rec is not None else None
            if rec is None or customer is None:
                return None
            holdings = rec.pop.holdings.get(customer_id, [])
            ranked = rec.recommend(customer_id, today, holdings)
            if visit_id:
                record_shown(self.crm, visit_id, customer_id, ranked, rm_id=rm_id or customer.assigned_rm,
                             segment=rec.segment(customer_id)[1], shown_on=today)
            return self._bundle(rec, customer, holdings, ranked, today)

    def _bundle(self, rec: Recommender, customer: CrmCustomer, holdings: list[HoldingRecord],
                ranked: list[Recommended], today: date) -> PortraitBundle:
        language = self.cfg.language
        triggers = customer_triggers(customer, holdings, today, self.cfg)
        names = rec.pop.products
        expires = customer.risk_expires_on
        portrait = Portrait(
            segment=rec.segment(customer.customer_id)[1 if language == "en" else 0],
            aum_band=aum_band(customer, holdings, language),
            risk_level=customer.risk_level,
            holdings=holdings_summary(holdings, language),
            preferences=[*customer.preferences, _language_pref(customer, language)][:50],
            recent_interactions=[
                Interaction(on=i.on, channel=i.channel, summary=i.summary)
                for i in self.crm.interactions(customer.customer_id)[:RECENT_INTERACTIONS]],
            life_events=[
                LifeEvent(kind=t.kind, on=t.on, note=clip(event_point(t, names, today, language), 200))
                for t in triggers][:20],
            risk_assessment_expires_on=expires,
            risk_assessment=assessment_state(expires, today, self.cfg.assessment_warning_days),
        )
        return PortraitBundle(
            portrait, [_recommendation(r, names, today) for r in ranked],
            talking_points(triggers, ranked, names, today=today, language="zh-CN"),
            talking_points(triggers, ranked, names, today=today, language="en"),
            customer.masked_id_number, customer.masked_account,
        )


def clip(text: str, limit: int) -> str:
    """Long catalogue names must not push a field over the message limit."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def assessment_state(expires: date | None, today: date, warning_days: int) -> AssessmentState:
    if expires is None:
        return "missing"
    if today > expires:
        return "expired"
    return "expiring" if (expires - today).days <= warning_days else "valid"


def _language_pref(customer: CrmCustomer, language: str) -> str:
    zh, en = LANGUAGE_NAMES.get(customer.preferred_language, LANGUAGE_NAMES["zh-CN"])
    return en if language == "en" else zh


def _recommendation(r: Recommended, names: dict[str, Product], today: date) -> Recommendation:
    if r.product_id == ASSESSMENT_PRODUCT or r.product is None:
        return Recommendation(product_id=ASSESSMENT_PRODUCT, name=ASSESSMENT_NAME[0],
                              reason=clip(reason(r, names, today, "zh-CN"), 300),
                              reason_en=clip(reason(r, names, today, "en"), 300))
    return Recommendation(
        product_id=r.product_id, name=r.product.name_zh, reason=clip(reason(r, names, today, "zh-CN"), 300),
        reason_en=clip(reason(r, names, today, "en"), 300), category=r.product.category,
        risk_rating=r.product.risk_rating)
