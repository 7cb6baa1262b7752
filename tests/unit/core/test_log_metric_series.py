"""The series stores of metrics from logs and their exposition: folding past max_series, cumulative
histogram buckets, shapes that start anew, stores no longer held leaving /metrics."""

from __future__ import annotations

import bisect
import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from core.log_metric_series import FOLDED_NAME, LogMetricsCollector, MetricShape, SeriesTally

COUNTER = MetricShape("logweave_log_errors_total", "counter", "", ("service",), max_series=2)
HISTOGRAM = MetricShape("logweave_log_duration_ms", "histogram", "Durations", ("service",), (10.0, 100.0))


def scrape(collector: LogMetricsCollector) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_series_past_max_series_fold_into_other_counted_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    collector = LogMetricsCollector()
    store = collector.store(COUNTER)
    with caplog.at_level(logging.WARNING):
        for service in ["a", "b", "a", "c", "d", "c", "b"]:
            store.count((service,))
    got = scrape(collector)
    assert got[("logweave_log_errors_total", (("service", "a"),))] == 2
    assert got[("logweave_log_errors_total", (("service", "b"),))] == 2
    assert got[("logweave_log_errors_total", (("service", "other"),))] == 3
    assert ("logweave_log_errors_total", (("service", "c"),)) not in got
    assert got[(FOLDED_NAME, (("metric", "logweave_log_errors_total"),))] == 3
    assert sum(1 for r in caplog.records if "max_series=2" in r.getMessage()) == 1


def observed(tally: SeriesTally, key: tuple[str, ...], *values: float) -> None:
    series = tally.series(key)
    for value in values:
        series[bisect.bisect_left(tally.store.bounds, value)] += 1
        series[-1] += value


def test_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    collector = LogMetricsCollector()
    store = collector.store(HISTOGRAM)
    tally = SeriesTally(store)
    observed(tally, ("checkout",), 5.0, 10.0, 50.0, 1000.0)
    tally.skipped["missing"] = 1
    assert scrape(collector)[(FOLDED_NAME, (("metric", "logweave_log_duration_ms"),))] == 0  # nothing shown yet
    store.add(tally)
    got = scrape(collector)
    bucket = "logweave_log_duration_ms_bucket"
    assert [got[(bucket, (("le", le), ("service", "checkout")))] for le in ("10.0", "100.0", "+Inf")] == [2, 3, 4]
    assert got[("logweave_log_duration_ms_count", (("service", "checkout"),))] == 4
    assert got[("logweave_log_duration_ms_sum", (("service", "checkout"),))] == 1065.0
    skipped = ("logweave_log_metric_skipped_total", (("metric", "logweave_log_duration_ms"), ("reason", "missing")))
    assert got[skipped] == 1


def test_tallies_added_past_max_series_fold_into_other() -> None:
    """max_series is applied when a tally is added: series already held keep counting, new ones fold."""
    collector = LogMetricsCollector()
    store = collector.store(MetricShape("logweave_log_duration_ms", "histogram", "", ("service",), (10.0,),
                                        max_series=2))
    first, second = SeriesTally(store), SeriesTally(store)
    observed(first, ("a",), 1.0)
    observed(first, ("b",), 20.0)
    observed(second, ("a",), 2.0)
    observed(second, ("c",), 5.0, 30.0)
    store.add(first)
    store.add(second)
    assert store.histograms == {("a",): [2.0, 0.0, 3.0], ("b",): [0.0, 1.0, 20.0], ("other",): [1.0, 1.0, 35.0]}
    assert store.folded == 2


def test_same_shape_keeps_counting_a_changed_shape_starts_anew_and_dropped_stores_leave() -> None:
    collector = LogMetricsCollector()
    first = collector.store(COUNTER)
    first.count(("a",))
    assert collector.store(MetricShape(COUNTER.name, "counter", "", ("service",), (), 2)) is first
    changed = collector.store(MetricShape(COUNTER.name, "counter", "", ("service", "level"), (), 2))
    assert changed is not first and changed.counts == {}
    collector.retain([])
    assert scrape(collector) == {}
