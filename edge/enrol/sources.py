"""What to enrol: customer folders, or a CSV mapping photos to customers.

Folder mode: ``DIR/<customer_id>/<photo files>``; hidden files are skipped,
every other file is tried (a stray text file is reported as ``not_an_image``).
Every photo gets its own verdict: one whose real path leaves DIR (a symlink
to another folder) is ``outside_folder``, a device, FIFO or socket is
``not_a_regular_file``, and a file name that is not valid UTF-8 (a zip of
GBK-named photos from Windows) is enrolled under a name with ``\\xNN``
escapes, with a note; nothing about one photo stops the run.
CSV mode: one row per photo, columns ``customer_id, photo`` (path relative to
DIR) and optionally ``display_name, tier, assigned_rm, consent_channel,
consent_time``.  A CSV with unknown columns, a missing column, a photo path
outside DIR or conflicting customer fields is refused as a whole, naming the
line: bad input must not half-enrol a branch.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from edge.core.errors import BranchEdgeError, ImageError, StoreError
from edge.core.files import UnsafeFileError, read_regular_file
from edge.core.text_encoding import TextEncodingError, decode_text
from edge.store.base import parse_time, utc_now

log = logging.getLogger(__name__)

CSV_REQUIRED = ("customer_id", "photo")
CSV_OPTIONAL = ("display_name", "tier", "assigned_rm", "consent_channel", "consent_time")
_CUSTOMER_FIELDS = ("display_name", "tier", "assigned_rm", "consent_channel", "consent_time")
MAX_CSV_BYTES = 64 * 1024 * 1024  # a row is ~100 bytes: room for hundreds of thousands of photos


class EnrolInputError(BranchEdgeError):
    """The photos folder or the customers CSV cannot be used as given."""


@dataclass(frozen=True)
class PhotoItem:
    customer_id: str
    path: Path
    name: str  # as shown in reports: the path relative to the photos folder
    root: Path | None = None  # the photos folder the file must stay inside
    notes: tuple[str, ...] = ()  # oddities of the file itself (e.g. its name's encoding)


def safe_file_name(name: str) -> str:
    """A file name as text: undecodable bytes (``os.fsdecode`` surrogates) become ``\\xNN``."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def name_notes(name: str) -> tuple[str, ...]:
    if safe_file_name(name) == name:
        return ()
    return ("the file name is not valid UTF-8 (a GBK name?); shown with \\x escapes",)


def read_photo(item: PhotoItem, limit: int) -> bytes:
    """The photo's bytes; ImageError (``outside_folder``, ``not_a_regular_file``, ``too_large``,
    ``missing``, ``unreadable``) when it must not or cannot be read."""
    if item.root is not None:
        try:
            inside = item.path.resolve().is_relative_to(item.root.resolve())
        except (OSError, RuntimeError) as err:  # a symlink loop
            raise ImageError(f"{item.name}: cannot resolve the path: {err}", "unreadable") from err
        if not inside:
            raise ImageError(f"{item.name}: the file is outside the photos folder (a symlink?)",
                             "outside_folder")
    try:
        return read_regular_file(item.path, limit, "photo")
    except UnsafeFileError as err:
        why = {"not_a_regular_file": "not a regular file (a device, FIFO or socket)",
               "too_large": f"larger than the {limit} byte limit", "missing": "no such file",
               "is_a_folder": "a folder, not a photo"}.get(err.code, str(err))
        code = {"is_a_folder": "not_an_image"}.get(err.code, err.code)
        raise ImageError(f"{item.name}: {why}", code) from err


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
            ignored.append(safe_file_name(entry.name))
            continue
        # An undecodable folder name becomes an id with a backslash: refused as invalid.
        cid = safe_file_name(entry.name)
        photos = tuple(PhotoItem(cid, f, f"{cid}/{safe_file_name(f.name)}", photos_dir, name_notes(f.name))
                       for f in sorted(entry.iterdir())
                       if not f.name.startswith(".") and not f.is_dir())
        customers.append(CustomerItem(cid, photos, consent_channel=consent_channel,
                                      consent_time=when))
    if ignored:
        log.warning("%d files directly in %s ignored: photos go in customer folders",
                    len(ignored), photos_dir)
    return customers, ignored


def customers_from_csv(photos_dir: Path, csv_path: Path, encoding: str | None = None) -> list[CustomerItem]:
    """``encoding`` None: UTF-8 (with or without BOM), else GB18030 (what Excel saves in China)."""
    _require_dir(photos_dir)
    try:
        raw = read_regular_file(csv_path, MAX_CSV_BYTES, "customers CSV")
        text, _ = decode_text(raw, f"customers CSV {csv_path}", encoding)
    except (UnsafeFileError, TextEncodingError) as err:
        raise EnrolInputError(str(err)) from err
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
    return PhotoItem(cid, photos_dir / relative, relative.as_posix(), photos_dir)


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
