"""The benchmarks' scrape pacing: few scrapes of a measured process while its end is far, a close one near it."""

from __future__ import annotations

from tests.bench.measure import ScrapePacer


def test_a_scrape_waits_half_the_time_the_last_rate_leaves_within_bounds() -> None:
    pacer = ScrapePacer(500_000)
    assert pacer.pause(0, now=0.0) == 0.25  # no rate yet (starting): a quarter second
    assert pacer.pause(0, now=0.25) == 0.25  # still nothing done: no rate either
    assert pacer.pause(100_000, now=0.75) == 0.5  # 200K lines/s, 2 s left: at most half a second
    assert pacer.pause(400_000, now=2.25) == 0.25  # 0.5 s left: half of it
    assert pacer.pause(499_000, now=2.745) == 0.02  # ~5 ms left: never below 20 ms
    assert pacer.scrapes == 5


def test_a_run_of_two_seconds_takes_about_ten_scrapes_and_sees_its_end_at_once() -> None:
    """A steady 250K lines/s for 500K lines, scraped as the pacer says: how many scrapes, and how late the
    one that sees the last line comes (what the measured rate is off by)."""
    rate, total, now, done = 250_000.0, 500_000, 0.0, 0.0
    pacer = ScrapePacer(total)
    while done < total:
        now += pacer.pause(done, now=now)
        done = min(total, rate * now)
    assert pacer.scrapes <= 12
    assert now - total / rate <= 0.03
