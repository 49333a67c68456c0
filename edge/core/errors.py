"""Errors a user can act on, shared by the edge and the PAD app.

The command lines print them as one line and exit 2.  They live in the pure
core so that ui/ can raise and catch them without importing the edge's
configuration, model packs or store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol


class BranchEdgeError(Exception):
    """Base class of errors reported to the user without a traceback."""


class ConfigError(BranchEdgeError, ValueError):
    """The configuration file is missing, unreadable or invalid."""


class ImageError(BranchEdgeError):
    """A file is not a readable image.

    ``code`` is one of ``missing``, ``unreadable``, ``empty``, ``not_an_image``,
    ``not_a_regular_file``, ``corrupt`` and ``too_large``, for reports that count reasons.
    """

    def __init__(self, message: str, code: str = "corrupt") -> None:
        super().__init__(message)
        self.code = code


class EngineError(BranchEdgeError):
    """The face engine cannot run as configured (e.g. GPU asked for but absent)."""


class StoreError(BranchEdgeError):
    """The store cannot be opened or used (bad key, corrupt database, locked)."""


class ValidationErrors(Protocol):
    """What :func:`format_validation_error` needs of a pydantic ``ValidationError``."""

    def errors(self) -> Sequence[Any]: ...


def format_validation_error(err: ValidationErrors) -> str:
    """``section.key: message; …`` — the dotted key first, so the user finds the line."""
    lines = []
    for item in err.errors():
        key = ".".join(str(p) for p in item["loc"]) or "(top level)"
        lines.append(f"{key}: {item['msg']}")
    return "; ".join(lines)
