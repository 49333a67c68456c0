"""Files of the MQTT layer: secrets checked for their mode, state created private.

- :func:`check_secret_mode`: a device's private key or password file that its
  group or others may read is refused (like the store key): whoever can read it
  can connect as the device.
- :func:`create_private` / :func:`private_dir`: the outbox and the seen-id
  database hold message payloads (names, thumbnails, card data in an
  authorization request) and are created 0600 in 0700 folders, whatever the
  umask of the process that creates them first.  SQLite gives its ``-wal`` and
  ``-shm`` files the mode of the database file.
- :func:`read_bounded`: a regular file of at most ``limit`` bytes (never a
  device or FIFO, never read whole when too large).

Stdlib only: ``mqtt`` does not import the edge (see ``.importlinter``).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700


class SecretFileError(OSError):
    """A secret file that is missing, not a regular file, or readable by group/others."""


def check_secret_mode(path: Path, what: str) -> None:
    """Refuse ``path`` unless it is a regular file only its owner may access."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError as err:
        raise SecretFileError(f"{what} {path} does not exist") from err
    except OSError as err:
        raise SecretFileError(f"cannot read {what} {path}: {err.strerror}") from err
    if not stat.S_ISREG(mode):
        raise SecretFileError(f"{what} {path} is not a regular file")
    if stat.S_IMODE(mode) & 0o077:
        raise SecretFileError(
            f"{what} {path} has mode {stat.S_IMODE(mode):04o}: group/others may read it; "
            f"run `chmod 600 {path}`"
        )


def read_bounded(path: Path, limit: int, what: str = "file") -> bytes:
    """The bytes of the regular file ``path``, refused when it is larger than ``limit``."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(f"{what} {path} is not a regular file")
        if info.st_size > limit:
            raise OSError(f"{what} {path} is larger than {limit} bytes")
        data = os.read(fd, limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise OSError(f"{what} {path} is larger than {limit} bytes")
    return data


def private_dir(path: Path) -> None:
    """Create ``path`` and missing parents as 0700 folders (an existing folder is left alone)."""
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue
        os.chmod(folder, PRIVATE_DIR)


def create_private(path: Path | str) -> None:
    """Create the (database) file ``path`` empty with mode 0600 unless it exists; an existing
    one (and its SQLite ``-wal``/``-shm`` files) that group or others may read is narrowed to 0600.

    ``":memory:"`` and SQLite URIs are left to SQLite.
    """
    name = str(path)
    if name in (":memory:", "") or name.startswith("file:"):
        return
    target = Path(name)
    private_dir(target.parent)
    try:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                         PRIVATE_FILE))
    except FileExistsError:
        for each in (target, Path(f"{name}-wal"), Path(f"{name}-shm")):
            try:
                if stat.S_IMODE(each.stat().st_mode) & 0o077:
                    os.chmod(each, PRIVATE_FILE)
            except OSError:  # not there, or not ours: SQLite reports what matters on open
                continue
