"""Errors ``branch-hq`` reports as one line with exit code 2."""

from __future__ import annotations


class HqError(Exception):
    """Something the operator can act on: a bad file, an unknown branch, a missing key."""
