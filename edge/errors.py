"""The errors every ``branch-edge`` command reports as one line with exit code 2."""

from __future__ import annotations

from edge.core.errors import BranchEdgeError
from models.pack import ModelPackError

# Model-pack errors come from models/, which knows nothing of edge; the CLI
# reports all of these as one line and exit code 2 (ConfigError is a BranchEdgeError).
USER_ERRORS: tuple[type[Exception], ...] = (BranchEdgeError, ModelPackError)
