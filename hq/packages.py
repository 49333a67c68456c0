"""Building a branch's next gallery package: the templates of the customers it serves that it
does not have yet, and the erasures it has not confirmed, on top of its previous version.

Versions count per branch from 1; each package names the one before it (``base_version``),
so a branch applies them in order and refuses to go back.  A package file is written 0600
(it is encrypted for the branch, but it is still biometric data in transit) and recorded in
the registry; ``branch-hq package send`` (or ``run``) delivers it over MQTT, or it is carried
to an air-gapped branch as a file.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

from hq.errors import HqError
from hq.registry import PackageRow, Registry
from mqtt.files import create_private, private_dir
from mqtt.messages import GALLERY_CHUNK_BYTES, GalleryChunk
from mqtt.package import (
    Consent,
    Customer,
    EmbeddingContract,
    PackageErasure,
    PackageError,
    Payload,
    Template,
    load_public_key,
    seal,
    verified_header,
)


def build_package(registry: Registry, branch_id: str, contract: EmbeddingContract,
                  signing_key: Ed25519PrivateKey, out_dir: Path) -> PackageRow | None:
    """The branch's next package (written and recorded), or None when it has nothing new."""
    recipient: X25519PublicKey = load_public_key(registry.branch_key(branch_id), X25519PublicKey,
                                                 f"branch {branch_id}'s key")
    customers, template_ids = [], []
    for cid in registry.served(branch_id):
        new = registry.unshipped(branch_id, cid, contract.model_pack, contract.recognizer_sha256)
        info = registry.customer(cid)
        if not new or info is None:
            continue
        consent = Consent(info["consent_channel"], datetime.fromisoformat(info["consent_time"]))
        customers.append(Customer(cid, info["display_name"], info["tier"], info["assigned_rm"], consent,
                                  tuple(Template(t.source_sha256, t.embedding) for t in new)))
        template_ids += [t.id for t in new]
    served = {c.customer_id for c in customers}
    erasures = [PackageErasure(cid, eid, reason)
                for eid, cid, reason in registry.pending_erasures(branch_id) if cid not in served]
    if not customers and not erasures:
        return None
    base = registry.last_version(branch_id)
    try:
        data = seal(Payload(tuple(customers), tuple(erasures)), branch_id=branch_id, version=base + 1,
                    base_version=base, contract=contract, signing_key=signing_key, recipient=recipient)
    except PackageError as err:
        raise HqError(f"package for {branch_id} not built: {err}") from err
    header = verified_header(data, signing_key.public_key())
    folder = out_dir / branch_id
    private_dir(folder)
    path = folder / f"gallery-{branch_id}-v{base + 1:06d}.pkg"
    create_private(path)
    path.write_bytes(data)
    row = PackageRow(branch_id, base + 1, base, header.package_id, hashlib.sha256(data).hexdigest(),
                     len(data), path, "built", "", 0, None)
    registry.record_package(row, customers=len(customers), templates=template_ids, erasures=len(erasures))
    return row


def chunks(branch_id: str, data: bytes, version: int,
           indices: list[int] | None = None) -> list[GalleryChunk]:
    """The package as ``gallery_chunk`` messages (all, or those at ``indices``)."""
    sha = hashlib.sha256(data).hexdigest()
    count = -(-len(data) // GALLERY_CHUNK_BYTES)
    wanted = range(count) if indices is None else [i for i in indices if 0 <= i < count]
    out = []
    for index in wanted:
        piece = data[index * GALLERY_CHUNK_BYTES:(index + 1) * GALLERY_CHUNK_BYTES]
        out.append(GalleryChunk(branch_id=branch_id, package_sha256=sha, package_version=version,
                                size=len(data), chunk_count=count, index=index,
                                chunk_sha256=hashlib.sha256(piece).hexdigest(),
                                data_b64=base64.b64encode(piece).decode("ascii")))
    return out
