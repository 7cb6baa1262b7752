"""Metrics from logs: the `log_metrics` rules compiled, applied to the lines the group stage takes.

Why the group stage (agents/grouper.py): it is the one place where each parsed line is handled once,
by the one worker owning the line's `logs.parsed` partition, after replays were skipped (its stream
marks), with the line's level, service and source at hand. So each worker counts only its own
partitions' lines and `sum without (instance)` over the workers is the pipeline's total.

Cost: the rules are checked per line on what the parsed line carries (level, service, source); the
line's text is decoded once, and only for a line a rule needs fields of, and a histogram's field is
looked for in the text before the text is decoded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from agents.line_filter import LineFilter
from core.log_metric_series import LogMetricsCollector, MetricShape, SeriesStore
from core.log_metric_settings import LogMetricRule, LogMetricSettings
from core.metrics import LOG_METRICS
from core.models import P_LEVEL, P_SERVICE, P_SRC, P_STREAM, P_TEXT

MAX_LABEL_CHARS = 128
LabelValue = Callable[[list[Any], list[dict[str, Any]], dict[str, Any]], str]  # (line, sources, document)
_LINE_POSITIONS = {"level": P_LEVEL, "service": P_SERVICE, "stream": P_STREAM}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if type(value) is str:
        return value[:MAX_LABEL_CHARS]
    if type(value) is bool:
        return "true" if value else "false"
    return (str(value) if isinstance(value, int | float) else orjson.dumps(value).decode())[:MAX_LABEL_CHARS]


def label_value(source: str) -> tuple[LabelValue, bool]:
    """How a label's value is read (core/log_metric_settings.py label_source_problem), and whether it
    needs the line's decoded document."""
    if source in _LINE_POSITIONS:
        at = _LINE_POSITIONS[source]
        return (lambda line, sources, doc: _text(line[at])), False
    kind, _, rest = source.partition(".")
    if kind == "field":
        return (lambda line, sources, doc: _text(doc.get(rest))), True
    path = rest.split(".")

    def from_source(line: list[Any], sources: list[dict[str, Any]], doc: dict[str, Any]) -> str:
        node: Any = sources[line[P_SRC]] if 0 <= line[P_SRC] < len(sources) else None
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        return _text(node)
    return from_source, False


class CompiledMetric:
    """One rule: its filter, how its label values are read, and its store."""

    def __init__(self, rule: LogMetricRule, max_series: int, collector: LogMetricsCollector) -> None:
        self.name = rule.name
        self.filter = LineFilter(rule.match)
        readers = [label_value(source) for source in rule.labels.values()]
        self.values = [reader for reader, _ in readers]
        self.field = rule.field  # histograms
        self.needle = orjson.dumps(rule.field).decode() if rule.field else ""  # '"duration_ms"' in the text
        self.needs_document = self.filter.needs_document or any(needs for _, needs in readers) or bool(rule.field)
        self.store: SeriesStore = collector.store(MetricShape(
            rule.name, rule.type, rule.help, tuple(rule.labels), tuple(rule.buckets), rule.max_series or max_series))

    def key(self, line: list[Any], sources: list[dict[str, Any]], doc: dict[str, Any]) -> tuple[str, ...]:
        return tuple([value(line, sources, doc) for value in self.values])


class LogMetrics:
    """The metric rules of one rules version; `observe` takes the fresh lines of a chunk."""

    def __init__(self, settings: LogMetricSettings, collector: LogMetricsCollector = LOG_METRICS) -> None:
        self.rules = [CompiledMetric(rule, settings.max_series, collector) for rule in settings.rules]

    def stores(self) -> list[SeriesStore]:
        return [rule.store for rule in self.rules]

    def observe(self, lines: list[list[Any]], sources: list[dict[str, Any]]) -> None:
        rules, loads = self.rules, orjson.loads
        no_doc: dict[str, Any] = {}
        for line in lines:
            doc: dict[str, Any] | None = None
            for rule in rules:
                flt = rule.filter
                if not flt.everything and not flt.line_matches(line, sources):
                    continue
                store = rule.store
                if rule.needs_document:
                    if rule.needle and rule.needle not in line[P_TEXT] and not flt.needs_document:
                        store.skip("missing")  # the field cannot be in the line
                        continue
                    if doc is None:
                        try:
                            found = loads(line[P_TEXT])
                        except orjson.JSONDecodeError:
                            found = None
                        doc = found if type(found) is dict else no_doc
                    if flt.needs_document and not flt.document_matches(doc):
                        continue
                    if rule.field is not None:
                        value = doc.get(rule.field)
                        if type(value) is int or type(value) is float:
                            store.observe(rule.key(line, sources, doc), value)
                        else:
                            store.skip("missing" if value is None else "not_a_number")
                        continue
                store.count(rule.key(line, sources, doc if doc is not None else no_doc))


def log_metrics_for(settings: LogMetricSettings) -> LogMetrics | None:
    """The compiled rules, or None without any: the group stage then does no per-line work for them."""
    return LogMetrics(settings) if settings.rules else None
