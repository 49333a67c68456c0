"""A small private CA with the ``cryptography`` package (ECDSA P-256 keys, SHA-256)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 825


@dataclass(frozen=True)
class KeyPair:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate


def _name(common_name: str, org: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, org),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, days: int
) -> x509.CertificateBuilder:
    now = dt.datetime.now(dt.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
    )


def make_ca(common_name: str, org: str = "Branch Edge") -> KeyPair:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name, org)
    cert = (
        _builder(name, name, key, CA_DAYS)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return KeyPair(key, cert)


def issue(
    ca: KeyPair, common_name: str, *, server_names: Iterable[str] = (), org: str = "Branch Edge"
) -> KeyPair:
    """A leaf certificate; with ``server_names`` it is a server certificate for those names/IPs."""
    key = ec.generate_private_key(ec.SECP256R1())
    names = list(server_names)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if names else ExtendedKeyUsageOID.CLIENT_AUTH
    builder = (
        _builder(_name(common_name, org), ca.cert.subject, key, LEAF_DAYS)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(_sans(names)), critical=False)
    return KeyPair(key, builder.sign(ca.key, hashes.SHA256()))


def _sans(names: list[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for name in names:
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            out.append(x509.DNSName(name))
    return out


def write_secret(path: Path, data: bytes) -> None:
    """Create ``path`` with mode 0600 from the start (never world-readable, even briefly)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


def write_pair(pair: KeyPair, cert_path: Path, key_path: Path) -> None:
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    cert_path.write_bytes(pair.cert.public_bytes(serialization.Encoding.PEM))
    key_pem = pair.key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_secret(key_path, key_pem)


def load_pair(cert_path: Path, key_path: Path) -> KeyPair:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{key_path}: not an EC private key")
    return KeyPair(key, cert)


# --- revocation -----------------------------------------------------------------


@dataclass(frozen=True)
class Revoked:
    serial: int
    on: dt.datetime


def certificate_serial(path: Path) -> int | None:
    """The serial number of the PEM certificate at ``path``; None when absent or unreadable."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes()).serial_number
    except (OSError, ValueError):
        return None


def load_revoked(path: Path) -> list[Revoked]:
    """The entries of an existing CRL (none when there is no file)."""
    if not path.exists():
        return []
    crl = x509.load_pem_x509_crl(path.read_bytes())
    return [Revoked(entry.serial_number, entry.revocation_date_utc) for entry in crl]


def write_crl(ca: KeyPair, revoked: Iterable[Revoked], path: Path) -> int:
    """Sign a CRL listing ``revoked`` (entries older than a leaf's lifetime are dropped: those
    certificates have expired anyway); returns how many it lists.

    Its next update is set beyond any leaf's expiry: a CRL past its next update
    makes OpenSSL refuse every client, and it is re-signed at each provisioning.
    """
    now = dt.datetime.now(dt.UTC)
    oldest = now - dt.timedelta(days=LEAF_DAYS + 1)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca.cert.subject)
        .last_update(now - dt.timedelta(minutes=5))
        .next_update(now + dt.timedelta(days=CA_DAYS))
    )
    kept = {r.serial: r for r in revoked if r.on >= oldest}
    for entry in kept.values():
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(entry.serial).revocation_date(entry.on).build()
        )
    crl = builder.sign(ca.key, hashes.SHA256())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return len(kept)
