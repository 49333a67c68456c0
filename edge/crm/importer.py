"""Importing CRM exports and the product catalogue (CSV or JSON).

Every row is validated before anything is written; rows that fail are
reported with their line (CSV) or record number (JSON) and every reason, and
the valid rows of the file are applied together in one transaction, keyed by
their ids, so importing the same file twice changes nothing the second time.
A file that cannot be read at all (missing, wrong columns, not JSON) is an
error and nothing of it is applied.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from edge.core.files import UnsafeFileError, read_regular_file
from edge.core.suitability import CUSTOMER_LEVELS, PRODUCT_RATINGS
from edge.core.text_encoding import TextEncodingError, decode_text
from edge.crm.catalogue import CATEGORIES, Product
from edge.crm.records import (
    KINDS,
    CrmCustomer,
    CrmError,
    CrmStore,
    HoldingRecord,
    InteractionRecord,
    Record,
    TransactionRecord,
)

ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
LANGUAGES = ("zh-CN", "en")
CHANNELS = ("visit", "call", "message", "event")
RESULTS = ("", "accepted", "declined", "pending")
MAX_AMOUNT = 1e11
# A CRM export of a branch is megabytes; a file over this is refused before it is read.
MAX_IMPORT_BYTES = 256 * 1024 * 1024
Rows = list[tuple[str, dict[str, str] | None]]

REQUIRED: dict[str, tuple[str, ...]] = {
    "products": ("product_id", "name_zh", "name_en", "category", "risk_rating", "min_amount"),
    "customers": ("customer_id", "name", "tier", "assigned_rm", "risk_level", "risk_expires_on"),
    "holdings": ("holding_id", "customer_id", "product_id", "category", "amount", "opened_on"),
    "transactions": ("transaction_id", "customer_id", "date", "product_id", "category", "amount", "kind"),
    "interactions": ("interaction_id", "customer_id", "date", "channel", "summary"),
}


class RowError(Exception):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class Rejection:
    where: str  # "line 7" (CSV) or "record 3" (JSON)
    reasons: list[str]


@dataclass
class ImportReport:
    kind: str
    source: str
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list[Rejection] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind, "source": self.source, "rows": self.rows, "inserted": self.inserted,
            "updated": self.updated, "unchanged": self.unchanged,
            "rejected": [{"where": r.where, "reasons": r.reasons} for r in self.rejected],
        }


class Row:
    """Reads typed fields from one raw row, collecting every problem."""

    def __init__(self, raw: dict[str, str]) -> None:
        self.raw = raw
        self.problems: list[str] = []

    def text(self, key: str, max_length: int = 200, required: bool = True) -> str:
        value = self.raw.get(key, "").strip()
        if required and not value:
            self.problems.append(f"{key}: missing")
        elif len(value) > max_length:
            self.problems.append(f"{key}: longer than {max_length} characters")
        return value

    def ident(self, key: str, required: bool = True) -> str:
        value = self.text(key, 64, required)
        if value and not ID_RE.match(value):
            self.problems.append(f"{key}: {value!r} is not a valid id (letters, digits, _ . @ -)")
        return value

    def choice(self, key: str, options: tuple[str, ...], required: bool = True) -> str:
        value = self.text(key, 64, required)
        if (value or required) and value not in options and self.raw.get(key, "").strip():
            self.problems.append(f"{key}: {value!r} is not one of {', '.join(o for o in options if o)}")
        return value

    def day(self, key: str, required: bool = True) -> date | None:
        value = self.text(key, 10, required)
        if not value:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.problems.append(f"{key}: {value!r} is not a date (YYYY-MM-DD)")
            return None

    def amount(self, key: str, required: bool = True) -> float:
        value = self.text(key, 32, required).replace(",", "")
        if not value:
            return 0.0
        try:
            number = float(value)
        except ValueError:
            self.problems.append(f"{key}: {value!r} is not a number")
            return 0.0
        if not 0 <= number <= MAX_AMOUNT:
            self.problems.append(f"{key}: {value} is out of range (0 to {MAX_AMOUNT:.0f})")
        return number

    def items(self, key: str) -> tuple[str, ...]:
        return tuple(p.strip() for p in self.text(key, 500, False).split(";") if p.strip())

    def done(self) -> None:
        if self.problems:
            raise RowError(self.problems)


def mask_id_number(value: str) -> str:
    value = value.strip()
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "*" * (len(value) - 8) + value[-4:]


def mask_account(value: str) -> str:
    digits = value.replace(" ", "").strip()
    return f"**** {digits[-4:]}" if len(digits) > 4 else ("*" * len(digits))


def parse_product(r: Row) -> Product:
    product = Product(
        r.ident("product_id"), r.text("name_zh", 120), r.text("name_en", 120),
        r.choice("category", CATEGORIES), r.choice("risk_rating", PRODUCT_RATINGS),
        r.amount("min_amount"), int(r.amount("tenure_days", required=False)),
        r.day("sale_from", False), r.day("sale_until", False), r.items("segments"),
    )
    if product.sale_from and product.sale_until and product.sale_until < product.sale_from:
        r.problems.append("sale_until: before sale_from")
    r.done()
    return product


def parse_customer(r: Row) -> CrmCustomer:
    customer = CrmCustomer(
        r.ident("customer_id"), r.text("name", 80), r.text("tier", 32), r.ident("assigned_rm"),
        r.text("aum_band", 32, False), r.choice("risk_level", CUSTOMER_LEVELS),
        r.day("risk_expires_on"), r.day("birthday", False),
        r.choice("preferred_language", LANGUAGES, False) or "zh-CN", r.items("preferences"),
        mask_id_number(r.text("id_number", 32, False)), mask_account(r.text("account_number", 32, False)),
    )
    r.done()
    return customer


def parse_holding(r: Row) -> HoldingRecord:
    opened = r.day("opened_on")
    holding = HoldingRecord(
        r.ident("holding_id"), r.ident("customer_id"), r.ident("product_id"),
        r.choice("category", CATEGORIES), r.amount("amount"), opened or date.min,
        r.day("matures_on", False),
    )
    if opened and holding.matures_on and holding.matures_on < opened:
        r.problems.append("matures_on: before opened_on")
    r.done()
    return holding


def parse_transaction(r: Row) -> TransactionRecord:
    txn = TransactionRecord(
        r.ident("transaction_id"), r.ident("customer_id"), r.day("date") or date.min,
        r.ident("product_id"), r.choice("category", CATEGORIES), r.amount("amount"),
        r.choice("kind", ("buy", "redeem")),
    )
    r.done()
    return txn


def parse_interaction(r: Row) -> InteractionRecord:
    interaction = InteractionRecord(
        r.ident("interaction_id"), r.ident("customer_id"), r.day("date") or date.min,
        r.choice("channel", CHANNELS), r.text("summary", 200),
        r.ident("offered_product_id", required=False), r.choice("result", RESULTS, required=False),
    )
    r.done()
    return interaction


PARSERS: dict[str, Callable[[Row], Record]] = {
    "products": parse_product, "customers": parse_customer, "holdings": parse_holding,
    "transactions": parse_transaction, "interactions": parse_interaction,
}


def read_rows(path: Path, kind: str, encoding: str | None = None) -> list[tuple[str, dict[str, str] | None]]:
    """(where, raw row) pairs; a JSON record that is not an object has raw None.

    ``encoding`` None: UTF-8 (with or without BOM), else GB18030 (Excel's CSV in China)."""
    try:
        raw = read_regular_file(path, MAX_IMPORT_BYTES, "CRM file")
        text, _ = decode_text(raw, str(path), encoding)
    except UnsafeFileError as err:
        raise CrmError(f"{path}: no such file" if err.code == "missing" else str(err)) from err
    except TextEncodingError as err:
        raise CrmError(str(err)) from err
    if path.suffix.lower() == ".json":
        return _json_rows(text, path, kind)
    return _csv_rows(text, path, kind)


def _csv_rows(text: str, path: Path, kind: str) -> list[tuple[str, dict[str, str] | None]]:
    reader = csv.DictReader(text.splitlines(keepends=True))
    try:
        return _read_csv(reader, path, kind)
    except csv.Error as err:  # a field over the csv module's size limit
        raise CrmError(f"{path}: not a readable CSV file near line {reader.line_num}: {err}") from err


def _read_csv(reader: csv.DictReader[str], path: Path, kind: str) -> list[tuple[str, dict[str, str] | None]]:
    missing = [c for c in REQUIRED[kind] if c not in (reader.fieldnames or [])]
    if missing:
        raise CrmError(f"{path}: not a {kind} file: missing column(s) {', '.join(missing)}")
    rows: list[tuple[str, dict[str, str] | None]] = []
    for raw in reader:
        extra = raw.pop(None, None)
        cleaned = {k: v or "" for k, v in raw.items()}
        if extra:
            cleaned["__extra__"] = "x"
        rows.append((f"line {reader.line_num}", cleaned))
    return rows


def _json_rows(text: str, path: Path, kind: str) -> list[tuple[str, dict[str, str] | None]]:
    try:
        data = json.loads(text)
    except (json.JSONDecodeError, RecursionError) as err:
        raise CrmError(f"{path}: not valid JSON: {err}") from err
    if isinstance(data, dict):
        data = data.get(kind)
    if not isinstance(data, list):
        raise CrmError(f"{path}: expected a JSON array of {kind} (or an object with key {kind!r})")
    return [(f"record {i}", _stringify(item)) for i, item in enumerate(data, start=1)]


def _stringify(item: object) -> dict[str, str] | None:
    if not isinstance(item, dict):
        return None
    out = {}
    for key, value in item.items():
        joined = ";".join(str(v) for v in value) if isinstance(value, list) else value
        out[str(key)] = "" if joined is None else str(joined)
    return out


def validate(rows: list[tuple[str, dict[str, str] | None]], kind: str, known_customers: set[str],
             report: ImportReport) -> list[Record]:
    valid: list[Record] = []
    first_seen: dict[str, str] = {}
    for where, raw in rows:
        try:
            record = _parse_one(raw, kind, known_customers)
        except RowError as problems:
            report.rejected.append(Rejection(where, problems.reasons))
            continue
        key = str(record.row()[0])
        if key in first_seen:
            report.rejected.append(Rejection(where, [f"duplicate id {key!r} (first at {first_seen[key]})"]))
            continue
        first_seen[key] = where
        valid.append(record)
    return valid


def _parse_one(raw: dict[str, str] | None, kind: str, known_customers: set[str]) -> Record:
    if raw is None:
        raise RowError(["not a JSON object"])
    if raw.pop("__extra__", None):
        raise RowError(["more values than columns"])
    row = Row(raw)
    record = PARSERS[kind](row)
    owner = getattr(record, "customer_id", None)
    if kind != "customers" and owner is not None and owner not in known_customers:
        raise RowError([f"customer_id: {owner!r} is not a known customer (import customers first)"])
    return record


def import_file(crm: CrmStore, kind: str, path: Path) -> ImportReport:
    if kind not in KINDS:
        raise CrmError(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    return _apply(crm, kind, path, read_rows(path, kind))


def _apply(crm: CrmStore, kind: str, path: Path,
           rows: list[tuple[str, dict[str, str] | None]]) -> ImportReport:
    report = ImportReport(kind, str(path), rows=len(rows))
    valid = validate(rows, kind, crm.known_ids("customers"), report)
    report.inserted, report.updated, report.unchanged = crm.upsert(kind, valid)
    return report


def read_files(files: dict[str, Path], encoding: str | None = None) -> dict[str, Rows]:
    """Every file read and its columns checked, in dependency order (products, customers,
    then the rest); nothing is opened for writing, so a bad file creates no database."""
    unknown = sorted(set(files) - set(KINDS))
    if unknown:
        raise CrmError(f"unknown kind(s) {', '.join(unknown)}; one of {', '.join(KINDS)}")
    return {kind: read_rows(files[kind], kind, encoding) for kind in KINDS if kind in files}


def apply_files(crm: CrmStore, files: dict[str, Path], rows: dict[str, Rows]) -> list[ImportReport]:
    """Apply what :func:`read_files` read, in its order."""
    return [_apply(crm, kind, files[kind], kind_rows) for kind, kind_rows in rows.items()]


def import_files(crm: CrmStore, files: dict[str, Path], encoding: str | None = None) -> list[ImportReport]:
    """Import several files in dependency order (products, customers, then the rest).
    Every file is read and its columns checked before anything is written."""
    return apply_files(crm, files, read_files(files, encoding))
