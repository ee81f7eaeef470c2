"""Token buckets: how often something may happen, with a burst allowed.

Used where a caller outside our control decides how often we work: the push endpoint's
heartbeats (per push probe) and its unknown-token answers (per client address). Times are
the monotonic clock's, passed in, so the buckets are plain values a test can drive.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass

__all__ = ["Bucket", "KeyedBuckets"]


@dataclass(slots=True)
class Bucket:
    """`burst` calls at once, then `rate` per second."""

    rate: float
    burst: float
    tokens: float = -1.0
    updated: float = 0.0

    def __post_init__(self) -> None:
        if self.tokens < 0:
            self.tokens = self.burst

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self, now: float) -> float:
        """0.0 when a call is allowed now (and counted); else the seconds until one is."""
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate

    def wait(self, now: float) -> float:
        """The seconds until a call would be allowed (0.0: now), counting none."""
        self._refill(now)
        return 0.0 if self.tokens >= 1.0 else (1.0 - self.tokens) / self.rate

    @staticmethod
    def retry_after(seconds: float) -> str:
        """`seconds` as a Retry-After header value: whole seconds, at least 1."""
        return str(max(1, math.ceil(seconds)))


class KeyedBuckets:
    """A bucket per key (a client address), at most `capacity` of them: the least recently
    used is forgotten first, so a flood of new keys costs bounded memory (a forgotten key
    starts full again, which only ever lets a caller through sooner)."""

    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        capacity: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.capacity = capacity
        self.clock = clock
        self._buckets: OrderedDict[Hashable, Bucket] = OrderedDict()

    def _bucket(self, key: Hashable) -> Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = Bucket(self.rate, self.burst, updated=self.clock())
            self._buckets[key] = bucket
            while len(self._buckets) > self.capacity:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    def take(self, key: Hashable) -> float:
        return self._bucket(key).take(self.clock())

    def wait(self, key: Hashable) -> float:
        bucket = self._buckets.get(key)
        return 0.0 if bucket is None else bucket.wait(self.clock())

    def __len__(self) -> int:
        return len(self._buckets)
