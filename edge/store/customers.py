"""Customers, their consents, and the account holder's ID number as a keyed hash."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from edge.core.errors import StoreError
from edge.store.audit import AuditLog
from edge.store.base import iso, utc_now
from edge.store.crypto import key_id_of

CUSTOMER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
# A consent may be stamped slightly ahead of this PC's clock (another terminal), not more.
_CLOCK_SKEW = timedelta(minutes=5)


def check_customer_id(customer_id: str) -> None:
    if not CUSTOMER_ID_RE.match(customer_id):
        raise StoreError(
            f"invalid customer id {customer_id!r}: 1-64 characters, letters, digits and _ . @ -, "
            "starting with a letter or digit"
        )


@dataclass(frozen=True)
class Customer:
    customer_id: str
    display_name: str
    tier: str
    assigned_rm: str
    created_at: str
    updated_at: str


@dataclass(frozen=True)
class Consent:
    id: int
    customer_id: str
    granted_at: str
    channel: str
    withdrawn_at: str | None
    recorded_by: str


class Customers(AuditLog):
    """Who the customers are and whether they consented."""

    def get_customer(self, customer_id: str) -> Customer | None:
        row = self._conn.execute(
            "SELECT * FROM customers WHERE customer_id = ?", (customer_id,)
        ).fetchone()
        return Customer(*row) if row else None

    def upsert_customer(self, customer_id: str, actor: str, display_name: str | None = None,
                        tier: str | None = None, assigned_rm: str | None = None) -> Customer:
        """Create the customer or update the given fields (None leaves a field as it is)."""
        check_customer_id(customer_id)
        given = {"display_name": display_name, "tier": tier, "assigned_rm": assigned_rm}
        with self.transaction() as c:
            old = self.get_customer(customer_id)
            now = iso(utc_now())
            if old is None:
                values = {k: v or "" for k, v in given.items()}
                c.execute(
                    "INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)",
                    (customer_id, *values.values(), now, now),
                )
                self.audit(actor, "customer_created", customer_id, {"fields": sorted(values)})
            else:
                changed = {k: v for k, v in given.items() if v is not None and v != getattr(old, k)}
                if changed:
                    sets = ", ".join(f"{k} = ?" for k in changed)
                    c.execute(
                        f"UPDATE customers SET {sets}, updated_at = ? WHERE customer_id = ?",
                        (*changed.values(), now, customer_id),
                    )
                    self.audit(actor, "customer_updated", customer_id, {"fields": sorted(changed)})
            customer = self.get_customer(customer_id)
        assert customer is not None
        return customer

    def active_consent(self, customer_id: str) -> Consent | None:
        row = self._conn.execute(
            "SELECT * FROM consents WHERE customer_id = ? AND withdrawn_at IS NULL "
            "ORDER BY granted_at DESC LIMIT 1",
            (customer_id,),
        ).fetchone()
        return Consent(*row) if row else None

    def last_withdrawal(self, customer_id: str) -> str | None:
        row = self._conn.execute(
            "SELECT MAX(withdrawn_at) FROM consents WHERE customer_id = ?", (customer_id,)
        ).fetchone()
        return row[0] if row else None

    def consent_refusal(self, customer_id: str, granted_at: datetime) -> tuple[str, str] | None:
        """Why a new consent given at ``granted_at`` cannot be recorded: (code, message)."""
        granted = iso(granted_at)
        if granted_at > utc_now() + _CLOCK_SKEW:
            return "consent_in_future", f"customer {customer_id}: consent time {granted} is in the future"
        withdrawn = self.last_withdrawal(customer_id)
        if withdrawn is not None and granted <= withdrawn:
            return ("consent_predates_withdrawal",
                    f"customer {customer_id}: consent of {granted} predates the withdrawal of "
                    f"{withdrawn}; record a new consent")
        return None

    def record_consent(self, customer_id: str, channel: str, granted_at: datetime,
                       recorded_by: str) -> Consent:
        """Record a consent; an active one is kept as is (idempotent).

        A consent dated at or before the customer's last withdrawal is refused: re-running an
        old import must not silently re-enrol someone who withdrew.
        """
        if not channel.strip():
            raise StoreError(f"customer {customer_id}: consent channel is empty")
        with self.transaction() as c:
            active = self.active_consent(customer_id)
            if active is not None:
                return active
            refusal = self.consent_refusal(customer_id, granted_at)
            if refusal is not None:
                raise StoreError(refusal[1])
            c.execute(
                "INSERT INTO consents (customer_id, granted_at, channel, recorded_by) "
                "VALUES (?, ?, ?, ?)",
                (customer_id, iso(granted_at), channel.strip(), recorded_by),
            )
            self.audit(recorded_by, "consent_recorded", customer_id, {"channel": channel.strip()})
            consent = self.active_consent(customer_id)
        assert consent is not None
        return consent

    # -- account holder's ID number (keyed hash only) ---------------------------------

    def set_holder_id_number(self, customer_id: str, normalized_id: str, actor: str) -> None:
        """Record the account holder's (normalised) ID number as a keyed hash."""
        digest = _id_hmac(self._keys.primary, normalized_id)
        with self.transaction() as c:
            if self.get_customer(customer_id) is None:
                raise StoreError(f"unknown customer id {customer_id!r}")
            c.execute(
                "INSERT INTO holder_ids VALUES (?, ?, ?, ?) ON CONFLICT(customer_id) DO UPDATE "
                "SET key_id = excluded.key_id, id_hmac = excluded.id_hmac, "
                "updated_at = excluded.updated_at",
                (customer_id, self._keys.primary_id, digest, iso(utc_now())),
            )
            self.audit(actor, "holder_id_set", customer_id, {"key_id": self._keys.primary_id})

    def holder_id_matches(self, customer_id: str, normalized_id: str) -> bool | None:
        """Whether the card's number is the account holder's; None when none is on file."""
        row = self._conn.execute(
            "SELECT key_id, id_hmac FROM holder_ids WHERE customer_id = ?", (customer_id,)
        ).fetchone()
        if row is None:
            return None
        key = next((k for k in (self._keys.primary, *self._keys.older) if key_id_of(k) == row[0]), None)
        if key is None:
            raise StoreError(f"the holder ID hash of {customer_id} needs the key with id {row[0]}")
        return hmac.compare_digest(_id_hmac(key, normalized_id), row[1])

def _id_hmac(store_key: bytes, normalized_id: str) -> str:
    hmac_key = hashlib.sha256(b"branch-edge holder-id hmac v1\x00" + store_key).digest()
    return hmac.new(hmac_key, normalized_id.encode("utf-8"), hashlib.sha256).hexdigest()


