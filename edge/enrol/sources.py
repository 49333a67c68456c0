"""What to enrol: customer folders, or a CSV mapping photos to customers.

Folder mode: ``DIR/<customer_id>/<photo files>``; hidden files are skipped,
every other file is tried (a stray text file is reported as ``not_an_image``).
CSV mode: one row per photo, columns ``customer_id, photo`` (path relative to
DIR) and optionally ``display_name, tier, assigned_rm, consent_channel,
consent_time``.  A CSV with unknown columns, a missing column, a photo path
outside DIR or conflicting customer fields is refused as a whole, naming the
line: bad input must not half-enrol a branch.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from edge.core.errors import BranchEdgeError, StoreError
from edge.store.base import parse_time, utc_now

log = logging.getLogger(__name__)

CSV_REQUIRED = ("customer_id", "photo")
CSV_OPTIONAL = ("display_name", "tier", "assigned_rm", "consent_channel", "consent_time")
_CUSTOMER_FIELDS = ("display_name", "tier", "assigned_rm", "consent_channel", "consent_time")


class EnrolInputError(BranchEdgeError):
    """The photos folder or the customers CSV cannot be used as given."""


@dataclass(frozen=True)
class PhotoItem:
    customer_id: str
    path: Path
    name: str  # as shown in reports: the path relative to the photos folder


@dataclass(frozen=True)
class CustomerItem:
    customer_id: str
    photos: tuple[PhotoItem, ...]
    display_name: str | None = None
    tier: str | None = None
    assigned_rm: str | None = None
    consent_channel: str | None = None
    consent_time: datetime | None = None


def _require_dir(photos_dir: Path) -> None:
    if not photos_dir.is_dir():
        raise EnrolInputError(f"photos folder {photos_dir} does not exist or is not a folder")


def customers_from_folders(photos_dir: Path, consent_channel: str | None = None,
                           consent_time: datetime | None = None
                           ) -> tuple[list[CustomerItem], list[str]]:
    """One customer per sub-folder (folder name = customer id); (customers, ignored files)."""
    _require_dir(photos_dir)
    if consent_channel is not None and not consent_channel.strip():
        raise EnrolInputError("--consent-channel is empty")
    when = (consent_time or utc_now()) if consent_channel else None
    customers, ignored = [], []
    for entry in sorted(photos_dir.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            ignored.append(entry.name)
            continue
        photos = tuple(PhotoItem(entry.name, f, f"{entry.name}/{f.name}")
                       for f in sorted(entry.iterdir())
                       if not f.name.startswith(".") and not f.is_dir())
        customers.append(CustomerItem(entry.name, photos, consent_channel=consent_channel,
                                      consent_time=when))
    if ignored:
        log.warning("%d files directly in %s ignored: photos go in customer folders",
                    len(ignored), photos_dir)
    return customers, ignored


def customers_from_csv(photos_dir: Path, csv_path: Path) -> list[CustomerItem]:
    _require_dir(photos_dir)
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as err:
        raise EnrolInputError(f"cannot read customers CSV {csv_path}: {err}") from err
    reader = csv.DictReader(text.splitlines())
    _check_columns(csv_path, reader.fieldnames)
    fields: dict[str, dict[str, tuple[str, int]]] = {}
    photos: dict[str, list[PhotoItem]] = {}
    for line, row in enumerate(reader, start=2):
        cid = (row.get("customer_id") or "").strip()
        if not cid or not (row.get("photo") or "").strip():
            raise EnrolInputError(f"{csv_path}:{line}: customer_id and photo must not be empty")
        photos.setdefault(cid, []).append(_csv_photo(photos_dir, csv_path, line, cid, row))
        known = fields.setdefault(cid, {})
        for name in _CUSTOMER_FIELDS:
            value = (row.get(name) or "").strip()
            if value and known.setdefault(name, (value, line))[0] != value:
                raise EnrolInputError(f"{csv_path}:{line}: {name} of {cid} differs from line "
                                      f"{known[name][1]}")
    return [_csv_customer(csv_path, cid, items, fields[cid]) for cid, items in photos.items()]


def _check_columns(csv_path: Path, columns: Sequence[str] | None) -> None:
    names = [c.strip() for c in columns or []]
    missing = [c for c in CSV_REQUIRED if c not in names]
    unknown = [c for c in names if c not in CSV_REQUIRED + CSV_OPTIONAL]
    if missing or unknown:
        raise EnrolInputError(
            f"{csv_path}: " + "; ".join(
                ([f"missing column(s) {', '.join(missing)}"] if missing else [])
                + ([f"unknown column(s) {', '.join(unknown)}"] if unknown else []))
            + f" (columns: {', '.join(CSV_REQUIRED + CSV_OPTIONAL)})")


def _csv_photo(photos_dir: Path, csv_path: Path, line: int, cid: str,
               row: dict[str, str]) -> PhotoItem:
    relative = Path(row["photo"].strip())
    path = (photos_dir / relative).resolve()
    if relative.is_absolute() or not path.is_relative_to(photos_dir.resolve()):
        raise EnrolInputError(f"{csv_path}:{line}: photo {relative} is outside {photos_dir}")
    return PhotoItem(cid, photos_dir / relative, relative.as_posix())


def _csv_customer(csv_path: Path, cid: str, items: list[PhotoItem],
                  fields: dict[str, tuple[str, int]]) -> CustomerItem:
    value = {name: fields[name][0] if name in fields else None for name in _CUSTOMER_FIELDS}
    channel, stamp = value["consent_channel"], value["consent_time"]
    if bool(channel) != bool(stamp):
        line = fields.get("consent_channel", fields.get("consent_time", ("", 0)))[1]
        raise EnrolInputError(f"{csv_path}:{line}: {cid}: consent_channel and consent_time "
                              "go together (give both or neither)")
    try:
        granted = parse_time(stamp) if stamp else None
    except StoreError as err:
        raise EnrolInputError(f"{csv_path}:{fields['consent_time'][1]}: {err}") from err
    return CustomerItem(cid, tuple(items), value["display_name"], value["tier"],
                        value["assigned_rm"], channel, granted)
