"""Log set-up for the daemon: plain text or one JSON object per line (for journald,
Loki, ELK).  Privacy: callers log ids of events and visits, never names, ID numbers
or embeddings at INFO or above (DESIGN.md)."""

from __future__ import annotations

import io
import json
import logging
import logging.handlers
import os
import stat
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from edge.core.files import PRIVATE_FILE, create_private_file, private_dir

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# LogRecord attributes that are not "extra" fields passed by the caller.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "thread": record.threadName,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """The usual line, then the caller's ``extra`` fields as key=value."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{k}={v}" for k, v in vars(record).items() if k not in _STANDARD)
        return f"{line} {extra}" if extra else line


class PrivateRotatingFileHandler(logging.handlers.RotatingFileHandler):
    """A rotating log whose files are created 0600 (an existing one is narrowed to 0600).

    Logs carry customer and visit ids, device names and error details: readable by
    the service account only, also when the daemon runs outside its systemd unit
    (whose ``UMask=0077`` would otherwise be the only guard).  Rotation renames the
    file (its mode goes with it) and opens a new one through :meth:`_open`."""

    def _open(self) -> io.TextIOWrapper:
        path = Path(self.baseFilename)
        create_private_file(path)
        if stat.S_IMODE(path.stat().st_mode) & 0o077:
            os.chmod(path, PRIVATE_FILE)
        return super()._open()


def configure_logging(level: str, fmt: str, stream: TextIO | None = None, *, file: Path | None = None,
                      max_bytes: int = 10_000_000, backups: int = 5) -> None:
    """Replace the root handlers: ``fmt`` is "text" or "json".

    With ``file``, every record at ``level`` goes to that file, rotated at ``max_bytes``
    keeping ``backups`` old files; stderr then carries WARNING and above only, so that
    journald does not hold a second full copy but still shows what went wrong."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handlers: list[logging.Handler] = [handler]
    if file is not None:
        private_dir(file.parent)
        handler.setLevel(logging.WARNING)
        handlers.append(PrivateRotatingFileHandler(
            file, maxBytes=max_bytes, backupCount=backups, encoding="utf-8"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, logging.FileHandler):  # ours from a previous call
            old.close()
    for new in handlers:
        new.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
        root.addHandler(new)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
