"""The scenario policy file: which checks, thresholds and limits each counter scenario has."""

from __future__ import annotations

import tomllib
from pathlib import Path

from edge.core.auth_policy import (
    Policies,
    PolicyError,
    policies_from_dict,
)
from edge.core.errors import BranchEdgeError

DEFAULT_POLICIES = Path(__file__).with_name("policies.toml")


class AuthError(BranchEdgeError):
    """The authorization service cannot run as configured (bad policy file)."""


def load_policies(path: Path | None = None) -> Policies:
    path = path or DEFAULT_POLICIES
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        return policies_from_dict(data)
    except OSError as err:
        raise AuthError(f"cannot read policy file {path}: {err.strerror}") from err
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, PolicyError) as err:
        raise AuthError(f"{path}: {err}") from err
