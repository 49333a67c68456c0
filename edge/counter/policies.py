"""The scenario policy file: which checks, thresholds and limits each counter scenario has.

A threshold may be written as a false-accept rate (``match_far = 1e-3``): the model pack in
use turns it into the cosine it calibrated for that rate (``[pack] counter_thresholds``), so
the policy file stays right when the pack changes, and a pack without that calibration is
refused instead of guessed.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from edge.core.auth_policy import (
    Policies,
    PolicyError,
    policies_from_dict,
    resolve_thresholds,
)
from edge.core.errors import BranchEdgeError
from edge.core.files import UnsafeFileError, read_regular_file
from models.pack import ModelPack, ModelPackError, load_pack
from mqtt.messages import MAX_SCENARIOS

DEFAULT_POLICIES = Path(__file__).with_name("policies.toml")


class AuthError(BranchEdgeError):
    """The authorization service cannot run as configured (bad policy file)."""


def resolve_for_pack(policies: Policies, pack: ModelPack | str) -> Policies:
    """The policies with every rate-form threshold turned into ``pack``'s calibrated cosine."""
    try:
        pack = load_pack(pack) if isinstance(pack, str) else pack
        return resolve_thresholds(policies, pack.counter_thresholds, f"model pack {pack.id!r}")
    except (PolicyError, ModelPackError) as err:
        raise AuthError(f"{err}; calibrate the pack's counter thresholds (branch-edge evaluate --faces "
                        "DIR --degrade card) or give cosine thresholds in the policy file") from err


def load_policies(path: Path | None = None, pack: ModelPack | str | None = "default") -> Policies:
    """The policy file (default: the shipped one), its rate-form thresholds resolved for
    ``pack`` (``None``: left unresolved; :func:`decide` refuses such a policy)."""
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
    return policies if pack is None else resolve_for_pack(policies, pack)
