"""Enrolment: photos of consenting customers → encrypted templates in the store.

Three phases, so that review can compare every photo of the run with each other:

1. *admit* each customer: valid id and a recorded consent (already in the store,
   or given now by the CSV / ``--consent-channel``);
2. *analyse* each photo: decode, find the face, quality gate, liveness when
   required — every photo ends accepted-so-far or rejected with a reason code;
3. *review* (``standard``: the photo must match the customer's other photos;
   ``strict``: also not be closer to another customer) and *write* each
   customer in one transaction.

Re-running is idempotent: a photo (by SHA-256 of its bytes) that already has a
template of this model pack is reported as ``already_enrolled``.
"""

from __future__ import annotations

import hashlib
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from tqdm import tqdm

from edge.config import EdgeConfig
from edge.core.errors import EngineError, ImageError, StoreError
from edge.enrol.sources import (
    CustomerItem,
    PhotoItem,
    customers_from_csv,
    customers_from_folders,
    read_photo,
)
from edge.store.customers import check_customer_id
from edge.store.database import Store
from edge.vision.engine import FaceEngine
from edge.vision.imageio import MAX_IMAGE_BYTES, decode_checked
from edge.vision.types import FaceObservation

log = logging.getLogger(__name__)

Review = Literal["off", "standard", "strict"]
Status = Literal["accepted", "rejected", "already_enrolled"]

# Reason codes a photo (or a whole customer) can be rejected with; README lists them.
REASONS = {
    "invalid_customer_id": "the customer id is not a valid id",
    "no_consent": "no recorded consent for this customer",
    "no_display_name": "no display name in the CSV, the store or the CRM (an RM could not tell who "
                       "walked in); --allow-unnamed enrols the customer without one",
    "consent_withdrawn": "the customer's consent was withdrawn (erased) while the run was in progress",
    "consent_predates_withdrawal": "the given consent is older than the customer's withdrawal",
    "consent_in_future": "the given consent time is in the future",
    "unreadable": "the file cannot be read",
    "not_an_image": "the file is not an image",
    "corrupt": "the image data is corrupt or truncated",
    "too_large": "the image is larger than the size limit",
    "no_face": "no face found",
    "several_faces": "more than one face of comparable size",
    "low_det_score": "the detector is not sure it is a face",
    "too_small": "the face is too small",
    "blurry": "the face is blurry",
    "extreme_pose": "the head is turned too far",
    "low_liveness": "the photo looks like a spoof (liveness below threshold)",
    "inconsistent": "the face does not match the customer's other photos",
    "closer_to_other_customer": "the face is closer to another customer than to its own",
    "duplicate_photo": "the same file appears twice for this customer in this run",
    "duplicate_of_other_customer": "the same photo is enrolled for another customer",
    "template_limit": "the customer already has the maximum number of templates",
    "changed_during_enrolment": "the file changed while it was being enrolled",
    "outside_folder": "the file's real path is outside the photos folder (a symlink)",
    "not_a_regular_file": "a device, FIFO or socket, not a photo file",
    "processing_failed": "an unexpected error while processing the photo (logged)",
    "write_failed": "the customer's photos could not be written to the store (logged)",
}


@dataclass(frozen=True)
class PhotoResult:
    customer_id: str
    photo: str
    status: Status
    reason: str | None = None
    message: str = ""
    template_id: int | None = None
    notes: tuple[str, ...] = ()  # oddities that did not stop the photo (padding, wrong suffix, name)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "notes": list(self.notes)}


@dataclass
class EnrolReport:
    model_pack: str
    review: Review
    results: list[PhotoResult] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)  # customer id → reason code
    ignored: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, status: Status) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def all_accepted(self) -> bool:
        return not self.refused and self.count("rejected") == 0

    def reason_counts(self) -> dict[str, int]:
        return dict(Counter(r.reason for r in self.results if r.reason).most_common())

    def per_customer(self) -> list[dict[str, Any]]:
        rows: dict[str, dict[str, Any]] = {}
        for r in self.results:
            row = rows.setdefault(r.customer_id, {
                "customer_id": r.customer_id, "accepted": 0, "already_enrolled": 0,
                "rejected": 0, "refused": self.refused.get(r.customer_id)})
            row[r.status] += 1
        return list(rows.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_pack": self.model_pack, "review": self.review,
            "totals": {"photos": len(self.results), "accepted": self.count("accepted"),
                       "already_enrolled": self.count("already_enrolled"),
                       "rejected": self.count("rejected"),
                       "customers": len(self.per_customer()), "customers_refused": len(self.refused)},
            "reasons": self.reason_counts(), "customers": self.per_customer(),
            "photos": [r.to_dict() for r in self.results], "ignored": self.ignored,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class Candidate:
    """A photo that passed analysis and waits for review and writing."""

    item: PhotoItem
    sha256: str
    embedding: np.ndarray
    quality: dict[str, float]
    rank: float  # quality score: the best photos win when the template limit is hit
    notes: tuple[str, ...] = ()


def enrol_folder(store: Store, engine: FaceEngine, cfg: EdgeConfig, photos_dir: Path, *,
                 customers_csv: Path | None = None, review: Review | None = None,
                 progress: bool | None = None, consent_channel: str | None = None,
                 consent_time: datetime | None = None, actor: str = "enrol",
                 csv_encoding: str | None = None, crm_names: Callable[[str], str | None] | None = None,
                 allow_unnamed: bool = False) -> EnrolReport:
    """Enrol ``photos_dir`` (one folder per customer, or as mapped by ``customers_csv``).

    ``progress=None`` shows a progress bar only when stderr is a terminal.  A customer with
    no display name (not in the CSV, not already in the store) takes the CRM's name
    (``crm_names(customer_id)``), else is refused (``no_display_name``) unless
    ``allow_unnamed``: the tablet would otherwise show an arrival nobody can name.
    """
    if customers_csv is not None:
        customers, ignored = customers_from_csv(photos_dir, customers_csv, csv_encoding), list[str]()
    else:
        customers, ignored = customers_from_folders(photos_dir, consent_channel, consent_time)
    enroller = Enroller(store, engine, cfg, review or cfg.enrol.review, actor, crm_names=crm_names,
                        allow_unnamed=allow_unnamed)
    report = enroller.run(customers, sys.stderr.isatty() if progress is None else progress)
    report.ignored = ignored
    return report


class Enroller:
    def __init__(self, store: Store, engine: FaceEngine, cfg: EdgeConfig, review: Review,
                 actor: str, *, crm_names: Callable[[str], str | None] | None = None,
                 allow_unnamed: bool = False) -> None:
        self.store, self.engine, self.cfg, self.review, self.actor = store, engine, cfg, review, actor
        self.pack = engine.pack_id
        self.liveness_required = cfg.enrol.require_liveness and review != "off"
        if self.liveness_required and not engine.has_liveness:
            raise EngineError(
                f"enrol.require_liveness is set but model pack {self.pack!r} has no liveness model"
            )
        self._seen: dict[str, PhotoItem] = {}  # photo sha256 → first item, within this run
        self.crm_names, self.allow_unnamed = crm_names, allow_unnamed

    def run(self, customers: Sequence[CustomerItem], progress: bool) -> EnrolReport:
        started = time.perf_counter()
        report = EnrolReport(self.pack, self.review)
        admitted = []
        for given in customers:
            customer, refusal = given, self._admit(given)
            if refusal is None:
                customer, refusal = self._named(given)
            if refusal is None:
                admitted.append(customer)
                continue
            report.refused[customer.customer_id] = refusal[0]
            report.results += [_reject(p, *refusal) for p in customer.photos]
        candidates = self._analyse_all(admitted, report, progress)
        verdicts = Reviewer(self.store, self.cfg, self.pack, self.review).review(candidates)
        for customer in admitted:
            try:
                report.results += self._write(customer, candidates, verdicts, report)
            except Exception as err:  # the transaction rolled back; the next customer still runs
                log.exception("enrolment: writing customer %s failed", customer.customer_id)
                report.results += [_reject(c.item, "write_failed", f"{c.item.name}: not written "
                                           f"({type(err).__name__})")
                                   for c in candidates if c.item.customer_id == customer.customer_id]
        report.results.sort(key=lambda r: (r.customer_id, r.photo))
        report.seconds = time.perf_counter() - started
        log.info("enrolment: %d photos, %d accepted, %d rejected", len(report.results),
                 report.count("accepted"), report.count("rejected"))
        return report

    def _admit(self, customer: CustomerItem) -> tuple[str, str] | None:
        """Why the customer cannot be enrolled now, or None."""
        cid = customer.customer_id
        try:
            check_customer_id(cid)
        except StoreError as err:
            return "invalid_customer_id", str(err)
        if customer.consent_channel and customer.consent_time:
            if self.store.active_consent(cid) is not None:
                return None
            return self.store.consent_refusal(cid, customer.consent_time)
        if self.store.active_consent(cid) is None:
            return ("no_consent", f"customer {cid} has no recorded consent: give consent_channel "
                    "and consent_time in the CSV, or --consent-channel for folders")
        return None

    def _named(self, customer: CustomerItem) -> tuple[CustomerItem, tuple[str, str] | None]:
        """The customer with a display name (the CSV's, the store's or the CRM's), or why not."""
        cid = customer.customer_id
        if (customer.display_name or "").strip():
            return customer, None
        stored = self.store.get_customer(cid)
        if stored is not None and stored.display_name.strip():
            return customer, None
        from_crm = (self.crm_names(cid) or "").strip() if self.crm_names is not None else ""
        if from_crm:
            return replace(customer, display_name=from_crm), None
        if self.allow_unnamed:
            return customer, None
        return customer, ("no_display_name", f"customer {cid} has no display name: give display_name in "
                          "the CSV, import the CRM first, or pass --allow-unnamed")

    def _analyse_all(self, customers: Sequence[CustomerItem], report: EnrolReport,
                     progress: bool) -> list[Candidate]:
        items = [p for c in customers for p in c.photos]
        candidates = []
        for item in _progress(items, progress):
            try:
                outcome = self._analyse(item)
            except Exception as err:  # one photo's surprise must not end the run
                log.exception("enrolment: photo %s of %s failed", item.name, item.customer_id)
                outcome = _reject(item, "processing_failed",
                                  f"{item.name}: could not be processed ({type(err).__name__})")
            if isinstance(outcome, Candidate):
                candidates.append(outcome)
            else:
                report.results.append(outcome)
        return candidates

    def _analyse(self, item: PhotoItem) -> Candidate | PhotoResult:
        try:
            data = read_photo(item, MAX_IMAGE_BYTES)
        except ImageError as err:
            return _reject(item, err.code if err.code in REASONS else "unreadable", str(err))
        sha = hashlib.sha256(data).hexdigest()
        duplicate = self._duplicate(item, sha)
        if duplicate is not None:
            return duplicate
        try:
            decoded = decode_checked(data, item.name)
            image = decoded.image
        except ImageError as err:
            code = "not_an_image" if err.code == "empty" else err.code
            return _reject(item, code if code in REASONS else "corrupt", str(err))
        observations = self.engine.analyze(image)
        if not observations:
            return _reject(item, "no_face", f"{item.name}: no face found")
        gate = self._gate(item, image, observations)
        if isinstance(gate, PhotoResult):
            return gate
        main = observations[0]
        assert main.embedding is not None
        return Candidate(item, sha, main.embedding, gate, main.quality.score(), decoded.notes)

    def _duplicate(self, item: PhotoItem, sha: str) -> PhotoResult | None:
        first = self._seen.setdefault(sha, item)
        if first is not item:
            same = first.customer_id == item.customer_id
            return _reject(item, "duplicate_photo" if same else "duplicate_of_other_customer",
                           f"{item.name}: same file as {first.name}")
        owner = self.store.template_owner(self.pack, sha)
        if owner is None:
            return None
        if owner == item.customer_id:
            return PhotoResult(item.customer_id, item.name, "already_enrolled", None,
                               f"{item.name}: this photo is already enrolled", notes=item.notes)
        return _reject(item, "duplicate_of_other_customer",
                       f"{item.name}: the same photo is enrolled for another customer")

    def _gate(self, item: PhotoItem, image: np.ndarray,
              observations: list[FaceObservation]) -> dict[str, float] | PhotoResult:
        """Quality dict of the main face, or the rejection (review ``off``: no gate)."""
        main = observations[0]
        q = main.quality
        quality = {"det_score": q.det_score, "interocular_px": q.interocular_px, "blur": q.blur,
                   "yaw_deg": q.yaw_deg, "pitch_deg": q.pitch_deg}
        quality = {k: round(float(v), 3) for k, v in quality.items()}
        if self.review == "off":
            return quality
        others = _rival_faces(observations, self.cfg)
        if others:
            return _reject(item, "several_faces",
                           f"{item.name}: {len(others) + 1} faces; another face is "
                           f"{others[0]:.0%} the size of the main one")
        failures = q.failures(self.cfg.quality)
        if failures:
            return _reject(item, failures[0], f"{item.name}: {_describe_quality(failures, quality)}")
        if self.liveness_required:
            live = self.engine.liveness(image, main.face)
            quality["liveness"] = round(live, 3)
            if live < self.cfg.liveness.threshold:
                return _reject(item, "low_liveness", f"{item.name}: liveness {live:.2f} < "
                               f"{self.cfg.liveness.threshold:.2f}")
        return quality

    def _write(self, customer: CustomerItem, candidates: list[Candidate],
               verdicts: dict[int, tuple[str, str]], report: EnrolReport) -> list[PhotoResult]:
        """Customer, consent, photos and templates of one customer: one transaction.

        Consent is checked again inside it: an erasure that committed while the photos were
        analysed (``branch-edge erase`` in another process) wins, and nothing is written."""
        cid = customer.customer_id
        mine = [c for c in candidates if c.item.customer_id == cid]
        results = [_reject(c.item, *verdicts[id(c)]) for c in mine if id(c) in verdicts]
        passing = sorted((c for c in mine if id(c) not in verdicts), key=lambda c: -c.rank)
        with self.store.transaction():
            refusal = self._admit(customer)
            if refusal is not None:
                log.info("enrolment: customer %s refused at write time (%s)", cid, refusal[0])
                report.refused[cid] = "consent_withdrawn"
                message = f"customer {cid}: consent withdrawn during enrolment ({refusal[1]})"
                return results + [_reject(c.item, "consent_withdrawn", message) for c in passing]
            self.store.upsert_customer(cid, self.actor, customer.display_name, customer.tier,
                                       customer.assigned_rm)
            if customer.consent_channel and customer.consent_time:
                self.store.record_consent(cid, customer.consent_channel, customer.consent_time,
                                          self.actor)
            room = self.cfg.enrol.max_templates_per_customer - self.store.count_templates(cid, self.pack)
            for number, candidate in enumerate(passing):
                results.append(self._store_one(candidate) if number < room else _reject(
                    candidate.item, "template_limit",
                    f"{candidate.item.name}: customer already has "
                    f"{self.cfg.enrol.max_templates_per_customer} templates"))
            added = sum(r.status == "accepted" for r in results)
            if added:
                self.store.audit(self.actor, "enrolled", cid, {
                    "model_pack": self.pack, "review": self.review, "templates_added": added})
        return results

    def _store_one(self, candidate: Candidate) -> PhotoResult:
        item = candidate.item
        try:
            data = read_photo(item, MAX_IMAGE_BYTES)
        except ImageError as err:
            return _reject(item, "unreadable", str(err))
        if hashlib.sha256(data).hexdigest() != candidate.sha256:
            return _reject(item, "changed_during_enrolment", f"{item.name} changed during enrolment")
        photo_id, _ = self.store.add_photo(item.customer_id, data)
        template_id, _ = self.store.add_template(
            item.customer_id, self.pack, candidate.embedding, quality=candidate.quality,
            source_sha256=candidate.sha256, source_name=item.name, photo_id=photo_id)
        return PhotoResult(item.customer_id, item.name, "accepted", None,
                           f"{item.name}: enrolled", template_id, item.notes + candidate.notes)


class Reviewer:
    """Cross-photo checks: ``standard`` consistency, ``strict`` also other customers."""

    def __init__(self, store: Store, cfg: EdgeConfig, pack: str, review: Review) -> None:
        self.store, self.pack, self.level = store, pack, review
        self.threshold = cfg.recognition.threshold

    def review(self, candidates: list[Candidate]) -> dict[int, tuple[str, str]]:
        """Rejections keyed by ``id(candidate)``: (reason code, message)."""
        if self.level == "off" or not candidates:
            return {}
        own_scores = self._own_scores(candidates)
        rejected: dict[int, tuple[str, str]] = {}
        if self.level == "strict":
            # Only photos consistent with their own customer may testify against others:
            # a misfiled photo must not make its true owner's photos look misfiled.
            consistent = [c for c in candidates
                          if (own := own_scores[id(c)]) is None or own >= self.threshold]
            rejected |= self._closer_to_others(candidates, consistent, own_scores)
        for c in candidates:
            own = own_scores[id(c)]
            if id(c) not in rejected and own is not None and own < self.threshold:
                rejected[id(c)] = ("inconsistent", f"{c.item.name}: best match with the customer's "
                                   f"other photos is {own:.2f} < threshold {self.threshold:.2f}")
        return rejected

    def _own_scores(self, candidates: list[Candidate]) -> dict[int, float | None]:
        """Best cosine of each candidate with its customer's templates and other candidates."""
        scores: dict[int, float | None] = {}
        by_customer: dict[str, list[Candidate]] = {}
        for c in candidates:
            by_customer.setdefault(c.item.customer_id, []).append(c)
        for cid, group in by_customer.items():
            _, stored = self.store.load_templates(self.pack, customer_id=cid)
            for c in group:
                refs = [o.embedding for o in group if o is not c and o.sha256 != c.sha256]
                scores[id(c)] = _best_cosine(c.embedding, [*stored, *refs])
        return scores

    def _closer_to_others(self, candidates: list[Candidate], consistent: list[Candidate],
                          own_scores: dict[int, float | None]) -> dict[int, tuple[str, str]]:
        ids, stored = self.store.load_templates(self.pack)
        owners = np.asarray([*ids, *(c.item.customer_id for c in consistent)], dtype=object)
        matrix = [*stored, *(c.embedding for c in consistent)]
        if not matrix:
            return {}
        gallery = np.asarray(matrix, dtype=np.float32)
        rejected = {}
        for c in candidates:
            scores = np.where(owners != c.item.customer_id, gallery @ c.embedding, -np.inf)
            best = int(np.argmax(scores))
            own = own_scores[id(c)]
            if scores[best] >= self.threshold and (own is None or scores[best] > own):
                log.debug("photo %s of %s is closer to %s", c.item.name, c.item.customer_id,
                          owners[best])
                rejected[id(c)] = ("closer_to_other_customer",
                                   f"{c.item.name}: matches customer {owners[best]} "
                                   f"({scores[best]:.2f}) better than its own customer"
                                   + (f" ({own:.2f})" if own is not None else ""))
        return rejected


def _best_cosine(vector: np.ndarray, refs: Sequence[np.ndarray]) -> float | None:
    if not refs:
        return None
    return float(np.max(np.asarray(refs, dtype=np.float32) @ vector))


def _rival_faces(observations: list[FaceObservation], cfg: EdgeConfig) -> list[float]:
    """Area ratios (to the largest face) of other confident faces of comparable size."""
    areas = sorted(((o.face.area, o.face.score) for o in observations), reverse=True)
    largest = areas[0][0]
    return [area / largest for area, score in areas[1:]
            if area >= cfg.enrol.several_faces_area_ratio * largest
            and score >= cfg.quality.min_det_score]


def _describe_quality(failures: list[str], quality: dict[str, float]) -> str:
    measured = {"low_det_score": f"detector score {quality['det_score']:.2f}",
                "too_small": f"eye distance {quality['interocular_px']:.0f} px",
                "blurry": f"sharpness {quality['blur']:.0f}",
                "extreme_pose": f"yaw {quality['yaw_deg']:.0f}°, pitch {quality['pitch_deg']:.0f}°"}
    return "; ".join(f"{REASONS[f]} ({measured[f]})" for f in failures)


def _reject(item: PhotoItem, reason: str, message: str) -> PhotoResult:
    return PhotoResult(item.customer_id, item.name, "rejected", reason, message, notes=item.notes)


def _progress(items: list[PhotoItem], show: bool) -> Iterable[PhotoItem]:
    if not show:
        return items
    bar: Iterable[PhotoItem] = tqdm(items, desc="enrolling", unit="photo", file=sys.stderr)
    return bar

