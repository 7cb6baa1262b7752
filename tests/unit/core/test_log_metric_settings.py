"""A bad metric rule is refused with one line naming the setting and what is allowed; a good one is read
as written (labels shorthand, defaults)."""

from __future__ import annotations

from typing import Any

import pytest

from core.errors import ConfigError
from core.log_metric_settings import LogMetricRule, LogMetricSettings
from core.settings import load_settings

COUNTER: dict[str, Any] = {"name": "logweave_log_errors_total", "type": "counter",
                           "match": {"level_at_least": "error"}, "labels": ["service", "namespace"]}
HISTOGRAM: dict[str, Any] = {"name": "logweave_log_duration_ms", "type": "histogram", "field": "duration_ms",
                             "buckets": [10, 100, 1000], "labels": {"route": "field.route", "app": "source.labels.app"}}


def refused(rule: dict[str, Any], *more: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as caught:
        load_settings(environ={}, log_metrics={"rules": [rule, *more]})
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_good_rules_read_with_the_labels_shorthand() -> None:
    settings = LogMetricSettings(rules=[COUNTER, HISTOGRAM])
    counter, histogram = settings.rules
    assert counter.labels == {"service": "service", "namespace": "source.namespace"}
    assert histogram.labels == {"route": "field.route", "app": "source.labels.app"}
    assert settings.max_series == 100 and counter.max_series is None
    assert LogMetricRule(**{**COUNTER, "labels": "level, field.route"}).labels == {"level": "level",
                                                                                "route": "field.route"}


@pytest.mark.parametrize(("change", "setting", "said"), [
    ({"name": "errors_total"}, "log_metrics.rules.0.name", "start with 'logweave_log_'"),
    ({"name": "logweave_log_metric_x_total"}, "log_metrics.rules.0.name", "which Logweave uses itself"),
    ({"name": "logweave_log_bad-name_total"}, "log_metrics.rules.0.name", "[a-zA-Z_][a-zA-Z0-9_]*"),
    ({"name": "logweave_log_errors"}, "log_metrics.rules.0", "must end with '_total'"),
    ({"labels": ["le"]}, "log_metrics.rules.0.labels", "not be one of instance, job, le, quantile"),
    ({"labels": {"__x": "level"}}, "log_metrics.rules.0.labels", "not start with '__'"),
    ({"labels": {"x": "trace"}}, "log_metrics.rules.0.labels", "is not one of level, service, stream"),
    ({"labels": {"x": "field.a.b"}}, "log_metrics.rules.0.labels", "only top-level fields"),
    ({"match": {"level_at_least": "loud"}}, "log_metrics.rules.0", "match.level_at_least 'loud' is not one of"),
    ({"match": {"regex": {"msg": "("}}}, "log_metrics.rules.0", "match.regex for 'msg' is invalid"),
    ({"field": "duration_ms"}, "log_metrics.rules.0", "`field` and `buckets` are for histograms"),
    ({"max_series": 0}, "log_metrics.rules.0.max_series", "greater than or equal to 1"),
])
def test_bad_counter_refused_naming_the_setting(change: dict[str, Any], setting: str, said: str) -> None:
    message = refused({**COUNTER, **change})
    assert setting in message and said in message


@pytest.mark.parametrize(("change", "setting", "said"), [
    ({"buckets": [10, 5]}, "log_metrics.rules.0.buckets", "strictly increasing"),
    ({"buckets": [10, 10]}, "log_metrics.rules.0.buckets", "strictly increasing"),
    ({"buckets": [1, float("inf")]}, "log_metrics.rules.0.buckets", "finite"),
    ({"buckets": list(range(51))}, "log_metrics.rules.0.buckets", "at most 50"),
    ({"buckets": []}, "log_metrics.rules.0", "needs `buckets`"),
    ({"field": None}, "log_metrics.rules.0", "needs `field`"),
    ({"name": "logweave_log_duration_count"}, "log_metrics.rules.0", "must not end with _total, _bucket, _count"),
])
def test_bad_histogram_refused_naming_the_setting(change: dict[str, Any], setting: str, said: str) -> None:
    message = refused({**HISTOGRAM, **change})
    assert setting in message and said in message


def test_two_rules_naming_one_metric_family_are_refused() -> None:
    message = refused({**HISTOGRAM, "name": "logweave_log_errors"}, COUNTER)
    assert "log_metrics.rules" in message and "already names metric family 'logweave_log_errors'" in message


def test_group_max_series_bounded() -> None:
    with pytest.raises(ConfigError, match=r"log_metrics\.max_series"):
        load_settings(environ={}, log_metrics={"max_series": 100_000})
