"""Token buckets counted in lines, per token (HTTP, OTLP, forward) or per source address (syslog), so
one tenant or one sender cannot starve the others.

A request of n lines passes when the bucket holds n tokens (or is full, for requests larger than
the bucket, which then goes negative and recovers at the refill rate); otherwise the caller answers
429 with Retry-After = the seconds until the bucket would hold enough.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TokenBucket:
    __slots__ = ("_clock", "capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.capacity = max(capacity, 1.0)
        self.tokens = self.capacity
        self._clock = clock
        self.stamp = clock()

    def take(self, count: int) -> float:
        """Take `count` tokens and return 0, or take none and return the seconds to wait."""
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        need = min(float(count), self.capacity)
        if self.tokens >= need:
            self.tokens -= count
            return 0.0
        return max((need - self.tokens) / self.rate, 0.001)

    def debit(self, count: int) -> float:
        """Take `count` tokens now, into debt if need be; the seconds until the debt is repaid."""
        now = self._clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate) - count
        self.stamp = now
        return -self.tokens / self.rate if self.tokens < 0 else 0.0


MAX_BUCKETS = 100_000


class RateLimiter:
    """Buckets keyed by credential (token digest); tenants without a rate are never limited."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._buckets: dict[str, TokenBucket] = {}
        self._clock = clock

    def check(self, key: str, rate: float, burst: int, count: int) -> int:
        """0 when `count` lines may pass now, else the whole seconds to put in Retry-After."""
        wait = self.wait(key, rate, burst, count)
        return math.ceil(wait) if wait else 0

    def wait(self, key: str, rate: float, burst: int, count: int) -> float:
        """0 when `count` lines may pass now (and they are counted), else the seconds until they may."""
        return self._bucket(key, rate, burst).take(count) if rate > 0 else 0.0

    def debit(self, key: str, rate: float, burst: int, count: int) -> float:
        """Count `count` lines already read; the seconds to pause so that they keep to the rate."""
        return self._bucket(key, rate, burst).debit(count) if rate > 0 else 0.0

    def _bucket(self, key: str, rate: float, burst: int) -> TokenBucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_BUCKETS:  # e.g. UDP from spoofed addresses: forget the oldest
                del self._buckets[next(iter(self._buckets))]
            bucket = self._buckets[key] = TokenBucket(rate, burst or rate, self._clock)
        return bucket
