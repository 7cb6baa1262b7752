"""The live benchmark's arithmetic: write stamps, percentiles with missing lines, lag per topic, verdicts."""

from __future__ import annotations

import pytest

from tests.bench.live_stats import (
    Arrivals,
    broker_dominates,
    kept_up,
    lag_by_topic,
    latency_summary,
    percentile,
    verdicts,
    write_time,
)
from tests.bench.live_writer import cri_bytes
from tests.bench.report_live import live_row


def test_write_time_is_read_from_the_writers_line_and_from_a_sink_document() -> None:
    line = cri_bytes(1_796_250_000_123_456_789, 7, 42)
    assert line.count(b"\n") == 1 and 200 <= len(line) <= 320  # one CRI line of about 250 bytes
    assert write_time(line) == 1_796_250_000_123_456_789
    assert write_time(b'{"fields":{"pod":7,"wt":1796250000000000001},"traceId":"x"}') == 1_796_250_000_000_000_001
    assert write_time(b'{"time":"2026-12-02T22:00:00Z","msg":"no stamp"}') is None


def test_arrivals_count_window_lines_and_unstamped_ones() -> None:
    arrivals = Arrivals()
    for written, arrived in ((100, 150), (200, 260), (300, 700)):
        arrivals.add(b'{"wt":%d}' % written, arrived)
    arrivals.add(b'{"msg":"unstamped"}', 999)
    assert arrivals.unstamped == 1
    assert arrivals.written_between(150, 400) == 2
    assert arrivals.arrived_between(0, 300) == 2
    assert arrivals.delays_of_written_between(150, 400) == [60 / 1e9, 400 / 1e9]


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([1.0], 99, 1.0),
    ([float(i) for i in range(1, 101)], 50, 50.0),
    ([float(i) for i in range(1, 101)], 99, 99.0),
    ([float(i) for i in range(1, 101)], 100, 100.0),
    ([1.0, 2.0, 3.0], 50, 2.0),
    ([1.0, 2.0], 99, 2.0),
])
def test_nearest_rank_percentile(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


def test_percentile_of_nothing_is_an_error() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_latency_with_every_line_arrived_is_exact() -> None:
    delays = [0.1] * 98 + [0.5, 2.0]
    summary = latency_summary(delays, missing=0, waited_s=30.0)
    assert summary == {"missing": 0, "p50_s": 0.1, "p99_s": 0.5, "p50_lower_bound": False, "p99_lower_bound": False}


def test_missing_lines_make_the_tail_a_lower_bound_not_a_fast_figure() -> None:
    """A pipeline that fell behind: 90 lines arrived fast, 10 never did. Leaving those out would
    report p99 = 0.2 s; they count as the 30 s they had waited, and the p99 says it is a floor."""
    summary = latency_summary([0.2] * 90, missing=10, waited_s=30.0)
    assert summary["p99_s"] == 30.0 and summary["p99_lower_bound"] is True
    assert summary["p50_s"] == 0.2 and summary["p50_lower_bound"] is False
    # arrived lines slower than the wait keep their place in the order; the median is still exact
    slow = latency_summary([0.1] * 60 + [40.0] * 30, missing=10, waited_s=30.0)
    assert slow["p50_s"] == 0.1 and not slow["p50_lower_bound"]
    assert slow["p99_s"] == 40.0 and slow["p99_lower_bound"] is True


def test_latency_refuses_more_arrivals_than_writes() -> None:
    with pytest.raises(ValueError, match="duplicates"):
        latency_summary([0.1], missing=-1, waited_s=1.0)


def test_latency_of_an_empty_window() -> None:
    assert latency_summary([], 0, 1.0)["p99_s"] is None


def test_lag_is_summed_per_topic() -> None:
    behind = {"logs.raw/0": 5, "logs.raw/3": 7, "sink.file/1": 2, "bench.x/y.logs.parsed/2": 1}
    assert lag_by_topic(behind) == {"logs.raw": 12, "sink.file": 2, "bench.x/y.logs.parsed": 1}
    assert lag_by_topic({}) == {}


@pytest.mark.parametrize("key", ["logs.raw", "logs.raw/", "/0", "logs.raw/p1"])
def test_lag_refuses_keys_that_are_not_topic_partition(key: str) -> None:
    with pytest.raises(ValueError, match="topic/partition"):
        lag_by_topic({key: 1})


def test_kept_up_needs_pace_and_every_line() -> None:
    assert kept_up(4000, 3990, 0)
    assert not kept_up(4000, 743, 0)  # the collapse
    assert not kept_up(4000, 4000, 3)
    assert not kept_up(0, 0, 0)


def test_verdicts_mark_each_target() -> None:
    row = {"kept_up": True, "p99_s": 0.8, "p99_lower_bound": False, "offered_lines_per_s": 10_000, "pods": 200,
           "worker_cpu_per_100k": 1.2, "collector_cpu_per_100k": 0.9, "collector_peak_rss_mib": 200.0}
    text = verdicts(row)
    assert text[0].startswith("kept up: yes, p99 0.800 s") and text[0].endswith("met")
    assert any("10K lines/s keeps up on one worker" in line and line.endswith("met") for line in text)
    assert any(line.startswith("worker CPU 1.200") and line.endswith("met") for line in text)
    assert any(line.startswith("collector CPU 0.900") and line.endswith("MISSED") for line in text)
    assert not any("RSS" in line for line in text)  # the RSS target is for 1,000 pods
    behind = verdicts({**row, "kept_up": False, "p99_s": 30.0, "p99_lower_bound": True, "pods": 1000})
    assert behind[0].startswith("kept up: no, p99 >= 30.000 s") and behind[0].endswith("MISSED")
    assert any("collector peak RSS 200 MiB" in line and line.endswith("MISSED") for line in behind)


def test_cpu_on_a_quiet_row_is_shown_but_not_judged() -> None:
    """50 pods x 0.5 lines/s is there for its latency: the CPU per 100K lines of processes mostly idle is
    their fixed cost, not a node's shape, so it is neither met nor missed; its p99 still is."""
    quiet = {"kept_up": True, "p99_s": 5.2, "p99_lower_bound": False, "offered_lines_per_s": 25, "pods": 50,
             "worker_cpu_per_100k": 900.0, "collector_cpu_per_100k": 80.0}
    text = verdicts(quiet)
    assert text[0].endswith("MISSED")  # the slow first lines after a rotation count
    cpu = [line for line in text if "CPU" in line]
    assert len(cpu) == 2 and all("judged from 1,000 lines/s" in line and line.endswith(" -") for line in cpu)
    row = live_row({**quiet, "name": "50 pods x 0.5 lines/s", "delivered_lines_per_s": 25})
    assert "900.00 |" in row and "80.00 |" in row and "(missed)" in row  # the p99, not the CPU
    assert row.count("(missed)") == 1
    node = live_row({**quiet, "offered_lines_per_s": 4000, "p99_s": 0.7})
    assert "900.00 (missed)" in node and "80.00 (missed)" in node


def test_broker_domination_is_said_only_when_true() -> None:
    assert broker_dominates(3.3, {"worker": 1.0, "collector": 2.0}).startswith("the broker's own CPU dominates")
    assert broker_dominates(1.5, {"worker": 1.0, "collector": 2.0}) == ""
    assert broker_dominates(None, {"worker": 1.0}) == ""
