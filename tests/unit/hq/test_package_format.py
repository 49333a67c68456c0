"""The gallery package format (mqtt.package): sealed for one branch, signed by head office;
every refusal has its reason, whatever the bytes."""

from __future__ import annotations

import struct
from datetime import UTC, datetime

import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from mqtt.package import (
    MAGIC,
    Consent,
    Customer,
    EmbeddingContract,
    PackageErasure,
    PackageError,
    Payload,
    Template,
    open_package,
    seal,
    verified_header,
)

CONTRACT = EmbeddingContract("default", "a" * 64, (112, 112), "RGB", 127.5, 127.5, 8)
HQ = Ed25519PrivateKey.generate()
BRANCH = X25519PrivateKey.generate()


def vector(seed: int, dim: int = 8) -> bytes:
    v = np.random.default_rng(seed).normal(size=dim).astype("<f4")
    return (v / np.linalg.norm(v)).astype("<f4").tobytes()


def payload(customers: int = 2) -> Payload:
    consent = Consent("kyc-branch-form", datetime(2026, 1, 5, 2, tzinfo=UTC))
    people = tuple(Customer(f"C{i:03d}", f"Customer {i}", "private", "RM-01", consent,
                            (Template(f"{i:064x}", vector(i)),)) for i in range(customers))
    return Payload(people, (PackageErasure("C999", "e-1", "consent withdrawn"),))


def sealed(version: int = 1, base: int = 0, contract: EmbeddingContract = CONTRACT,
           key: Ed25519PrivateKey = HQ) -> bytes:
    return seal(payload(), branch_id="b1", version=version, base_version=base, contract=contract,
                signing_key=key, recipient=BRANCH.public_key())


def test_round_trip_keeps_every_field():
    header, body = open_package(sealed(3, 2), verify_key=HQ.public_key(), recipient_key=BRANCH)
    assert (header.branch_id, header.version, header.base_version) == ("b1", 3, 2)
    assert header.contract == CONTRACT
    assert header.counts == {"customers": 2, "templates": 2, "erasures": 1}
    assert body == payload()


def test_payload_is_not_readable_without_the_branch_key():
    data = sealed()
    assert b"Customer 1" not in data and b"kyc-branch-form" not in data
    with pytest.raises(PackageError) as err:
        open_package(data, verify_key=HQ.public_key(), recipient_key=X25519PrivateKey.generate())
    assert err.value.reason == "wrong_recipient"


def test_signature_by_another_key_is_refused():
    with pytest.raises(PackageError) as err:
        verified_header(sealed(key=Ed25519PrivateKey.generate()), HQ.public_key())
    assert err.value.reason == "bad_signature"
    assert "signature" in str(err.value)


@pytest.mark.parametrize("where", [len(MAGIC) + 10, -100, -1])
def test_any_altered_byte_breaks_the_signature(where):
    data = bytearray(sealed())
    data[where] ^= 0x01
    with pytest.raises(PackageError) as err:
        open_package(bytes(data), verify_key=HQ.public_key(), recipient_key=BRANCH)
    assert err.value.reason == "bad_signature"


def test_not_a_package():
    with pytest.raises(PackageError) as err:
        verified_header(b"PK\x03\x04" + bytes(200), HQ.public_key())
    assert err.value.reason == "not_a_package"


def test_header_length_beyond_the_file_is_refused_after_the_signature():
    body = MAGIC + struct.pack(">I", 10**6) + b"{}"
    data = body + HQ.sign(body)
    with pytest.raises(PackageError) as err:
        verified_header(data, HQ.public_key())
    assert err.value.reason == "malformed"


def test_contract_differences_are_named():
    other = EmbeddingContract("fast", "b" * 64, (112, 112), "RGB", 127.5, 127.5, 128)
    words = " ".join(other.differences(CONTRACT))
    assert "model pack 'fast'" in words and "dimension 128" in words and "recognizer" in words
    assert CONTRACT.differences(CONTRACT) == []


def test_seal_refuses_what_a_branch_would_refuse():
    consent = Consent("kyc", datetime(2026, 1, 5, tzinfo=UTC))
    bad = Payload((Customer("C1", "x", "t", "r", consent, (Template("0" * 64, b"\x00" * 12),)),))
    with pytest.raises(PackageError) as err:
        seal(bad, branch_id="b1", version=1, base_version=0, contract=CONTRACT, signing_key=HQ,
             recipient=BRANCH.public_key())
    assert "expected 32" in str(err.value)
    nan = Payload((Customer("C1", "x", "t", "r", consent,
                            (Template("0" * 64, np.full(8, np.nan, "<f4").tobytes()),)),))
    with pytest.raises(PackageError, match="not finite"):
        seal(nan, branch_id="b1", version=1, base_version=0, contract=CONTRACT, signing_key=HQ,
             recipient=BRANCH.public_key())
    with pytest.raises(PackageError):
        seal(payload(), branch_id="b1", version=2, base_version=2, contract=CONTRACT, signing_key=HQ,
             recipient=BRANCH.public_key())


@given(st.binary(max_size=400))
def test_hostile_bytes_only_ever_raise_package_error(data):
    with pytest.raises(PackageError):
        open_package(MAGIC + data, verify_key=HQ.public_key(), recipient_key=BRANCH)


@given(st.binary(min_size=0, max_size=300))
def test_signed_garbage_header_is_a_package_error(raw):
    body = MAGIC + struct.pack(">I", len(raw)) + raw
    with pytest.raises(PackageError):
        verified_header(body + HQ.sign(body), HQ.public_key())
