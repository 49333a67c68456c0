"""Errors a user can act on.  The CLI prints them as one line and exits 2."""

from __future__ import annotations

from edge.config import ConfigError
from models.pack import ModelPackError


class BranchEdgeError(Exception):
    """Base class of errors reported to the user without a traceback."""


class ImageError(BranchEdgeError):
    """A file is not a readable image.

    ``code`` is one of ``missing``, ``unreadable``, ``empty``, ``not_an_image``,
    ``corrupt`` and ``too_large``, for reports that count reasons.
    """

    def __init__(self, message: str, code: str = "corrupt") -> None:
        super().__init__(message)
        self.code = code


class EngineError(BranchEdgeError):
    """The face engine cannot run as configured (e.g. GPU asked for but absent)."""


class StoreError(BranchEdgeError):
    """The store cannot be opened or used (bad key, corrupt database, locked)."""


# Config and model-pack errors come from modules that do not depend on this one;
# the CLI reports all of these as one line and exit code 2.
USER_ERRORS: tuple[type[Exception], ...] = (BranchEdgeError, ConfigError, ModelPackError)
