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
from edge.core.files import UnsafeFileError, read_regular_file
from mqtt.messages import MAX_SCENARIOS

DEFAULT_POLICIES = Path(__file__).with_name("policies.toml")


class AuthError(BranchEdgeError):
    """The authorization service cannot run as configured (bad policy file)."""


def load_policies(path: Path | None = None) -> Policies:
    path = path or DEFAULT_POLICIES
    try:  # bounded, regular files only: the path comes from the config
        data = tomllib.loads(read_regular_file(path, 1024 * 1024, "policy file").decode("utf-8"))
        policies = policies_from_dict(data)
    except UnsafeFileError as err:
        raise AuthError(str(err)) from err
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, PolicyError) as err:
        raise AuthError(f"{path}: {err}") from err
    if len(policies.scenarios) > MAX_SCENARIOS:  # what one retained message carries to the tablets
        raise AuthError(f"{path}: {len(policies.scenarios)} scenarios; the teller terminals can be "
                        f"sent at most {MAX_SCENARIOS}")
    return policies
