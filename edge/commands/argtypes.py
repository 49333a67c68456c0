"""argparse value types shared by the commands: numbers within a documented range."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

Number = TypeVar("Number", int, float)


def _bounded(kind: type[Number], noun: str, low: Number, high: Number) -> Callable[[str], Number]:
    def parse(text: str) -> Number:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not {noun}: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be within [{low}, {high}], got {value}")
        return value
    return parse


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    return _bounded(int, "an integer", low, high)


def bounded_float(low: float, high: float) -> Callable[[str], float]:
    return _bounded(float, "a number", low, high)
