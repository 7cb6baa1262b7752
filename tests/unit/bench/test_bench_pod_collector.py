"""The pod collector benchmark's scrape pacing: few scrapes while the end is far, a close one near it."""

from __future__ import annotations

from tests.bench.bench_pod_collector import scrape_pause


def test_scrapes_wait_half_the_time_left_within_bounds() -> None:
    assert scrape_pause(0, 500_000, 0.0) == 0.25  # no rate yet (starting): a quarter second
    assert scrape_pause(100_000, 500_000, 200_000.0) == 0.5  # 2 s left: at most half a second
    assert scrape_pause(400_000, 500_000, 200_000.0) == 0.25  # 0.5 s left: half of it
    assert scrape_pause(499_000, 500_000, 200_000.0) == 0.02  # 5 ms left: never below 20 ms


def test_a_run_of_two_seconds_takes_a_handful_of_scrapes() -> None:
    """Simulated at a steady 250K lines/s, 500K lines: the count of scrapes this pacing asks for, and
    how late the last one sees the last line (the rate's error)."""
    rate, total, now, published, scrapes = 250_000.0, 500_000, 0.0, 0.0, 0
    last = (0.0, 0.0)
    while published < total:
        scrapes += 1
        seen = (now - last[0]) and (published - last[1]) / (now - last[0])
        last = (now, published)
        now += scrape_pause(published, total, seen)
        published = min(total, rate * now)
    assert scrapes <= 12
    assert now - total / rate <= 0.03
