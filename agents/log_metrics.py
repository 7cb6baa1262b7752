"""Metrics from logs: the `log_metrics` rules compiled, applied to the lines the group stage takes.

Why the group stage (agents/grouper.py): it is the one place where each parsed line is handled once,
by the one worker owning the line's `logs.parsed` partition, after replays were skipped (its stream
marks), with the line's level, service and source at hand. So each worker counts only its own
partitions' lines and `sum without (instance)` over the workers is the pipeline's total. A chunk's
counts are exposed only once its table update (its stream marks) is stored, and dropped with it when a
rebalance drops it (`Counted`; core/log_metric_series.py, SeriesTally), so the next owner's count of
those lines is the only one.

Cost (the rules run for every line): each rule runs its own loop over a chunk's lines; the level
threshold is checked inline; a line's raw key (its label values and source index) is taken with one
C call and turned into label values once per distinct key and chunk; a histogram's number is read
from the text in C (agents/_fieldscan.c); the line's text is decoded only when that cannot tell, or a
rule needs fields: once per line, whichever rules need it.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable
from operator import itemgetter
from typing import Any

import orjson

from agents.line_filter import LineFilter
from core.log_metric_series import MAX_VALUE_CHARS, LogMetricsCollector, MetricShape, SeriesStore, SeriesTally
from core.log_metric_settings import LogMetricRule, LogMetricSettings
from core.metrics import LOG_METRICS
from core.models import LEVEL_RANK, P_LEVEL, P_SERVICE, P_SRC, P_STREAM, P_TEXT
from core.native import native_module

MAX_LABEL_CHARS = MAX_VALUE_CHARS
_LINE_POSITIONS = {"level": P_LEVEL, "service": P_SERVICE, "stream": P_STREAM}


def _text(value: Any) -> str:
    if value is None:
        return ""
    if type(value) is str:
        return value[:MAX_LABEL_CHARS]
    if type(value) is bool:
        return "true" if value else "false"
    return (str(value) if isinstance(value, int | float) else orjson.dumps(value).decode())[:MAX_LABEL_CHARS]


def _source_value(source: dict[str, Any], path: list[str]) -> str:
    node: Any = source
    for part in path:
        node = node.get(part) if isinstance(node, dict) else None
    return _text(node)


MISSING, NOT_A_NUMBER = "missing", "not_a_number"  # why a histogram skipped a line


def reference_number(doc: dict[str, Any], field: str) -> float | bool | None:
    """The number under `field` of decoded line `doc`: what agents/_fieldscan.c `top_number` answers
    (None: missing or null, False: not a number), without its True (not sure)."""
    found = doc.get(field)
    if type(found) is int or type(found) is float:
        return float(found)
    return None if found is None else False


class CompiledMetric:
    """One rule: its filter, how its label values are read, and its store.

    Labels are read in three groups, in this order (the order of the store's label names): from the
    parsed line (level, service, stream) and its source, both taken with one C `itemgetter` of the
    line (the source by its index in the chunk), then from the line's fields (the decoded document).
    A chunk's lines are first counted by that raw key; each distinct key is turned into label values
    once per chunk.
    """

    def __init__(self, rule: LogMetricRule, max_series: int, collector: LogMetricsCollector) -> None:
        self.name = rule.name
        self.filter = LineFilter(rule.match)
        flt = self.filter
        # the level threshold alone (the common filter) is checked inline; anything else by the filter
        self.min_rank = flt.min_rank if flt.min_rank is not None else -1
        self.other_predicates = not flt.everything and not (
            flt.services is None and flt.namespaces is None and not flt.labels and not flt.needs_document)
        by_line = [(label, _LINE_POSITIONS[src]) for label, src in rule.labels.items() if src in _LINE_POSITIONS]
        by_source = [(label, src.split(".")[1:]) for label, src in rule.labels.items() if src.startswith("source.")]
        by_field = [(label, src.split(".", 1)[1]) for label, src in rule.labels.items() if src.startswith("field.")]
        self.line_labels = len(by_line)
        positions = [at for _, at in by_line] + ([P_SRC] if by_source else [])
        self.raw_key: Callable[[list[Any]], Any] | None = itemgetter(*positions) if positions else None
        self.single = len(positions) == 1  # itemgetter of one position gives the value, not a tuple
        self.source_paths = [path for _, path in by_source]
        self.fields = [field for _, field in by_field]
        self.field = rule.field  # histograms
        scan = native_module("field_scan")
        self.top_number: Callable[[str, str], float | bool | None] | None = scan.top_number if scan else None
        # a histogram whose lines are chosen by level at most, labelled by the line and its source: a C pass
        self.c_histogram = scan.histogram if scan and rule.field and not self.other_predicates and not by_field \
            else None
        labels = tuple(label for label, _ in [*by_line, *by_source, *by_field])
        self.store: SeriesStore = collector.store(MetricShape(
            rule.name, rule.type, rule.help, labels, tuple(rule.buckets), rule.max_series or max_series))

    def labels_of(self, raw: Any, sources: list[dict[str, Any]]) -> tuple[str, ...]:
        """The label values of a raw key (line values, source index, then field values)."""
        fields: tuple[str, ...] = ()
        if self.fields:
            raw, fields = raw
        values = (raw,) if self.single else tuple(raw)
        if not self.source_paths:
            return tuple(_text(v) for v in values) + fields
        src = values[-1]
        source = sources[src] if type(src) is int and 0 <= src < len(sources) else {}
        return tuple(_text(v) for v in values[:-1]) + tuple(_source_value(source, path)
                                                            for path in self.source_paths) + fields

    def observe(self, lines: list[list[Any]], sources: list[dict[str, Any]], docs: Documents) -> SeriesTally:
        """Count or observe the lines of a chunk this rule takes, in a tally for the store (SeriesTally)."""
        tally = SeriesTally(self.store)
        if self.c_histogram is not None:
            self._observe_in_c(lines, sources, docs, tally)
            return tally
        flt, ranks, min_rank, others = self.filter, LEVEL_RANK, self.min_rank, self.other_predicates
        raw_key, fields, field, top_number = self.raw_key, self.fields, self.field, self.top_number
        counts: dict[Any, int] = {}  # raw key -> lines (counters)
        series_of: dict[Any, list[float]] = {}  # raw key -> the tally's series (histograms)
        skipped, bounds = tally.skipped, self.store.bounds
        for n, line in enumerate(lines):
            if min_rank >= 0 and ranks.get(line[P_LEVEL], -1) < min_rank:
                continue
            if others:
                if not flt.line_matches(line, sources):
                    continue
                if flt.needs_document and not flt.document_matches(docs.get(n, line)):
                    continue
            key = raw_key(line) if raw_key is not None else ()
            if fields:
                doc = docs.get(n, line)
                key = (key, tuple([_text(doc.get(name)) for name in fields]))
            if field is None:
                counts[key] = counts.get(key, 0) + 1
                continue
            found = top_number(line[P_TEXT], field) if top_number is not None else True  # agents/_fieldscan.c
            if found is True:  # not sure (or no C scan): decode
                found = reference_number(docs.get(n, line), field)
            if type(found) is float:
                series = series_of.get(key)
                if series is None:
                    series = series_of[key] = tally.series(self.labels_of(key, sources))
                series[bisect_left(bounds, found)] += 1
                series[-1] += found
            else:
                reason = MISSING if found is None else NOT_A_NUMBER
                skipped[reason] = skipped.get(reason, 0) + 1
        for key, lines_counted in counts.items():
            tally.count(self.labels_of(key, sources), lines_counted)
        return tally

    def _observe_in_c(self, lines: list[list[Any]], sources: list[dict[str, Any]], docs: Documents,
                      tally: SeriesTally) -> None:
        """`observe` for a histogram, its per-line loop in C (agents/_fieldscan.c `histogram`)."""
        assert self.c_histogram is not None and self.field is not None
        raw_key, min_rank, field, bounds = self.raw_key, self.min_rank, self.field, self.store.bounds
        if min_rank < 0:
            keys = list(map(raw_key, lines)) if raw_key is not None else [()] * len(lines)
        else:
            ranks = LEVEL_RANK
            keys = [(raw_key(line) if raw_key is not None else ()) if ranks.get(line[P_LEVEL], -1) >= min_rank
                    else _SKIP for line in lines]
        series_of: dict[Any, list[float]] = {}

        def new_series(key: Any) -> list[float]:
            series = series_of[key] = tally.series(self.labels_of(key, sources))
            return series

        missing, not_a_number, unsure = self.c_histogram(lines, P_TEXT, field, bounds, keys, _SKIP, series_of,
                                                         new_series)
        for n in unsure:  # decoded: the reference answer
            found = reference_number(docs.get(n, lines[n]), field)
            if type(found) is float:
                series = series_of.get(keys[n]) or new_series(keys[n])
                series[bisect_left(bounds, found)] += 1
                series[-1] += found
            elif found is None:
                missing += 1
            else:
                not_a_number += 1
        skipped = tally.skipped
        for reason, lines_skipped in ((MISSING, missing), (NOT_A_NUMBER, not_a_number)):
            if lines_skipped:
                skipped[reason] = skipped.get(reason, 0) + lines_skipped


_SKIP = object()  # a line the rule does not take


class Documents:
    """The decoded documents of a chunk's lines, decoded at most once, when a rule needs one."""

    def __init__(self) -> None:
        self.decoded: dict[int, dict[str, Any]] = {}

    def get(self, n: int, line: list[Any]) -> dict[str, Any]:
        doc = self.decoded.get(n)
        if doc is None:
            try:
                found = orjson.loads(line[P_TEXT])
            except orjson.JSONDecodeError:
                found = None
            doc = self.decoded[n] = found if type(found) is dict else {}
        return doc


class LogMetrics:
    """The metric rules of one rules version; `observe` takes the fresh lines of a chunk."""

    def __init__(self, settings: LogMetricSettings, collector: LogMetricsCollector = LOG_METRICS) -> None:
        self.rules = [CompiledMetric(rule, settings.max_series, collector) for rule in settings.rules]

    def stores(self) -> list[SeriesStore]:
        return [rule.store for rule in self.rules]

    def observe(self, lines: list[list[Any]], sources: list[dict[str, Any]]) -> Counted:
        """What the fresh lines of a chunk add to every rule's metric, exposed once `Counted` is called:
        when the chunk's table update is persisted (agents/grouper.py; core/log_metric_series.py,
        SeriesTally says why not at once)."""
        docs = Documents()
        return Counted([tally for rule in self.rules if (tally := rule.observe(lines, sources, docs))])


class Counted:
    """The tallies of one chunk; calling it adds them to their stores (an `after_persisted` callback)."""

    __slots__ = ("tallies",)

    def __init__(self, tallies: list[SeriesTally]) -> None:
        self.tallies = tallies

    def __call__(self) -> None:
        for tally in self.tallies:
            tally.store.add(tally)


def log_metrics_for(settings: LogMetricSettings) -> LogMetrics | None:
    """The compiled rules, or None without any: the group stage then does no per-line work for them."""
    return LogMetrics(settings) if settings.rules else None
