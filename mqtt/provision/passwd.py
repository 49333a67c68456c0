"""Mosquitto 2.x password-file lines, generated without ``mosquitto_passwd``.

Format (Mosquitto ``$7$``): ``user:$7$<iterations>$<base64 salt>$<base64 hash>``
with hash = PBKDF2-HMAC-SHA512(password, 12-byte salt, iterations, 64 bytes).
Mosquitto reads the iteration count from each line; we use more than
``mosquitto_passwd``'s 101.
"""

from __future__ import annotations

import base64
import hashlib
import secrets

ITERATIONS = 10_000


def new_password() -> str:
    return secrets.token_urlsafe(24)


def hash_line(username: str, password: str, iterations: int = ITERATIONS) -> str:
    salt = secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, iterations, 64)
    b64 = base64.b64encode
    return f"{username}:$7${iterations}${b64(salt).decode()}${b64(digest).decode()}"


def verify_line(line: str, password: str) -> bool:
    """Check ``password`` against one password-file line (used by tests and `provision`)."""
    _, rest = line.strip().split(":", 1)
    _, kind, iterations, salt, digest = rest.split("$")
    if kind != "7":
        return False
    got = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(salt), int(iterations), 64)
    return secrets.compare_digest(base64.b64encode(got).decode(), digest)
