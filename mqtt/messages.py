"""The messages on the branch bus, as our own frozen dataclasses.

Every top-level message carries ``schema`` (``name/version`` on the wire),
a UUID ``id``, the ``branch_id`` and ``sent_at``; arrivals, authorization
requests and escalations also carry ``expires_at``.  Field metadata
(``max_length``, ``pattern``, ``format``, ``max_items``) is enforced by the
decoder and copied into the published JSON Schemas.

Privacy: PADs get masked identifiers only; no message carries embeddings.
Only ``AuthRequest`` (teller terminal -> edge, inside the branch) carries the
full card number, because the edge must check it against the account holder.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, ClassVar, Literal

ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
MAX_IMAGE_B64 = 96 * 1024  # a ~15 KB thumbnail is ~20 KB in base64; ID photos are larger


def text(max_length: int = 200, default: Any = None, **extra: Any) -> Any:
    meta = {"max_length": max_length, **extra}
    if default is None:
        return field(metadata=meta)
    return field(default=default, metadata=meta)


def ident() -> Any:
    return field(metadata={"pattern": ID_PATTERN, "max_length": 64})


def most(max_items: int) -> dict[str, int]:
    return {"max_items": max_items}


def image(optional: bool = True) -> Any:
    meta = {"max_length": MAX_IMAGE_B64, "format": "base64"}
    return field(default=None, metadata=meta) if optional else field(metadata=meta)


def new_id() -> str:
    return str(uuid.uuid4())


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class Message:
    """Fields shared by every top-level message."""

    SCHEMA: ClassVar[str] = ""
    VERSION: ClassVar[int] = 1
    # State, not an event: published retained (the broker hands the latest to every new
    # subscriber) and never de-duplicated by receivers (the same state may come again).
    RETAINED: ClassVar[bool] = False

    id: str = field(default_factory=new_id, metadata={"format": "uuid"})
    branch_id: str = ident()
    sent_at: datetime = field(default_factory=utc_now)

    @classmethod
    def schema_tag(cls) -> str:
        return f"{cls.SCHEMA}/{cls.VERSION}"


@dataclass(frozen=True, kw_only=True)
class Expiring(Message):
    expires_at: datetime

    def is_expired(self, now: datetime | None = None) -> bool:
        return (now or utc_now()) >= self.expires_at


# --- arrival ---------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CustomerCard:
    customer_id: str = ident()
    display_name: str = text(80)
    tier: str = text(32)
    masked_id_number: str = text(32)
    masked_account: str = text(32)


@dataclass(frozen=True, kw_only=True)
class Holding:
    category: str = text(64)
    amount_band: str = text(32)


@dataclass(frozen=True, kw_only=True)
class Interaction:
    on: date
    channel: str = text(32)
    summary: str = text(200)


@dataclass(frozen=True, kw_only=True)
class LifeEvent:
    kind: str = text(32)
    on: date | None = None
    note: str = text(200)


@dataclass(frozen=True, kw_only=True)
class Portrait:
    segment: str = text(64)
    aum_band: str = text(32)
    risk_level: str = text(32)
    holdings: list[Holding] = field(default_factory=list, metadata=most(50))
    preferences: list[str] = field(default_factory=list, metadata=most(50))
    recent_interactions: list[Interaction] = field(default_factory=list, metadata=most(20))
    life_events: list[LifeEvent] = field(default_factory=list, metadata=most(20))
    risk_assessment_expires_on: date | None = None
    # expiring: within [crm] assessment_warning_days; unknown: no CRM data for the customer
    risk_assessment: Literal["valid", "expiring", "expired", "missing", "unknown"] = "unknown"


@dataclass(frozen=True, kw_only=True)
class Recommendation:
    product_id: str = ident()
    name: str = text(120)
    reason: str = text(300)
    reason_en: str = text(300, default="")
    category: str = text(32, default="")
    risk_rating: str = text(8, default="")


@dataclass(frozen=True, kw_only=True)
class Arrival(Expiring):
    """The edge saw an enrolled customer walk in (edge -> RM PADs)."""

    SCHEMA: ClassVar[str] = "arrival"

    visit_id: str = field(metadata={"format": "uuid"})
    camera_id: str = ident()
    seen_at: datetime
    customer: CustomerCard
    assigned_rm: str | None = None
    thumbnail_jpeg_b64: str | None = image()
    portrait: Portrait
    recommendations: list[Recommendation] = field(default_factory=list, metadata=most(20))
    talking_points: list[str] = field(default_factory=list, metadata=most(20))  # zh-CN
    talking_points_en: list[str] = field(default_factory=list, metadata=most(20))


@dataclass(frozen=True, kw_only=True)
class Retraction(Expiring):
    """The edge withdraws what it sent about a customer whose consent was withdrawn (erasure):
    PADs drop every arrival of ``customer_id`` seen up to ``erased_at`` (and those listed in
    ``arrival_ids``) from the feed and from their journal on disk, and refuse such an arrival
    that comes later.  It expires when the last arrival it can concern would have expired."""

    SCHEMA: ClassVar[str] = "retraction"

    customer_id: str = ident()
    erased_at: datetime
    arrival_ids: list[str] = field(default_factory=list, metadata={"max_items": 100, "format": "uuid"})
    reason: Literal["consent_withdrawn"] = "consent_withdrawn"

    def covers(self, arrival: Arrival) -> bool:
        if arrival.id in self.arrival_ids:
            return True
        return arrival.customer.customer_id == self.customer_id and arrival.seen_at <= self.erased_at


# --- RM feedback -------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Claim(Message):
    """An RM takes (or releases) a customer so two RMs do not approach the same person."""

    SCHEMA: ClassVar[str] = "claim"

    arrival_id: str = field(metadata={"format": "uuid"})
    visit_id: str = field(metadata={"format": "uuid"})
    customer_id: str = ident()
    rm_id: str = ident()
    device_id: str = ident()
    action: Literal["claim", "release"] = "claim"


@dataclass(frozen=True, kw_only=True)
class Outcome(Message):
    """What came of an approach (RM PAD -> edge, bridged to head office)."""

    SCHEMA: ClassVar[str] = "outcome"

    arrival_id: str = field(metadata={"format": "uuid"})
    visit_id: str = field(metadata={"format": "uuid"})
    customer_id: str = ident()
    rm_id: str = ident()
    device_id: str = ident()
    result: Literal["contacted", "interested", "declined", "product_sold", "follow_up"]
    product_ids: list[str] = field(default_factory=list, metadata=most(20))
    follow_up_on: date | None = None
    note: str = text(500, default="")


# --- counter authorization ---------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CardFields:
    card_type: str = text(32)
    id_number: str = text(32)
    name: str = text(80)
    birth_date: date | None = None
    valid_from: date | None = None
    valid_until: date | None = None  # None with valid_from set: "长期" (long-term)
    gender: str = text(2, default="")  # GB/T 2261.1: "1" male, "2" female
    nation_code: str = text(2, default="")  # GB 3304 ethnicity code (resident cards)


@dataclass(frozen=True, kw_only=True)
class Score:
    name: str = text(32)
    value: float
    threshold: float


@dataclass(frozen=True, kw_only=True)
class AuthRequest(Expiring):
    """Teller terminal asks the edge to verify the customer (reply on auth/responses/{device})."""

    SCHEMA: ClassVar[str] = "auth_request"

    device_id: str = ident()
    teller_id: str = ident()
    transaction_id: str = ident()
    scenario: str = text(64)
    account_holder_id: str = text(64)
    card: CardFields
    card_photo_jpeg_b64: str | None = image()
    live_jpeg_b64: list[str] = field(
        default_factory=list, metadata={"max_items": 3, "max_length": MAX_IMAGE_B64}
    )
    amount: float | None = None  # the transaction amount, for limits such as large withdrawals
    reader_sam_id: str = text(64, default="")  # the reader's SAM id: an audit fact
    # "counter_camera": the edge takes the live frames from its own counter camera
    # (live_jpeg_b64 is then empty); "terminal": the frames are in live_jpeg_b64.
    live_source: Literal["terminal", "counter_camera"] = "terminal"


@dataclass(frozen=True, kw_only=True)
class AuthResponse(Message):
    SCHEMA: ClassVar[str] = "auth_response"

    request_id: str = field(metadata={"format": "uuid"})
    device_id: str = ident()
    verdict: Literal["approve", "escalate", "reject"]
    reasons: list[str] = field(default_factory=list, metadata=most(20))
    scores: list[Score] = field(default_factory=list, metadata=most(20))
    decided_by: str | None = None


@dataclass(frozen=True, kw_only=True)
class AuthEscalation(Expiring):
    """The edge could not approve alone; a supervisor must decide."""

    SCHEMA: ClassVar[str] = "auth_escalation"

    request_id: str = field(metadata={"format": "uuid"})
    teller_device_id: str = ident()
    scenario: str = text(64)
    masked_card_number: str = text(32)
    reasons: list[str] = field(default_factory=list, metadata=most(20))
    scores: list[Score] = field(default_factory=list, metadata=most(20))
    card_photo_jpeg_b64: str | None = image()
    live_jpeg_b64: str | None = image()


@dataclass(frozen=True, kw_only=True)
class AuthDecision(Message):
    SCHEMA: ClassVar[str] = "auth_decision"

    request_id: str = field(metadata={"format": "uuid"})
    supervisor_id: str = ident()
    device_id: str = ident()
    decision: Literal["approve", "reject"]
    reason: str = text(300)


SCENARIO_NAME_PATTERN = r"^[a-z0-9_]{1,64}$"
MAX_SCENARIOS = 100  # encoded with every title and rationale at full length, still under 256 KB


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """One counter scenario as the edge enforces it (a table of its policy file)."""

    name: str = field(metadata={"pattern": SCENARIO_NAME_PATTERN, "max_length": 64})  # AuthRequest.scenario
    title: str = text(64)  # zh-CN
    title_en: str = text(64)
    rationale: str = text(200, default="")  # one line: why these checks and limits
    checks: list[str] = field(default_factory=list, metadata={"max_items": 8, "max_length": 32})
    auto_approve: bool  # false: a supervisor always decides
    escalation: bool  # false: what the edge cannot approve is rejected, never sent to a supervisor
    auto_approve_max_amount: float | None = None  # CNY; above it a supervisor decides


@dataclass(frozen=True, kw_only=True)
class AuthScenarios(Message):
    """Retained on auth/scenarios: the counter scenarios the edge enforces, from the policy
    file it loaded, published when its authorization service starts; teller terminals
    offer exactly these."""

    SCHEMA: ClassVar[str] = "auth_scenarios"
    RETAINED: ClassVar[bool] = True

    policy_sha256: str = field(metadata={"pattern": r"^[0-9a-f]{64}$", "max_length": 64})
    escalation_timeout_s: float  # a supervisor's time to answer an escalation
    request_ttl_s: float  # a request older than this is not served: the terminals' request expiry
    scenarios: list[Scenario] = field(default_factory=list, metadata=most(MAX_SCENARIOS))


# --- presence and head-office notices ----------------------------------------


@dataclass(frozen=True, kw_only=True)
class CameraStatus:
    """One camera of an edge device, as its watchdog sees it."""

    name: str = ident()
    state: Literal["starting", "up", "down", "ended", "stopped"]
    fps: float = 0.0  # frames decoded per second, last few seconds
    reconnects_last_hour: int = 0
    last_error: str = text(200, default="")


@dataclass(frozen=True, kw_only=True)
class DeviceStatus(Message):
    """Retained on status/{device_id}; the Last Will sets ``state`` to offline."""

    SCHEMA: ClassVar[str] = "device_status"
    RETAINED: ClassVar[bool] = True

    device_id: str = ident()
    role: Literal["edge", "rm", "teller", "supervisor", "central"]
    state: Literal["online", "offline", "stopped"]
    version: str = text(32, default="")
    cameras: list[CameraStatus] = field(default_factory=list, metadata=most(32))
    analysed_fps: float = 0.0  # frames through the recognition pipeline per second, all cameras
    last_arrival_at: datetime | None = None
    outbox_depth: int = 0  # messages stored and not yet acknowledged by the broker


@dataclass(frozen=True, kw_only=True)
class Notice(Message):
    """Head office announces a new signed gallery or product catalogue package."""

    SCHEMA: ClassVar[str] = "notice"

    kind: Literal["gallery", "catalogue"]
    package_version: str = text(64)
    url: str = text(500)
    sha256: str = field(metadata={"pattern": r"^[0-9a-f]{64}$", "max_length": 64})


@dataclass(frozen=True, kw_only=True)
class AuditHead(Message):
    """The newest entry of the edge's audit log, for head office to keep: a later
    ``branch-edge audit verify --expect-head`` fails if the log no longer contains it
    (entries cut off the end, or the whole file rolled back to an older copy)."""

    SCHEMA: ClassVar[str] = "audit_head"

    device_id: str = ident()
    seq: int
    hash: str = field(metadata={"pattern": r"^[0-9a-f]{64}$", "max_length": 64})
    mac: str = field(metadata={"pattern": r"^[0-9a-f]{64}$", "max_length": 64})
    key_id: str = ident()  # the store key whose derived key sealed ``mac``
    entry_time: datetime


# --- head office and the fleet (fleet/... leaves, bridged to the central broker) -----------

CUSTOMER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$"  # the store's customer ids
SHA256_PATTERN = r"^[0-9a-f]{64}$"
GALLERY_CHUNK_BYTES = 96 * 1024  # raw bytes of a package per gallery_chunk (128 KiB in base64)


def customer_ref() -> Any:
    return field(metadata={"pattern": CUSTOMER_ID_PATTERN, "max_length": 64})


def sha256_hex() -> Any:
    return field(metadata={"pattern": SHA256_PATTERN, "max_length": 64})


@dataclass(frozen=True, kw_only=True)
class Erasure(Message):
    """Head office erases a customer's face data at a branch (head office -> branch).

    ``erasure_id`` names the erasure; head office re-sends it (each time under a new ``id``)
    until the branch acknowledges it, and the branch applies each ``erasure_id`` once."""

    SCHEMA: ClassVar[str] = "erasure"

    erasure_id: str = field(metadata={"format": "uuid"})
    customer_id: str = customer_ref()
    issued_at: datetime
    reason: str = text(200, default="consent withdrawn")


@dataclass(frozen=True, kw_only=True)
class ErasureAck(Message):
    """A branch applied (or could not apply) an erasure: store, gallery and outbox."""

    SCHEMA: ClassVar[str] = "erasure_ack"

    erasure_id: str = field(metadata={"format": "uuid"})
    customer_id: str = customer_ref()
    applied_at: datetime
    result: Literal["erased", "not_enrolled", "failed"]
    templates_removed: int = 0
    photos_removed: int = 0
    arrivals_removed: int = 0
    error: str = text(300, default="")


@dataclass(frozen=True, kw_only=True)
class GalleryChunk(Message):
    """One piece of a gallery package for this branch (head office -> branch).  Every chunk
    names the whole package (digest, size, chunk count), so any chunk starts or resumes it."""

    SCHEMA: ClassVar[str] = "gallery_chunk"

    package_sha256: str = sha256_hex()
    package_version: int
    size: int
    chunk_count: int
    index: int
    chunk_sha256: str = sha256_hex()
    data_b64: str = text(4 * GALLERY_CHUNK_BYTES // 3 + 4)


@dataclass(frozen=True, kw_only=True)
class GalleryAck(Message):
    """Where a branch stands with a package: applied, refused (why), or still missing chunks."""

    SCHEMA: ClassVar[str] = "gallery_ack"

    package_sha256: str = sha256_hex()
    package_version: int
    state: Literal["applied", "incomplete", "refused"]
    gallery_version: int  # the version the branch has applied now
    missing: list[int] = field(default_factory=list, metadata=most(1000))
    reason: str = text(64, default="")
    error: str = text(300, default="")


@dataclass(frozen=True, kw_only=True)
class FleetState(Message):
    """Retained on fleet/state: what head office's fleet view shows of a branch."""

    SCHEMA: ClassVar[str] = "fleet_state"
    RETAINED: ClassVar[bool] = True

    model_pack: str = text(64)
    recognizer_sha256: str = sha256_hex()
    gallery_version: int
    templates: int
    last_erasure_id: str | None = None
    last_erasure_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class ShownCount:
    rm_id: str = ident()
    product_id: str = ident()
    segment: str = text(64)
    shown: int


@dataclass(frozen=True, kw_only=True)
class ArrivalCounts(Message):
    """One day of a branch's arrivals (visits of enrolled customers) and recommendations
    shown, as counts only (no customer, no face): the denominators of head office's conversion
    report.  Sent again while the day fills; the latest for (branch, day) wins."""

    SCHEMA: ClassVar[str] = "arrival_counts"

    day: date
    arrivals: int
    shown: list[ShownCount] = field(default_factory=list, metadata=most(1000))


@dataclass(frozen=True, kw_only=True)
class PurchaseLink(Message):
    """A purchase of a recommended product attributed to a visit and its RM (marketing outcome
    linking), without the customer: visit, RM, product, segment, dates and amount."""

    SCHEMA: ClassVar[str] = "purchase_link"

    visit_id: str = ident()
    rm_id: str = ident()
    product_id: str = ident()
    segment: str = text(64)
    shown_on: date
    purchased_on: date
    amount: float


MESSAGE_TYPES: tuple[type[Message], ...] = (
    Arrival,
    Retraction,
    Claim,
    Outcome,
    AuthRequest,
    AuthResponse,
    AuthEscalation,
    AuthDecision,
    AuthScenarios,
    DeviceStatus,
    Notice,
    AuditHead,
    Erasure,
    ErasureAck,
    GalleryChunk,
    GalleryAck,
    FleetState,
    ArrivalCounts,
    PurchaseLink,
)
BY_SCHEMA: dict[str, type[Message]] = {cls.SCHEMA: cls for cls in MESSAGE_TYPES}


def arrival_expiry(seen_at: datetime, ttl_s: float) -> datetime:
    return seen_at + timedelta(seconds=ttl_s)
