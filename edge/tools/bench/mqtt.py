"""``branch-edge bench mqtt``: the MQTT latency benchmark under the common ``bench`` command."""

from __future__ import annotations

import argparse

from edge.commands.mqtt import add_bench_parser


def register(benches: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    add_bench_parser(benches, "mqtt")
