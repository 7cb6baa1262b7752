"""The metric rules applied to parsed lines: filters, labels from the line, its source and its fields,
histograms that skip what is not a number, the bound on series; the same counts with and without the
C field reader."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

import agents.log_metrics as log_metrics
from agents.log_metrics import LogMetrics, log_metrics_for
from core.log_metric_series import LogMetricsCollector
from core.log_metric_settings import LogMetricSettings
from core.native import native_module

SOURCES = [{"kind": "pod", "namespace": "shop", "labels": {"app": "cart"}}, {"kind": "pod", "namespace": "ops"}]
ERRORS = {"name": "logweave_log_errors_total", "type": "counter", "match": {"level_at_least": "error"},
          "labels": {"service": "service", "namespace": "source.namespace", "app": "source.labels.app"}}
DURATION = {"name": "logweave_log_duration_ms", "type": "histogram", "field": "duration_ms",
            "buckets": [10, 100], "labels": {"route": "field.route"}}


def line(level: str, service: str, doc: dict[str, Any], src: int = 0) -> list[Any]:
    return [src, "s1", 0, 0, "t", level, service, orjson.dumps(doc).decode(), "stdout"]


LINES = [
    line("error", "cart", {"duration_ms": 5, "route": "/a"}),
    line("fatal", "cart", {"duration_ms": 50.5, "route": "/a", "nested": {"duration_ms": 1}}),
    line("info", "cart", {"duration_ms": "slow", "route": "/b"}),
    line("warn", "pay", {"route": "/b"}, src=1),
    line("error", "pay", {"duration_ms": 500, "route": "/b"}, src=1),
    line("error", "pay", {"duration_ms": None, "route": "/b"}, src=1),
]


def build(*rules: dict[str, Any], max_series: int = 100) -> tuple[LogMetrics, LogMetricsCollector]:
    collector = LogMetricsCollector()
    return LogMetrics(LogMetricSettings(max_series=max_series, rules=list(rules)), collector), collector


@pytest.fixture(params=["c", "python"])
def field_reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(log_metrics, "native_module", lambda name: None)
    return str(request.param)


def test_counter_by_labels_from_line_and_source(field_reader: str) -> None:
    metrics, collector = build(ERRORS)
    metrics.observe(LINES, SOURCES)()
    metrics.observe(LINES[:1], SOURCES)()
    assert collector.stores["logweave_log_errors_total"].counts == {
        ("cart", "shop", "cart"): 3, ("pay", "ops", ""): 2}


def test_histogram_observes_numbers_and_counts_what_it_skips(field_reader: str) -> None:
    metrics, collector = build(DURATION)
    metrics.observe(LINES, SOURCES)()
    store = collector.stores["logweave_log_duration_ms"]
    assert store.histograms == {("/a",): [1, 1, 0, 55.5], ("/b",): [0, 0, 1, 500.0]}
    assert store.skipped == {"not_a_number": 1, "missing": 2}


def test_match_on_fields_and_service(field_reader: str) -> None:
    rule = {"name": "logweave_log_b_total", "type": "counter", "labels": ["level"],
            "match": {"service": ["pay"], "regex": {"route": "^/b$"}}}
    metrics, collector = build(rule, DURATION)
    metrics.observe(LINES, SOURCES)()
    assert collector.stores["logweave_log_b_total"].counts == {("warn",): 1, ("error",): 2}


def test_series_past_the_bound_fold_into_other(field_reader: str) -> None:
    rule = {"name": "logweave_log_routes_total", "type": "counter", "labels": ["field.route"]}
    metrics, collector = build({**rule, "max_series": 1}, DURATION, max_series=2)
    metrics.observe(LINES, SOURCES)()
    routes, durations = collector.stores["logweave_log_routes_total"], collector.stores["logweave_log_duration_ms"]
    assert routes.counts == {("/a",): 2, ("other",): 4} and routes.folded == 4
    assert durations.shape.max_series == 2 and durations.folded == 0


def test_label_values_are_bounded_in_length() -> None:
    rule = {"name": "logweave_log_routes_total", "type": "counter", "labels": ["field.route", "field.n"]}
    rule = {**rule, "labels": ["field.route", "field.n", "service"]}
    metrics, collector = build(rule)
    long_service = "s" * 300
    metrics.observe([line("info", long_service, {"route": "r" * 500, "n": [1, True]})] * 2, SOURCES)()
    store = collector.stores["logweave_log_routes_total"]
    assert store.shape.labels == ("service", "route", "n")  # from the line, its source, its fields
    assert store.counts == {("s" * log_metrics.MAX_LABEL_CHARS, "r" * log_metrics.MAX_LABEL_CHARS, "[1,true]"): 2}


def test_no_rules_no_work() -> None:
    assert log_metrics_for(LogMetricSettings()) is None


def test_histogram_lines_past_the_bound_are_observed_under_other_and_counted(field_reader: str) -> None:
    metrics, collector = build({**DURATION, "max_series": 1})
    metrics.observe(LINES, SOURCES)()
    metrics.observe(LINES, SOURCES)()
    store = collector.stores["logweave_log_duration_ms"]
    assert store.histograms == {("/a",): [2, 2, 0, 111.0], ("other",): [0, 0, 2, 1000.0]}
    assert store.folded == 2


BY_SOURCE = {"name": "logweave_log_latency_ms", "type": "histogram", "field": "duration_ms", "buckets": [10, 100],
             "labels": ["service", "namespace"]}


@pytest.mark.skipif(native_module("field_scan") is None,
                    reason="the C field reader is not built or is off in this process (LOGWEAVE_PURE=1)")
@pytest.mark.parametrize("rule", [BY_SOURCE, {**BY_SOURCE, "match": {"level_at_least": "warn"}},
                                  {**BY_SOURCE, "labels": []}, {**BY_SOURCE, "labels": ["level"], "max_series": 2}])
def test_the_c_pass_of_a_histogram_gives_the_python_answer(rule: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
                                                            ) -> None:
    """Generated lines of every kind (numbers, strings, nested values the C reader leaves to decoding,
    escaped keys) through the C pass and through the Python loop: the same series, folds and skips."""
    rng = random.Random(5)
    values: list[Any] = [1, 9.5, 10, 11, 100, 1e3, -4, "7", None, True, {"v": 1}, [1]]
    lines = []
    for n in range(600):
        doc: dict[str, Any] = {"n": n}
        if rng.random() < 0.9:
            doc["duration_ms"] = rng.choice(values)
        if rng.random() < 0.1:
            doc["nested"] = {"duration_ms": 3}
        text = orjson.dumps(doc).decode()
        if rng.random() < 0.05:
            text = text.replace('"duration_ms"', '"duration\\u005fms"')
        level = rng.choice(["debug", "info", "warn", "error", "", "fatal"])
        lines.append([rng.randrange(2), "s1", n, 0, "t", level, rng.choice(["a", "b", "c"]), text, "stdout"])
    answers = []
    for native in (True, False):
        if not native:
            monkeypatch.setattr(log_metrics, "native_module", lambda name: None)
        metrics, collector = build(rule)
        if native:
            assert metrics.rules[0].c_histogram is not None
        for start in range(0, len(lines), 100):
            metrics.observe(lines[start:start + 100], SOURCES)()
        store = collector.stores[rule["name"]]
        answers.append((store.histograms, store.folded, store.skipped))
    assert answers[0] == answers[1]
    assert answers[0][2]["missing"] and answers[0][2]["not_a_number"]
