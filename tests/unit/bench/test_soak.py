"""The soak verdict: steady runs pass; growing worker memory or growing lag fail."""

from __future__ import annotations

from tests.bench.soak import Sample, render, slope, verdict

TOPICS = ("logs.raw", "logs.parsed", "sink.file")


def run(minutes: int, rss: list[float] | None = None, falls_behind: float = 0.0) -> list[Sample]:
    """Samples every 10 s of a 50 records/s topic load; `falls_behind` is the fraction not consumed."""
    samples = []
    for i in range(1, minutes * 6 + 1):
        t = 10.0 * i
        ends = dict.fromkeys(TOPICS, int(50 * t))
        lag = dict.fromkeys(TOPICS, 20 + int(50 * t * falls_behind))
        samples.append(Sample(t, int(5000 * t), int(5000 * t * (1 - falls_behind)), lag, ends,
                              rss[i - 1] if rss else 300.0, 60.0, 1000.0 + i, 40.0))
    return samples


def test_slope_is_the_least_squares_fit() -> None:
    assert slope([(0, 1), (1, 3), (2, 5)]) == 2.0
    assert slope([(0, 1)]) == 0.0


def test_a_steady_run_passes() -> None:
    result = verdict(run(10), 20.0)
    assert result["ok"] and not result["lag_growing"] and result["worker_rss_growth_pct"] == 0.0
    assert result["max_lag_records"] == dict.fromkeys(TOPICS, 20)
    assert "verdict: OK" in render(run(10), result, 5000)


def test_worker_memory_growing_past_the_limit_in_the_second_half_fails() -> None:
    rss = [300.0] * 30 + [300.0 + 3 * i for i in range(30)]  # +87 MiB (29%) over the second half
    result = verdict(run(10, rss), 20.0)
    assert result["rss_growing"] and not result["ok"]
    assert verdict(run(10, rss), 30.0)["ok"]


def test_a_worker_that_falls_behind_fails_on_growing_lag() -> None:
    samples = run(10, falls_behind=0.05)  # 5% of the load left over: 30 s behind after 10 minutes
    result = verdict(samples, 20.0)
    assert result["lag_growing"] and not result["ok"]
    assert "lag keeps growing" in render(samples, result, 5000)


def test_a_small_steady_lag_is_not_growing() -> None:
    assert not verdict(run(2, falls_behind=0.005), 20.0)["lag_growing"]  # under the 10 s floor
