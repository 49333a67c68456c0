"""Token buckets, one per authoring device, for what a receiver accepts.

A device may send ``burst`` messages at once and ``rate`` per second after
that; what it sends beyond is dropped before it is decoded, so a flood of
valid-looking claims from one tablet costs each receiver a topic split and a
dictionary look-up per message, and other devices' messages queued behind it
are reached at once.  Buckets are kept for at most ``max_keys`` devices (full
buckets are forgotten first), so ids invented on an unauthenticated broker
cannot grow memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

DEFAULT_RATE_PER_S = 20.0
DEFAULT_BURST = 200


class TokenBuckets:
    def __init__(self, rate_per_s: float = DEFAULT_RATE_PER_S, burst: int = DEFAULT_BURST, *,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 4096) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("rate_per_s must be > 0 and burst >= 1")
        self.rate, self.burst, self.clock, self.max_keys = rate_per_s, float(burst), clock, max_keys
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at)
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        """Take one token from ``key``'s bucket; False when it is empty."""
        now = self.clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - at) * self.rate)
            allowed = tokens >= 1.0
            self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
            if len(self._buckets) > self.max_keys:
                self._forget_full(now)
            return allowed

    def _forget_full(self, now: float) -> None:
        full = [k for k, (tokens, at) in self._buckets.items()
                if tokens + (now - at) * self.rate >= self.burst]
        for key in full:
            del self._buckets[key]
        while len(self._buckets) > self.max_keys:  # all busy: drop the oldest entries
            del self._buckets[next(iter(self._buckets))]
