"""The demo's broker: the configured one, or the embedded loopback broker when no
``[mqtt] host`` is set, so the demo needs nothing installed."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from mqtt.config import MqttConfig
from mqtt.embedded import EmbeddedBroker


@contextlib.contextmanager
def demo_broker(cfg: MqttConfig) -> Iterator[MqttConfig]:
    """The configured broker, or an embedded one on a free loopback port."""
    if cfg.host:
        yield cfg
        return
    broker = EmbeddedBroker()
    port = broker.start()
    try:
        yield cfg.model_copy(update={"host": "127.0.0.1", "port": port})
    finally:
        broker.stop()
