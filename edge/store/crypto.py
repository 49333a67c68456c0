"""Encryption at rest for face templates and enrolment photos.

AES-256-GCM from ``cryptography``.  The key lives outside the database: in a
key file (64 hex characters or 32 raw bytes, mode 0600) or in an environment
variable (hex).  Every ciphertext is self-describing::

    b"BE" | version (1 byte) | key id (4 bytes) | nonce (12 bytes) | ciphertext+tag

The key id (first 8 hex digits of a domain-separated SHA-256 of the key) lets
a key ring hold the old and the new key while ``keys rotate`` re-encrypts, and
lets a wrong key be reported by name.  The associated data binds a blob to its
table, customer and purpose, so a blob copied onto another customer's row (or
from a template into a photo) fails authentication instead of decrypting.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge.config import StoreConfig
from edge.core.errors import StoreError
from edge.core.files import UnsafeFileError, read_regular_file

KEY_BYTES = 32
NONCE_BYTES = 12
MAGIC = b"BE"
FORMAT_VERSION = 1
_KEY_ID_BYTES = 4
HEADER_BYTES = len(MAGIC) + 1 + _KEY_ID_BYTES + NONCE_BYTES
MAX_KEY_FILE_BYTES = 4096  # 64 hex characters and a newline, with room for whitespace


def key_id_of(key: bytes) -> str:
    """8 hex digits naming ``key``; safe to store and print (it reveals nothing usable)."""
    return hashlib.sha256(b"branch-edge key id\x00" + key).hexdigest()[: 2 * _KEY_ID_BYTES]


def associated_data(table: str, customer_id: str, purpose: str) -> bytes:
    # NUL separators: none of the parts may contain NUL, so the encoding is unambiguous.
    parts = (table, customer_id, purpose)
    if any("\x00" in p for p in parts):
        raise StoreError("associated data must not contain NUL characters")
    # surrogatepass: still one-to-one, and a lone surrogate is not a crash.
    return b"branch-edge/v1\x00" + "\x00".join(parts).encode("utf-8", "surrogatepass")


@dataclass(frozen=True)
class KeyRing:
    """The primary key (encrypts) and any older keys (decrypt only, during rotation)."""

    primary: bytes
    older: tuple[bytes, ...] = ()
    _by_id: dict[str, AESGCM] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for key in (self.primary, *self.older):
            if len(key) != KEY_BYTES:
                raise StoreError(f"an encryption key must be {KEY_BYTES} bytes, got {len(key)}")
        by_id = {key_id_of(k): AESGCM(k) for k in (self.primary, *self.older)}
        object.__setattr__(self, "_by_id", by_id)

    @property
    def primary_id(self) -> str:
        return key_id_of(self.primary)

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(self._by_id)

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        header = MAGIC + bytes([FORMAT_VERSION]) + bytes.fromhex(self.primary_id) + nonce
        return header + self._by_id[self.primary_id].encrypt(nonce, plaintext, aad)

    def decrypt(self, blob: bytes, aad: bytes, what: str = "blob") -> bytes:
        blob_key_id = blob_key_id_of(blob, what)
        aead = self._by_id.get(blob_key_id)
        if aead is None:
            raise StoreError(
                f"{what} was encrypted with key id {blob_key_id}, but the loaded key has id "
                f"{self.primary_id}: load the key with id {blob_key_id}"
            )
        nonce = blob[HEADER_BYTES - NONCE_BYTES : HEADER_BYTES]
        try:
            return aead.decrypt(nonce, blob[HEADER_BYTES:], aad)
        except InvalidTag as err:
            raise StoreError(
                f"{what} failed authentication: it was altered or moved to another row"
            ) from err


def blob_key_id_of(blob: bytes, what: str = "blob") -> str:
    """The key id recorded in an encrypted blob's header."""
    if len(blob) < HEADER_BYTES + 16 or not blob.startswith(MAGIC):
        raise StoreError(f"{what} is not an encrypted Branch Edge blob")
    if blob[len(MAGIC)] != FORMAT_VERSION:
        raise StoreError(f"{what} has unknown encryption format version {blob[len(MAGIC)]}")
    start = len(MAGIC) + 1
    return blob[start : start + _KEY_ID_BYTES].hex()


def parse_key(raw: bytes, source: str) -> bytes:
    """A key is 64 hex characters (surrounding whitespace ignored) or exactly 32 raw bytes."""
    text = raw.strip()
    if len(text) == 2 * KEY_BYTES:
        try:
            return bytes.fromhex(text.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            pass
    if len(raw) == KEY_BYTES:
        return raw
    raise StoreError(
        f"{source}: not a key: expected {2 * KEY_BYTES} hex characters or {KEY_BYTES} raw bytes"
    )


def check_key_file_mode(path: Path) -> None:
    """Refuse a key file that its group or others can read or write."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as err:
        raise StoreError(f"key file {path} does not exist") from err
    except OSError as err:
        raise StoreError(f"cannot read key file {path}: {err.strerror}") from err
    if not stat.S_ISREG(mode):
        raise StoreError(f"key file {path} is not a regular file")
    loose = stat.S_IMODE(mode) & 0o077
    if loose:
        raise StoreError(
            f"key file {path} has mode {stat.S_IMODE(mode):04o}: group/others may access it; "
            f"run `chmod 600 {path}`"
        )


def read_key_file(path: Path) -> bytes:
    check_key_file_mode(path)
    try:  # bounded: a key is 64 hex characters; never a device or FIFO swapped in after the check
        raw = read_regular_file(path, MAX_KEY_FILE_BYTES, "key file")
    except UnsafeFileError as err:
        raise StoreError(str(err)) from err
    return parse_key(raw, f"key file {path}")


def load_key_ring(cfg: StoreConfig, key_file: Path | None = None) -> KeyRing:
    """The key from ``key_file`` (CLI), else ``cfg.key_file``, else the ``cfg.key_env`` variable.

    Keys in ``cfg.old_key_files`` join the ring as decrypt-only keys (during a rotation).
    """
    older = tuple(read_key_file(Path(p)) for p in cfg.old_key_files)
    path = key_file or cfg.key_file
    if path is not None:
        primary = read_key_file(Path(path))
        return KeyRing(primary, _without(older, primary))
    value = os.environ.get(cfg.key_env, "")
    if value:
        primary = parse_key(value.encode("utf-8"), f"environment variable {cfg.key_env}")
        return KeyRing(primary, _without(older, primary))
    raise StoreError(
        f"no encryption key: set store.key_file in the config, pass --key-file, or set "
        f"{cfg.key_env}; create a key with `branch-edge keys generate --out FILE`"
    )


def _without(keys: tuple[bytes, ...], primary: bytes) -> tuple[bytes, ...]:
    # The same key listed twice (or as primary and old) must not count as two keys.
    unique = dict.fromkeys(k for k in keys if k != primary)
    return tuple(unique)


def generate_key_file(path: Path) -> str:
    """Write a new random key as hex to ``path`` (mode 0600, never overwriting); return its id."""
    key = os.urandom(KEY_BYTES)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as err:
        raise StoreError(f"{path} already exists; refusing to overwrite a key") from err
    except OSError as err:
        raise StoreError(f"cannot create key file {path}: {err.strerror}") from err
    with os.fdopen(fd, "w", encoding="ascii") as out:
        out.write(key.hex() + "\n")
    os.chmod(path, 0o600)  # the umask may have narrowed it further; never wider
    return key_id_of(key)
