"""Gallery packages: the signed, encrypted file head office ships to one branch.

Head office builds, per branch, the templates of the customers it enrolled centrally for
that branch; the branch imports them beside its own enrolments.  Both sides speak this
format (like the MQTT messages), so it lives here; it travels as a file (air-gapped
branches) or in ``gallery_chunk`` messages.

Layout (all integers big-endian)::

    MAGIC (8 bytes) | header length (u32) | header (UTF-8 JSON) | ciphertext | signature (64 bytes)

- The *signature* is Ed25519 by head office's signing key over every byte before it; the
  branch holds head office's public key (provisioned) and checks it before it parses
  anything else.
- The *header* is readable without the branch's key: which branch, which version, on top of
  which version (``base_version``: a package is a delta from the previous one: additions
  and erasures), the embedding contract (model pack, recognizer digest, preprocessing,
  dimension: templates of another contract live in another vector space and are refused,
  never mixed) and how the payload is encrypted.
- The *payload* (JSON: customers with their templates and consent, erasures) is encrypted
  for the one branch: an ephemeral X25519 key agreed with the branch's X25519 public key,
  HKDF-SHA256, AES-256-GCM with the magic and the header as associated data.

Everything is bounded before it is parsed: the file size, the header size, the number of
customers, templates and erasures, every string; embeddings must have the contract's
dimension and be finite.  Any refusal is a :class:`PackageError` with a short ``reason``
and a message that says what to do; it never echoes payload values.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import re
import struct
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from mqtt.files import check_secret_mode, create_private, read_bounded

MAGIC = b"BEGALPK1"
FORMAT = 1
SIGNATURE_BYTES = 64
MAX_HEADER_BYTES = 16 * 1024
MAX_PACKAGE_BYTES = 512 * 1024 * 1024  # ~200,000 customers x 5 templates x 512-d, base64
MAX_CUSTOMERS = 500_000
MAX_TEMPLATES_PER_CUSTOMER = 20
MAX_ERASURES = 500_000
MAX_DIMENSION = 4096
ENCRYPTION = "X25519-HKDF-SHA256-AES-256-GCM"
_HKDF_INFO = b"branch-edge gallery package v1 "
_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_CUSTOMER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class PackageError(ValueError):
    """A package that cannot be built or must be refused; ``reason`` is a short category."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


# --- the embedding contract ----------------------------------------------------------------


@dataclass(frozen=True)
class EmbeddingContract:
    """What makes two templates comparable: the same recognizer, fed the same way."""

    model_pack: str
    recognizer_sha256: str
    input_size: tuple[int, int]
    color: str
    mean: float
    std: float
    dimension: int

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["input_size"] = list(self.input_size)
        return out

    @classmethod
    def from_dict(cls, data: Any) -> EmbeddingContract:
        if not isinstance(data, dict) or set(data) != set(cls.__dataclass_fields__):
            raise PackageError("malformed", "package header: contract has missing or unknown fields")
        size = data["input_size"]
        ok = (isinstance(data["model_pack"], str) and len(data["model_pack"]) <= 200
              and isinstance(data["recognizer_sha256"], str) and _HEX64.match(data["recognizer_sha256"])
              and isinstance(size, list) and len(size) == 2 and all(_int(v, 1, 8192) for v in size)
              and data["color"] in ("RGB", "BGR") and _number(data["mean"]) and _number(data["std"])
              and _int(data["dimension"], 1, MAX_DIMENSION))
        if not ok:
            raise PackageError("malformed", "package header: contract fields out of range")
        return cls(data["model_pack"], data["recognizer_sha256"], (size[0], size[1]), data["color"],
                   float(data["mean"]), float(data["std"]), data["dimension"])

    def differences(self, other: EmbeddingContract) -> list[str]:
        """What differs between ``self`` (a package's) and ``other`` (the branch's), in words."""
        out = []
        if self.model_pack != other.model_pack:
            out.append(f"model pack {self.model_pack!r} (this branch runs {other.model_pack!r})")
        if self.recognizer_sha256 != other.recognizer_sha256:
            out.append(f"recognizer {self.recognizer_sha256[:12]} (this branch has "
                       f"{other.recognizer_sha256[:12]})")
        if (self.input_size, self.color, self.mean, self.std) != (
                other.input_size, other.color, other.mean, other.std):
            out.append("preprocessing (input size, colour order, mean or std)")
        if self.dimension != other.dimension:
            out.append(f"dimension {self.dimension} (this branch's templates have {other.dimension})")
        return out


def _int(value: Any, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


# --- what a package holds --------------------------------------------------------------------


@dataclass(frozen=True)
class Consent:
    channel: str
    granted_at: datetime


@dataclass(frozen=True)
class Template:
    source_sha256: str  # the KYC photo it came from (head office keeps the photo)
    embedding: bytes  # float32 little-endian, ``dimension`` values


@dataclass(frozen=True)
class Customer:
    customer_id: str
    display_name: str
    tier: str
    assigned_rm: str
    consent: Consent
    templates: tuple[Template, ...]


@dataclass(frozen=True)
class PackageErasure:
    customer_id: str
    erasure_id: str  # head office's erasure (the ``erasure`` message of the same id)
    reason: str = "consent withdrawn"


@dataclass(frozen=True)
class Payload:
    customers: tuple[Customer, ...] = ()
    erasures: tuple[PackageErasure, ...] = ()

    @property
    def template_count(self) -> int:
        return sum(len(c.templates) for c in self.customers)


@dataclass(frozen=True)
class Header:
    package_id: str
    issuer: str  # key id of head office's signing key
    branch_id: str
    version: int
    base_version: int  # the version this delta applies on top of (0: the first package)
    created_at: datetime
    contract: EmbeddingContract
    recipient: str  # key id of the branch's X25519 key
    ephemeral_public: bytes
    nonce: bytes
    payload_sha256: str
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> bytes:
        body = {
            "format": FORMAT, "package_id": self.package_id, "issuer": self.issuer,
            "branch_id": self.branch_id, "version": self.version, "base_version": self.base_version,
            "created_at": self.created_at.astimezone(UTC).isoformat(),
            "contract": self.contract.to_dict(),
            "encryption": {"alg": ENCRYPTION, "recipient": self.recipient,
                           "ephemeral_public": _b64(self.ephemeral_public), "nonce": _b64(self.nonce)},
            "payload_sha256": self.payload_sha256, "counts": self.counts,
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def summary(self) -> dict[str, Any]:
        return {"package_id": self.package_id, "branch_id": self.branch_id, "version": self.version,
                "base_version": self.base_version, "created_at": self.created_at.isoformat(),
                "model_pack": self.contract.model_pack, "counts": dict(self.counts)}


# --- keys ------------------------------------------------------------------------------------


def key_id(public: Ed25519PublicKey | X25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def write_private_key(key: Ed25519PrivateKey | X25519PrivateKey, path: Path) -> None:
    """PEM (PKCS#8), created 0600 in a 0700 folder; an existing file is never overwritten."""
    if path.exists():
        raise PackageError("exists", f"{path} exists: refusing to overwrite a private key")
    create_private(path)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    path.write_bytes(pem)


def public_pem(key: Ed25519PublicKey | X25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def load_private_key(path: Path, kind: type[Ed25519PrivateKey] | type[X25519PrivateKey]) -> Any:
    try:
        check_secret_mode(path, "private key")
        key = serialization.load_pem_private_key(read_bounded(path, 16 * 1024, "private key"), None)
    except (OSError, ValueError, TypeError) as err:
        raise PackageError("bad_key", f"cannot load private key {path}: {err}") from err
    if not isinstance(key, kind):
        raise PackageError("bad_key", f"{path} is not an {kind.__name__.removesuffix('PrivateKey')} key")
    return key


def load_public_key(data: bytes, kind: type[Ed25519PublicKey] | type[X25519PublicKey],
                    where: str = "public key") -> Any:
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError) as err:
        raise PackageError("bad_key", f"{where}: not a PEM public key ({err})") from err
    if not isinstance(key, kind):
        raise PackageError("bad_key", f"{where} is not an {kind.__name__.removesuffix('PublicKey')} key")
    return key


# --- building ------------------------------------------------------------------------------------


def payload_json(payload: Payload) -> bytes:
    body = {
        "customers": [{
            "customer_id": c.customer_id, "display_name": c.display_name, "tier": c.tier,
            "assigned_rm": c.assigned_rm,
            "consent": {"channel": c.consent.channel,
                        "granted_at": c.consent.granted_at.astimezone(UTC).isoformat()},
            "templates": [{"source_sha256": t.source_sha256, "embedding": _b64(t.embedding)}
                          for t in c.templates],
        } for c in payload.customers],
        "erasures": [{"customer_id": e.customer_id, "erasure_id": e.erasure_id, "reason": e.reason}
                     for e in payload.erasures],
    }
    return json.dumps(body, separators=(",", ":")).encode()


def seal(payload: Payload, *, branch_id: str, version: int, base_version: int,
         contract: EmbeddingContract, signing_key: Ed25519PrivateKey,
         recipient: X25519PublicKey, created_at: datetime | None = None,
         package_id: str | None = None) -> bytes:
    """The package file's bytes: ``payload`` encrypted for ``recipient`` and signed.

    Raises:
        PackageError: the payload breaks the limits the branch applies (checked here first,
            so head office never ships what every branch would refuse).
    """
    if not _ID.match(branch_id) or not 0 <= base_version < version:
        raise PackageError("malformed", "branch id must be an id and 0 <= base_version < version")
    plain = payload_json(payload)
    parse_payload(json.loads(plain), contract.dimension)  # the branch's own checks
    ephemeral = X25519PrivateKey.generate()
    nonce = _random(12)
    header = Header(
        package_id=package_id or str(uuid.uuid4()), issuer=key_id(signing_key.public_key()),
        branch_id=branch_id, version=version, base_version=base_version,
        created_at=created_at or datetime.now(UTC), contract=contract, recipient=key_id(recipient),
        ephemeral_public=ephemeral.public_key().public_bytes(serialization.Encoding.Raw,
                                                             serialization.PublicFormat.Raw),
        nonce=nonce, payload_sha256=hashlib.sha256(plain).hexdigest(),
        counts={"customers": len(payload.customers), "templates": payload.template_count,
                "erasures": len(payload.erasures)},
    )
    head = header.to_json()
    if len(head) > MAX_HEADER_BYTES:
        raise PackageError("too_large", "package header over its limit")
    key = _derive(ephemeral.exchange(recipient), header.ephemeral_public, recipient, header.package_id)
    body = MAGIC + struct.pack(">I", len(head)) + head
    ciphertext = AESGCM(key).encrypt(nonce, plain, body)
    signed = body + ciphertext
    if len(signed) + SIGNATURE_BYTES > MAX_PACKAGE_BYTES:
        raise PackageError("too_large", f"package of {len(signed)} bytes is over {MAX_PACKAGE_BYTES}")
    return signed + signing_key.sign(signed)


def _derive(shared: bytes, ephemeral_public: bytes, recipient: X25519PublicKey, package_id: str) -> bytes:
    recipient_raw = recipient.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_public + recipient_raw,
                info=_HKDF_INFO + package_id.encode())
    return hkdf.derive(shared)


def _random(size: int) -> bytes:
    return os.urandom(size)


# --- opening ---------------------------------------------------------------------------------


def verified_header(data: bytes, verify_key: Ed25519PublicKey) -> Header:
    """The header of a package whose signature checks out with head office's key.

    Raises:
        PackageError: too large, not a package, bad signature, malformed header.
    """
    return _verified(data, verify_key)[0]


def _verified(data: bytes, verify_key: Ed25519PublicKey) -> tuple[Header, int]:
    """(header, offset of the ciphertext)."""
    if len(data) > MAX_PACKAGE_BYTES:
        raise PackageError("too_large", f"package of {len(data)} bytes is over {MAX_PACKAGE_BYTES}")
    if len(data) < len(MAGIC) + 4 + SIGNATURE_BYTES or not data.startswith(MAGIC):
        raise PackageError("not_a_package", "not a gallery package (wrong magic bytes or truncated)")
    signed, signature = data[:-SIGNATURE_BYTES], data[-SIGNATURE_BYTES:]
    try:
        verify_key.verify(signature, signed)
    except InvalidSignature as err:
        raise PackageError("bad_signature", "the package's signature does not verify with head office's "
                           "public key: altered, or signed by someone else; refused") from err
    (length,) = struct.unpack(">I", signed[len(MAGIC):len(MAGIC) + 4])
    if length > MAX_HEADER_BYTES or len(MAGIC) + 4 + length > len(signed):
        raise PackageError("malformed", "package header length out of range")
    header = _parse_header(signed[len(MAGIC) + 4:len(MAGIC) + 4 + length])
    if header.issuer != key_id(verify_key):
        raise PackageError("bad_signature", "the package names another issuer key than head office's")
    return header, len(MAGIC) + 4 + length


def open_package(data: bytes, *, verify_key: Ed25519PublicKey,
                 recipient_key: X25519PrivateKey) -> tuple[Header, Payload]:
    """Check the signature, then decrypt and parse the payload (bounded, typed).

    The caller checks what only it knows: the branch, the contract and the version order.

    Raises:
        PackageError: any reason to refuse the package.
    """
    header, start = _verified(data, verify_key)
    if header.recipient != key_id(recipient_key.public_key()):
        raise PackageError("wrong_recipient", f"the package is encrypted for key {header.recipient}, "
                           f"not this branch's key {key_id(recipient_key.public_key())}")
    signed = data[:-SIGNATURE_BYTES]
    try:
        peer = X25519PublicKey.from_public_bytes(header.ephemeral_public)
        key = _derive(recipient_key.exchange(peer), header.ephemeral_public, recipient_key.public_key(),
                      header.package_id)
        plain = AESGCM(key).decrypt(header.nonce, signed[start:], signed[:start])
    except (InvalidTag, ValueError) as err:
        raise PackageError("decrypt_failed", "the payload does not decrypt with this branch's key") from err
    if hashlib.sha256(plain).hexdigest() != header.payload_sha256:
        raise PackageError("malformed", "payload digest does not match the header")
    try:
        body = json.loads(plain)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise PackageError("malformed", f"payload is not JSON ({type(err).__name__})") from err
    return header, parse_payload(body, header.contract.dimension)


def _parse_header(raw: bytes) -> Header:
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        raise PackageError("malformed", "package header is not JSON") from err
    keys = {"format", "package_id", "issuer", "branch_id", "version", "base_version", "created_at",
            "contract", "encryption", "payload_sha256", "counts"}
    if not isinstance(data, dict) or set(data) != keys:
        raise PackageError("malformed", "package header has missing or unknown fields")
    if data["format"] != FORMAT:
        raise PackageError("unknown_format", f"package format {str(data['format'])[:10]!r}; this branch "
                           f"reads format {FORMAT}: upgrade Branch Edge")
    enc = data["encryption"]
    ok = (isinstance(enc, dict) and set(enc) == {"alg", "recipient", "ephemeral_public", "nonce"}
          and enc["alg"] == ENCRYPTION and _short(enc["recipient"]) and _short(data["issuer"])
          and _short(data["package_id"]) and isinstance(data["branch_id"], str)
          and _ID.match(data["branch_id"]) and _int(data["version"], 1, 2**53)
          and _int(data["base_version"], 0, 2**53) and data["base_version"] < data["version"]
          and isinstance(data["payload_sha256"], str) and _HEX64.match(data["payload_sha256"])
          and isinstance(data["counts"], dict) and len(data["counts"]) <= 8
          and all(_short(k) and _int(v, 0, 10**9) for k, v in data["counts"].items()))
    if not ok:
        raise PackageError("malformed", "package header fields out of range")
    return Header(
        package_id=data["package_id"], issuer=data["issuer"], branch_id=data["branch_id"],
        version=data["version"], base_version=data["base_version"],
        created_at=_time(data["created_at"], "created_at"),
        contract=EmbeddingContract.from_dict(data["contract"]), recipient=enc["recipient"],
        ephemeral_public=_unb64(enc["ephemeral_public"], 32, "ephemeral key"),
        nonce=_unb64(enc["nonce"], 12, "nonce"), payload_sha256=data["payload_sha256"],
        counts=dict(data["counts"]),
    )


def parse_payload(body: Any, dimension: int) -> Payload:
    """The typed payload; every field bounded (see the module docstring)."""
    if not isinstance(body, dict) or set(body) != {"customers", "erasures"}:
        raise PackageError("malformed", "payload has missing or unknown fields")
    customers, erasures = body["customers"], body["erasures"]
    if not isinstance(customers, list) or len(customers) > MAX_CUSTOMERS:
        raise PackageError("malformed", f"payload: customers must be a list of at most {MAX_CUSTOMERS}")
    if not isinstance(erasures, list) or len(erasures) > MAX_ERASURES:
        raise PackageError("malformed", f"payload: erasures must be a list of at most {MAX_ERASURES}")
    parsed = tuple(_customer(c, i, dimension) for i, c in enumerate(customers))
    ids = [c.customer_id for c in parsed]
    if len(set(ids)) != len(ids):
        raise PackageError("malformed", "payload: a customer appears twice")
    gone = tuple(_erasure(e, i) for i, e in enumerate(erasures))
    if set(ids) & {e.customer_id for e in gone}:
        raise PackageError("malformed", "payload: a customer is both added and erased")
    return Payload(parsed, gone)


def _customer(raw: Any, index: int, dimension: int) -> Customer:
    where = f"payload: customers[{index}]"
    keys = {"customer_id", "display_name", "tier", "assigned_rm", "consent", "templates"}
    if not isinstance(raw, dict) or set(raw) != keys:
        raise PackageError("malformed", f"{where}: missing or unknown fields")
    if not isinstance(raw["customer_id"], str) or not _CUSTOMER_ID.match(raw["customer_id"]):
        raise PackageError("malformed", f"{where}: invalid customer id")
    for name, limit in (("display_name", 80), ("tier", 32), ("assigned_rm", 64)):
        if not isinstance(raw[name], str) or len(raw[name]) > limit:
            raise PackageError("malformed", f"{where}: {name} must be a string of at most {limit}")
    consent = raw["consent"]
    if (not isinstance(consent, dict) or set(consent) != {"channel", "granted_at"}
            or not isinstance(consent["channel"], str) or not 0 < len(consent["channel"].strip()) <= 64):
        raise PackageError("malformed", f"{where}: consent needs a channel and granted_at")
    templates = raw["templates"]
    if not isinstance(templates, list) or not 0 < len(templates) <= MAX_TEMPLATES_PER_CUSTOMER:
        raise PackageError("malformed", f"{where}: 1 to {MAX_TEMPLATES_PER_CUSTOMER} templates")
    vectors = tuple(_template(t, f"{where}.templates[{j}]", dimension) for j, t in enumerate(templates))
    return Customer(raw["customer_id"], raw["display_name"], raw["tier"], raw["assigned_rm"],
                    Consent(consent["channel"].strip(), _time(consent["granted_at"], f"{where}.consent")),
                    vectors)


def _template(raw: Any, where: str, dimension: int) -> Template:
    if not isinstance(raw, dict) or set(raw) != {"source_sha256", "embedding"}:
        raise PackageError("malformed", f"{where}: missing or unknown fields")
    if not isinstance(raw["source_sha256"], str) or not _HEX64.match(raw["source_sha256"]):
        raise PackageError("malformed", f"{where}: source_sha256 must be 64 hex digits")
    vector = _unb64(raw["embedding"], 4 * dimension, f"{where}.embedding")
    values = struct.unpack(f"<{dimension}f", vector)
    if not all(math.isfinite(v) for v in values) or not any(values):
        raise PackageError("malformed", f"{where}: embedding is zero or not finite")
    return Template(raw["source_sha256"], vector)


def _erasure(raw: Any, index: int) -> PackageErasure:
    where = f"payload: erasures[{index}]"
    if not isinstance(raw, dict) or set(raw) != {"customer_id", "erasure_id", "reason"}:
        raise PackageError("malformed", f"{where}: missing or unknown fields")
    if not isinstance(raw["customer_id"], str) or not _CUSTOMER_ID.match(raw["customer_id"]):
        raise PackageError("malformed", f"{where}: invalid customer id")
    if not _short(raw["erasure_id"]) or not isinstance(raw["reason"], str) or len(raw["reason"]) > 200:
        raise PackageError("malformed", f"{where}: erasure_id and reason out of range")
    return PackageErasure(raw["customer_id"], raw["erasure_id"], raw["reason"])


def _short(value: Any) -> bool:
    return isinstance(value, str) and _ID.match(value) is not None


def _time(value: Any, where: str) -> datetime:
    if not isinstance(value, str) or len(value) > 40:
        raise PackageError("malformed", f"{where}: not an ISO 8601 time")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError as err:
        raise PackageError("malformed", f"{where}: not an ISO 8601 time") from err
    if moment.tzinfo is None or not 1970 <= moment.year <= 2999:
        raise PackageError("malformed", f"{where}: time without zone or out of range")
    return moment.astimezone(UTC)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: Any, size: int, where: str) -> bytes:
    if not isinstance(value, str) or len(value) > 4 * (size // 3 + 2):
        raise PackageError("malformed", f"{where}: wrong size")
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise PackageError("malformed", f"{where}: not base64") from err
    if len(raw) != size:
        raise PackageError("malformed", f"{where}: {len(raw)} bytes, expected {size}")
    return raw


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
