"""The series stores of metrics from logs and their exposition: folding past max_series, cumulative
histogram buckets, shapes that start anew, stores no longer held leaving /metrics."""

from __future__ import annotations

import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from core.log_metric_series import FOLDED_NAME, LogMetricsCollector, MetricShape

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


def test_histogram_buckets_are_cumulative_with_sum_and_count() -> None:
    collector = LogMetricsCollector()
    store = collector.store(HISTOGRAM)
    for value in (5.0, 10.0, 50.0, 1000.0):
        store.observe(("checkout",), value)
    store.skip("missing")
    got = scrape(collector)
    bucket = "logweave_log_duration_ms_bucket"
    assert [got[(bucket, (("le", le), ("service", "checkout")))] for le in ("10.0", "100.0", "+Inf")] == [2, 3, 4]
    assert got[("logweave_log_duration_ms_count", (("service", "checkout"),))] == 4
    assert got[("logweave_log_duration_ms_sum", (("service", "checkout"),))] == 1065.0
    skipped = ("logweave_log_metric_skipped_total", (("metric", "logweave_log_duration_ms"), ("reason", "missing")))
    assert got[skipped] == 1


def test_same_shape_keeps_counting_a_changed_shape_starts_anew_and_dropped_stores_leave() -> None:
    collector = LogMetricsCollector()
    first = collector.store(COUNTER)
    first.count(("a",))
    assert collector.store(MetricShape(COUNTER.name, "counter", "", ("service",), (), 2)) is first
    changed = collector.store(MetricShape(COUNTER.name, "counter", "", ("service", "level"), (), 2))
    assert changed is not first and changed.counts == {}
    collector.retain([])
    assert scrape(collector) == {}
