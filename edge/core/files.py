"""Reading outside files safely and writing private ones; shared by the edge and the PAD app.

:func:`read_regular_file` is how every file named by a user or a config is read
(config files, keys, photos, CSVs): only a regular file, at most ``limit``
bytes, refused before any byte is read when its size says so.  A path to
``/dev/zero``, a FIFO or a socket gets a one-line error instead of a hang or a
MemoryError, and an oversized file is never read whole.

:func:`create_private_file` and :func:`private_dir` create what holds personal
data or secrets readable by the owner only (0600 files, 0700 folders), whatever
the umask of the process that runs first (the systemd unit sets one; a shell
usually does not).

Stdlib only (``os``, ``stat``), so ``ui/`` can use it without importing the edge.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path
from typing import TextIO

from edge.core.errors import BranchEdgeError

log = logging.getLogger(__name__)

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
_CHUNK = 1 << 20


class UnsafeFileError(BranchEdgeError):
    """A file that must not or cannot be read.

    ``code``: ``missing``, ``is_a_folder``, ``not_a_regular_file``, ``too_large``
    or ``unreadable``.
    """

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


def read_regular_file(path: Path | str, limit: int, what: str = "file") -> bytes:
    """The bytes of the regular file ``path`` (symlinks followed), at most ``limit`` of them.

    Never opens a device, FIFO or socket (``stat`` first; opened non-blocking and
    checked again with ``fstat``, so a swap in between is caught); refuses a file
    whose size is over ``limit`` without reading it, and stops reading at
    ``limit + 1`` bytes for one that grows while it is read.
    """
    path = Path(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError as err:
        raise UnsafeFileError(f"cannot read {what} {path}: no such file", "missing") from err
    except OSError as err:
        raise UnsafeFileError(f"cannot read {what} {path}: {err.strerror}", "unreadable") from err
    _require_regular(path, mode, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as err:
        raise UnsafeFileError(f"cannot read {what} {path}: {err.strerror}", "unreadable") from err
    try:
        info = os.fstat(fd)
        _require_regular(path, info.st_mode, what)
        if info.st_size > limit:
            raise _too_large(path, what, limit)
        chunks, total = [], 0
        while total <= limit:
            chunk = os.read(fd, min(_CHUNK, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as err:
        raise UnsafeFileError(f"cannot read {what} {path}: {err.strerror}", "unreadable") from err
    finally:
        os.close(fd)
    if total > limit:
        raise _too_large(path, what, limit)
    return b"".join(chunks)


def _require_regular(path: Path, mode: int, what: str) -> None:
    if stat.S_ISDIR(mode):
        raise UnsafeFileError(f"cannot read {what} {path}: it is a folder", "is_a_folder")
    if not stat.S_ISREG(mode):
        raise UnsafeFileError(f"cannot read {what} {path}: not a regular file (a device, FIFO or "
                              "socket)", "not_a_regular_file")


def _too_large(path: Path, what: str, limit: int) -> UnsafeFileError:
    return UnsafeFileError(f"cannot read {what} {path}: larger than the {limit} byte limit", "too_large")


def private_dir(path: Path | str) -> Path:
    """Create ``path`` (and missing parents) as 0700 folders; an existing folder is left as it is."""
    path = Path(path)
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
        os.chmod(folder, PRIVATE_DIR)  # mkdir's mode is narrowed by the umask, never widened
    return path


def create_private_file(path: Path | str) -> Path:
    """Create ``path`` empty with mode 0600 unless it exists (its folder 0700 when missing).

    Callers then open it as they like (SQLite, a log handler): the mode is set at
    creation, so there is no moment in which others could open it.
    """
    path = Path(path)
    private_dir(path.parent)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0),
                         PRIVATE_FILE))
    return path


def private_database(path: Path | str) -> None:
    """Make a SQLite database readable by its owner only, before SQLite opens it.

    The file is created 0600 (its folder 0700) unless it exists; an existing file and
    its ``-wal``, ``-shm`` and ``-journal`` companions (left 0644 by an older version or
    another umask) are narrowed to 0600.  SQLite creates the companions with the
    database file's own mode, so they follow.  ``:memory:`` is left alone.
    """
    if str(path) in ("", ":memory:") or str(path).startswith("file:"):
        return
    path = create_private_file(path)
    for part in ("", "-wal", "-shm", "-journal"):
        companion = path.with_name(path.name + part)
        try:
            if stat.S_IMODE(companion.stat().st_mode) & 0o077:
                os.chmod(companion, PRIVATE_FILE)
        except FileNotFoundError:
            continue
        except OSError as err:  # not ours to change: say so, the caller still opens it
            log.warning("cannot make %s private (mode 0600): %s", companion, err.strerror)


def open_private(path: Path | str, newline: str | None = None) -> TextIO:
    """A text file opened for writing (truncated) that holds personal data: created 0600,
    and an existing file narrowed to 0600 before anything is written."""
    return os.fdopen(_private_fd(Path(path)), "w", encoding="utf-8", newline=newline)


def write_private_bytes(path: Path | str, data: bytes) -> None:
    """Write ``data`` to ``path`` (replacing its content) as a 0600 file."""
    with os.fdopen(_private_fd(Path(path)), "wb") as out:
        out.write(data)


def _private_fd(path: Path) -> int:
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0), PRIVATE_FILE)
    try:
        os.fchmod(fd, PRIVATE_FILE)
    except OSError:
        os.close(fd)
        raise
    return fd
