"""Token buckets in lines: bursts pass, the excess waits for the refill, buckets are per credential."""

from __future__ import annotations

from collectors.intake.ratelimit import RateLimiter


def test_bucket_refills_at_its_rate_and_says_how_long_to_wait() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert limiter.check("a", rate=10, burst=20, count=20) == 0
    assert limiter.check("a", rate=10, burst=20, count=5) == 1  # 0.5 s, rounded up to whole seconds
    assert limiter.check("b", rate=10, burst=20, count=20) == 0  # its own bucket
    now[0] = 0.5
    assert limiter.check("a", rate=10, burst=20, count=5) == 0
    assert limiter.check("a", rate=10, burst=20, count=30) == 2  # larger than the bucket: waits for a full one
    now[0] = 2.5
    assert limiter.check("a", rate=10, burst=20, count=30) == 0  # a full bucket lets it pass (goes negative)
    assert limiter.check("a", rate=10, burst=20, count=1) == 2


def test_no_rate_means_no_limit() -> None:
    limiter = RateLimiter(clock=lambda: 0.0)
    assert all(limiter.check("a", rate=0, burst=0, count=10**6) == 0 for _ in range(3))


def test_debit_counts_lines_already_read_and_says_how_long_to_pause() -> None:
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert limiter.debit("peer", rate=10, burst=5, count=5) == 0  # the burst
    assert limiter.debit("peer", rate=10, burst=5, count=20) == 2.0  # 20 lines in debt at 10 lines/s
    now[0] = 2.0
    assert limiter.debit("peer", rate=10, burst=5, count=1) == 0.1
    assert limiter.debit("other", rate=10, burst=5, count=5) == 0
    assert limiter.debit("peer", rate=0, burst=0, count=10**6) == 0
