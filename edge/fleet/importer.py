"""Importing a gallery package into the branch's store: checked first, applied atomically.

In order, before anything is decrypted: the signature (head office's key), the branch, the
embedding contract (another model pack, recognizer or preprocessing is refused: templates
of two contracts are never mixed), the version order (a version not newer than the one
applied is a rollback or a replay, refused; a delta whose base is not the applied version
waits for the ones in between).  Then the payload is decrypted and applied in one store
transaction: customers, their consent as head office recorded it and their templates,
erasures, and the new version.  The store's gallery generation moves with the templates, so
a running daemon reloads its gallery without a restart.  Local enrolment is untouched:
head office's templates are rows beside the branch's own.

A customer whose consent was withdrawn here after head office recorded it is skipped (and
reported): an older consent never re-enrols someone who withdrew.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edge.commands.erase import forget_waiting_arrivals
from edge.core.errors import BranchEdgeError
from edge.fleet.keys import FleetKeys
from edge.store.database import Store
from mqtt.package import EmbeddingContract, PackageError, Payload, open_package, sha256_hex, verified_header

log = logging.getLogger(__name__)

ACTOR = "hq-package"
VERSION_KEY = "hq_gallery_version"
SHA_KEY = "hq_gallery_sha256"
APPLIED_PREFIX = "hq_package:"  # + package sha256 -> version


class RefusalError(BranchEdgeError):
    """The package is refused; nothing was imported.  ``reason`` is a short category."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class ImportResult:
    state: Literal["applied", "already_applied"]
    package_id: str
    version: int
    sha256: str
    customers_added: int = 0
    templates_added: int = 0
    erasures_applied: int = 0
    arrivals_removed: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # customer id -> reason code

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def gallery_version(store: Store) -> int:
    value = store.meta_value(VERSION_KEY)
    return int(value) if value and value.isdigit() else 0


def applied_version_of(store: Store, package_sha256: str) -> int | None:
    value = store.meta_value(APPLIED_PREFIX + package_sha256)
    return int(value) if value and value.isdigit() else None


def check_package(data: bytes, store: Store, *, branch_id: str, contract: EmbeddingContract,
                  keys: FleetKeys) -> ImportResult | None:
    """Everything that can be checked without the branch's key; an ``already_applied`` result
    for the very package applied before, None when it may be applied.

    Raises:
        RefusalError: bad signature, another branch, another contract, rollback or replay,
            a delta on top of a version this branch does not have.
    """
    try:
        header = verified_header(data, keys.hq)
    except PackageError as err:
        raise RefusalError(err.reason, str(err)) from err
    if header.branch_id != branch_id:
        raise RefusalError("wrong_branch", f"the package is for branch {header.branch_id}, this is "
                           f"branch {branch_id}: refused")
    differences = header.contract.differences(contract)
    if differences:
        raise RefusalError("contract_mismatch", "the package was built for another embedding contract: "
                           + "; ".join(differences) + ". Refused: templates of different models are "
                           "never mixed; ask head office for a package of this branch's contract")
    sha = sha256_hex(data)
    current = gallery_version(store)
    if header.version == current and applied_version_of(store, sha) == current:
        return ImportResult("already_applied", header.package_id, header.version, sha)
    if header.version <= current:
        raise RefusalError("replay", f"package version {header.version} is not newer than version "
                           f"{current} applied here: refused (no rollback, no replay)")
    if header.base_version != current:
        raise RefusalError("out_of_order", f"package version {header.version} applies on top of "
                           f"version {header.base_version}, this branch has version {current}: import "
                           "the packages in between first")
    return None


def import_package(data: bytes, store: Store, *, branch_id: str, contract: EmbeddingContract,
                   keys: FleetKeys, outboxes: Callable[[], list[Path]] = list) -> ImportResult:
    """Check, decrypt and apply ``data`` (a package file's bytes) in one transaction.

    ``outboxes`` lists the MQTT outboxes whose waiting arrivals of erased customers go too.

    Raises:
        RefusalError: see :func:`check_package`; also a payload that does not decrypt or
            parse, or a store error while applying (then nothing was applied).
    """
    done = check_package(data, store, branch_id=branch_id, contract=contract, keys=keys)
    if done is not None:
        return done
    try:
        header, payload = open_package(data, verify_key=keys.hq, recipient_key=keys.branch)
    except PackageError as err:
        raise RefusalError(err.reason, str(err)) from err
    result = ImportResult("applied", header.package_id, header.version, sha256_hex(data))
    erased: list[str] = []
    try:
        with store.transaction():
            if gallery_version(store) != header.base_version:  # another import won the race
                raise RefusalError("out_of_order", "another import changed the gallery version meanwhile")
            _add_customers(store, payload, contract, header.package_id, result)
            erased = _erase(store, payload, result)
            store.set_meta_value(VERSION_KEY, str(header.version))
            store.set_meta_value(SHA_KEY, result.sha256)
            store.set_meta_value(APPLIED_PREFIX + result.sha256, str(header.version))
            store.audit(ACTOR, "gallery_package_imported", branch_id, {
                "package_id": header.package_id, "version": header.version,
                "customers_added": result.customers_added, "templates_added": result.templates_added,
                "erasures_applied": result.erasures_applied, "skipped": len(result.skipped)})
    except BranchEdgeError as err:
        if isinstance(err, RefusalError):
            raise
        raise RefusalError("store_error", f"package not imported (nothing applied): {err}") from err
    if erased:
        store.scrub()
        paths = outboxes()
        result.arrivals_removed = sum(forget_waiting_arrivals(paths, cid) for cid in erased)
    log.info("gallery package imported", extra={
        "version": header.version, "templates": result.templates_added, "erasures": result.erasures_applied})
    return result


def _add_customers(store: Store, payload: Payload, contract: EmbeddingContract, package_id: str,
                   result: ImportResult) -> None:
    for customer in payload.customers:
        cid = customer.customer_id
        if store.active_consent(cid) is None:
            refusal = store.consent_refusal(cid, customer.consent.granted_at)
            if refusal is not None:
                result.skipped[cid] = refusal[0]
                continue
        store.upsert_customer(cid, ACTOR, customer.display_name or None, customer.tier or None,
                              customer.assigned_rm or None)
        store.record_consent(cid, customer.consent.channel, customer.consent.granted_at, ACTOR)
        added = 0
        for template in customer.templates:
            vector = np.frombuffer(template.embedding, dtype="<f4")
            _, created = store.add_template(
                cid, contract.model_pack, vector, quality={"source": "head_office"},
                source_sha256=template.source_sha256, source_name=f"hq-package:{package_id}")
            added += created
        result.templates_added += added
        result.customers_added += 1


def _erase(store: Store, payload: Payload, result: ImportResult) -> list[str]:
    erased = []
    for erasure in payload.erasures:
        cid = erasure.customer_id
        if store.get_customer(cid) is None or store.active_consent(cid) is None:
            continue  # never here, or erased already (its templates went with the consent)
        store.erase_customer(cid, ACTOR, erasure.reason, scrub=False)
        erased.append(cid)
        result.erasures_applied += 1
    return erased
