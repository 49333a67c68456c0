"""The branch's copy of CRM data: customers, holdings, transactions,
interactions, the product catalogue, and what the edge did with them
(recommendations shown per visit, RM outcomes, sales linked to visits).

Storage decision: plain SQLite tables prefixed ``crm_`` in their own
connection, versioned in ``crm_meta`` (not ``PRAGMA user_version``, which the
face store owns).  The file may be the face store's database (the demo does
that) or a separate one (``[crm] path``).  Nothing here is biometric; ID and
account numbers are masked at import and never stored in full.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from edge.core.errors import BranchEdgeError
from edge.core.files import private_database
from edge.crm.catalogue import Product

BUSY_TIMEOUT_MS = 5000


class CrmError(BranchEdgeError):
    """The CRM database cannot be opened or used, or an import file is unusable."""


CRM_MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE crm_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE crm_customers (
        customer_id TEXT PRIMARY KEY, name TEXT NOT NULL, tier TEXT NOT NULL,
        assigned_rm TEXT NOT NULL, aum_band TEXT NOT NULL, risk_level TEXT NOT NULL,
        risk_expires_on TEXT, birthday TEXT, preferred_language TEXT NOT NULL,
        preferences TEXT NOT NULL, masked_id_number TEXT NOT NULL, masked_account TEXT NOT NULL
    );
    CREATE TABLE crm_holdings (
        holding_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, product_id TEXT NOT NULL,
        category TEXT NOT NULL, amount REAL NOT NULL, opened_on TEXT NOT NULL, matures_on TEXT
    );
    CREATE INDEX crm_holdings_customer ON crm_holdings(customer_id);
    CREATE TABLE crm_transactions (
        transaction_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, on_date TEXT NOT NULL,
        product_id TEXT NOT NULL, category TEXT NOT NULL, amount REAL NOT NULL, kind TEXT NOT NULL
    );
    CREATE INDEX crm_transactions_customer ON crm_transactions(customer_id, on_date);
    CREATE TABLE crm_interactions (
        interaction_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, on_date TEXT NOT NULL,
        channel TEXT NOT NULL, summary TEXT NOT NULL, offered_product_id TEXT NOT NULL,
        result TEXT NOT NULL
    );
    CREATE INDEX crm_interactions_customer ON crm_interactions(customer_id, on_date);
    CREATE TABLE crm_products (
        product_id TEXT PRIMARY KEY, name_zh TEXT NOT NULL, name_en TEXT NOT NULL,
        category TEXT NOT NULL, risk_rating TEXT NOT NULL, min_amount REAL NOT NULL,
        tenure_days INTEGER NOT NULL, sale_from TEXT, sale_until TEXT, segments TEXT NOT NULL
    );
    CREATE TABLE crm_shown (
        visit_id TEXT NOT NULL, product_id TEXT NOT NULL, customer_id TEXT NOT NULL,
        rm_id TEXT NOT NULL, segment TEXT NOT NULL, shown_on TEXT NOT NULL, rank INTEGER NOT NULL,
        reason TEXT NOT NULL, PRIMARY KEY (visit_id, product_id)
    );
    CREATE INDEX crm_shown_customer ON crm_shown(customer_id, product_id, shown_on);
    CREATE TABLE crm_outcomes (
        message_id TEXT PRIMARY KEY, visit_id TEXT NOT NULL, arrival_id TEXT NOT NULL,
        customer_id TEXT NOT NULL, rm_id TEXT NOT NULL, result TEXT NOT NULL,
        product_ids TEXT NOT NULL, follow_up_on TEXT, note TEXT NOT NULL, sent_at TEXT NOT NULL
    );
    CREATE INDEX crm_outcomes_visit ON crm_outcomes(visit_id);
    CREATE TABLE crm_attributions (
        transaction_id TEXT PRIMARY KEY, visit_id TEXT NOT NULL, customer_id TEXT NOT NULL,
        product_id TEXT NOT NULL, rm_id TEXT NOT NULL, segment TEXT NOT NULL,
        shown_on TEXT NOT NULL, purchased_on TEXT NOT NULL, amount REAL NOT NULL
    );
    """,
    # The visits the edge announced: an RM's outcome must be for the visit's customer.
    """
    CREATE TABLE crm_visits (
        visit_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL, seen_on TEXT NOT NULL
    );
    CREATE INDEX crm_visits_customer ON crm_visits(customer_id);
    """,
)


@dataclass(frozen=True)
class CrmCustomer:
    customer_id: str
    name: str
    tier: str
    assigned_rm: str
    aum_band: str
    risk_level: str
    risk_expires_on: date | None
    birthday: date | None
    preferred_language: str
    preferences: tuple[str, ...]
    masked_id_number: str
    masked_account: str

    def row(self) -> tuple[object, ...]:
        return (
            self.customer_id, self.name, self.tier, self.assigned_rm, self.aum_band, self.risk_level,
            _iso(self.risk_expires_on), _iso(self.birthday), self.preferred_language,
            json.dumps(list(self.preferences), ensure_ascii=False), self.masked_id_number,
            self.masked_account,
        )

    @classmethod
    def from_row(cls, r: tuple[object, ...]) -> CrmCustomer:
        return cls(
            str(r[0]), str(r[1]), str(r[2]), str(r[3]), str(r[4]), str(r[5]), _date(r[6]),
            _date(r[7]), str(r[8]), tuple(json.loads(str(r[9]))), str(r[10]), str(r[11]),
        )


@dataclass(frozen=True)
class HoldingRecord:
    holding_id: str
    customer_id: str
    product_id: str
    category: str
    amount: float
    opened_on: date
    matures_on: date | None

    def row(self) -> tuple[object, ...]:
        return (self.holding_id, self.customer_id, self.product_id, self.category, self.amount,
                self.opened_on.isoformat(), _iso(self.matures_on))

    @classmethod
    def from_row(cls, r: tuple[object, ...]) -> HoldingRecord:
        opened = _date(r[5])
        assert opened is not None
        return cls(str(r[0]), str(r[1]), str(r[2]), str(r[3]), float(str(r[4])), opened, _date(r[6]))


@dataclass(frozen=True)
class TransactionRecord:
    transaction_id: str
    customer_id: str
    on: date
    product_id: str
    category: str
    amount: float
    kind: str  # buy | redeem

    def row(self) -> tuple[object, ...]:
        return (self.transaction_id, self.customer_id, self.on.isoformat(), self.product_id,
                self.category, self.amount, self.kind)

    @classmethod
    def from_row(cls, r: tuple[object, ...]) -> TransactionRecord:
        on = _date(r[2])
        assert on is not None
        return cls(str(r[0]), str(r[1]), on, str(r[3]), str(r[4]), float(str(r[5])), str(r[6]))


@dataclass(frozen=True)
class InteractionRecord:
    interaction_id: str
    customer_id: str
    on: date
    channel: str  # visit | call | message | event
    summary: str
    offered_product_id: str  # "" when nothing was offered
    result: str  # "" | accepted | declined | pending

    def row(self) -> tuple[object, ...]:
        return (self.interaction_id, self.customer_id, self.on.isoformat(), self.channel,
                self.summary, self.offered_product_id, self.result)

    @classmethod
    def from_row(cls, r: tuple[object, ...]) -> InteractionRecord:
        on = _date(r[2])
        assert on is not None
        return cls(str(r[0]), str(r[1]), on, str(r[3]), str(r[4]), str(r[5]), str(r[6]))


Record = CrmCustomer | HoldingRecord | TransactionRecord | InteractionRecord | Product

# kind -> (table, key column, record class)
TABLES: dict[str, tuple[str, str, type]] = {
    "products": ("crm_products", "product_id", Product),
    "customers": ("crm_customers", "customer_id", CrmCustomer),
    "holdings": ("crm_holdings", "holding_id", HoldingRecord),
    "transactions": ("crm_transactions", "transaction_id", TransactionRecord),
    "interactions": ("crm_interactions", "interaction_id", InteractionRecord),
}
KINDS = tuple(TABLES)  # also the order a multi-file import applies them in


def _iso(day: date | None) -> str | None:
    return day.isoformat() if day else None


def _date(value: object) -> date | None:
    return date.fromisoformat(str(value)) if value else None


def _create_private_file(path: Path) -> None:
    # Customer names and holdings: readable by the service account only (0600 file and
    # WAL, 0700 folder when it is made here; an older loose file is narrowed).
    private_database(path)


class CrmStore:
    """One connection to the CRM tables.  Use :meth:`open` and close it (or ``with``)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        # One connection shared by the daemon's threads: writers and multi-query readers hold this.
        self.lock = threading.RLock()

    @classmethod
    def open(cls, path: Path | str, create: bool = True) -> CrmStore:
        """The CRM at ``path``; with ``create=False`` (every read-only command) a missing
        file is an error naming it, never a new empty database."""
        path = Path(path)
        if not create and not path.is_file():
            raise CrmError(f"no CRM database at {path}: import one first (branch-edge crm import "
                           "or crm demo), or point --db / [crm] path at it")
        try:
            if create:
                _create_private_file(path)
            conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                   check_same_thread=False)  # callers serialise with a lock
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            conn.execute("PRAGMA journal_mode = WAL")
            store = cls(conn, path)
            store._migrate()
        except (OSError, sqlite3.Error) as err:
            raise CrmError(f"cannot open CRM database {path}: {err}") from err
        return store

    def _migrate(self) -> None:
        has_meta = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'crm_meta'").fetchone()
        version = int(self._meta("schema_version") or 0) if has_meta else 0
        if version > len(CRM_MIGRATIONS):
            raise CrmError(f"{self.path}: CRM schema {version} is newer than this program")
        for number in range(version, len(CRM_MIGRATIONS)):
            with self.transaction() as c:
                # statement by statement: executescript() would COMMIT our transaction
                for statement in CRM_MIGRATIONS[number].split(";"):
                    if statement.strip():
                        c.execute(statement)
                self._set_meta("schema_version", str(number + 1))

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> CrmStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing: an error inside rolls every write back."""
        with self.lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _meta(self, key: str) -> str | None:
        row = self._conn.execute("SELECT value FROM crm_meta WHERE key = ?", (key,)).fetchone()
        return str(row[0]) if row else None

    def _set_meta(self, key: str, value: str) -> None:
        self._conn.execute("INSERT INTO crm_meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET "
                           "value = excluded.value", (key, value))

    def data_version(self) -> int:
        """Bumped by every import that changed something: cached models refit when it moves."""
        return int(self._meta("data_version") or 0)

    # -- writing -------------------------------------------------------------------

    def upsert(self, kind: str, records: list[Record]) -> tuple[int, int, int]:
        """Insert or replace records by key in one transaction: (inserted, updated, unchanged)."""
        table, key, _ = TABLES[kind]
        counts = [0, 0, 0]
        with self.transaction() as c:
            for record in records:
                row = record.row()
                old = c.execute(f"SELECT * FROM {table} WHERE {key} = ?", (row[0],)).fetchone()
                slot = 0 if old is None else (2 if tuple(old) == row else 1)
                counts[slot] += 1
                if slot < 2:
                    marks = ", ".join("?" * len(row))
                    c.execute(f"INSERT OR REPLACE INTO {table} VALUES ({marks})", row)
            if counts[0] or counts[1]:
                self._set_meta("data_version", str(self.data_version() + 1))
        return counts[0], counts[1], counts[2]

    def execute(self, sql: str, params: tuple[object, ...] = ()) -> sqlite3.Cursor:
        return self._conn.execute(sql, params)

    # -- reading -------------------------------------------------------------------

    def known_ids(self, kind: str) -> set[str]:
        table, key, _ = TABLES[kind]
        return {str(r[0]) for r in self._conn.execute(f"SELECT {key} FROM {table}")}

    def customer(self, customer_id: str) -> CrmCustomer | None:
        row = self._conn.execute(
            "SELECT * FROM crm_customers WHERE customer_id = ?", (customer_id,)).fetchone()
        return CrmCustomer.from_row(tuple(row)) if row else None

    def customers(self) -> list[CrmCustomer]:
        rows = self._conn.execute("SELECT * FROM crm_customers ORDER BY customer_id")
        return [CrmCustomer.from_row(tuple(r)) for r in rows]

    def products(self) -> list[Product]:
        rows = self._conn.execute("SELECT * FROM crm_products ORDER BY product_id")
        return [Product.from_row(tuple(r)) for r in rows]

    def holdings(self, customer_id: str | None = None) -> list[HoldingRecord]:
        sql, params = _where("SELECT * FROM crm_holdings", customer_id)
        return [HoldingRecord.from_row(tuple(r)) for r in self._conn.execute(sql + " ORDER BY holding_id",
                                                                              params)]

    def transactions(self, customer_id: str | None = None) -> list[TransactionRecord]:
        sql, params = _where("SELECT * FROM crm_transactions", customer_id)
        rows = self._conn.execute(sql + " ORDER BY on_date, transaction_id", params)
        return [TransactionRecord.from_row(tuple(r)) for r in rows]

    def interactions(self, customer_id: str | None = None) -> list[InteractionRecord]:
        sql, params = _where("SELECT * FROM crm_interactions", customer_id)
        rows = self._conn.execute(sql + " ORDER BY on_date DESC, interaction_id", params)
        return [InteractionRecord.from_row(tuple(r)) for r in rows]


def _where(sql: str, customer_id: str | None) -> tuple[str, tuple[object, ...]]:
    return (sql + " WHERE customer_id = ?", (customer_id,)) if customer_id else (sql, ())
