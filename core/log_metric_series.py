"""The series of metrics from logs, and the Prometheus collector that exposes them on /metrics.

Why not prometheus_client's Counter and Histogram: their names are fixed when the process starts
and every `labels(...).inc()` takes a lock and a lookup, while these metrics come and go with live
rules (agents/live_rules.py) and are updated for every matching line. A store is a plain dict per
metric, updated on the event loop; the collector reads it when /metrics is scraped.

Cardinality is bounded per metric and worker: once a metric has `max_series` series, a line with a
new label value combination is counted in the series whose every label is `other`, and in
`logweave_log_metric_folded_total{metric}`; the first fold of a metric is logged, once.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)
FOLDED_NAME = "logweave_log_metric_folded_total"
SKIPPED_NAME = "logweave_log_metric_skipped_total"
OTHER = "other"
MAX_VALUE_CHARS = 128  # label values are cut to this length


@dataclass(frozen=True, slots=True)
class MetricShape:
    """What identifies a metric's series: a rule that changes any of it starts the metric anew."""

    name: str
    kind: str  # counter | histogram
    help: str
    labels: tuple[str, ...]
    buckets: tuple[float, ...] = ()
    max_series: int = 100


class SeriesStore:
    """One metric's series: label values -> line count (counter) or [bucket counts..., sum] (histogram)."""

    def __init__(self, shape: MetricShape) -> None:
        self.shape = shape
        self.counts: dict[tuple[str, ...], int] = {}
        self.histograms: dict[tuple[str, ...], list[float]] = {}
        self.folded = 0
        self.skipped: dict[str, int] = {}  # reason -> lines
        self.other_key = (OTHER,) * len(shape.labels)
        self.bounds = list(shape.buckets)

    def _admit(self, key: tuple[str, ...], held: dict[tuple[str, ...], Any]) -> tuple[tuple[str, ...], bool]:
        """The series a key goes to, values cut to MAX_VALUE_CHARS: its own, or `other` (True: folded) when
        the metric holds `max_series` series already."""
        if any(len(value) > MAX_VALUE_CHARS for value in key):
            key = tuple(value[:MAX_VALUE_CHARS] for value in key)
        if key in held or len(held) < self.shape.max_series or key == self.other_key:
            return key, False
        return self.other_key, True

    def _fold(self, lines: int) -> None:
        if not self.folded:
            log.warning("metric %s reached max_series=%d on this worker: further label value combinations are "
                        "counted under %r (and in %s)", self.shape.name, self.shape.max_series, OTHER, FOLDED_NAME)
        self.folded += lines

    def count(self, key: tuple[str, ...], lines: int = 1) -> None:
        """`lines` more lines in the counter series of `key`."""
        counts = self.counts
        if key in counts:
            counts[key] += lines
            return
        key, folded = self._admit(key, counts)
        if folded:
            self._fold(lines)
        counts[key] = counts.get(key, 0) + lines

    def series(self, key: tuple[str, ...]) -> tuple[list[float], bool]:
        """The histogram series of `key` ([count per bucket..., +Inf, sum]), and whether it is `other`'s
        for a key past max_series (the caller then counts its lines with `fold`)."""
        series = self.histograms.get(key)
        if series is not None:
            return series, False
        key, folded = self._admit(key, self.histograms)
        series = self.histograms.get(key)
        if series is None:
            series = self.histograms[key] = [0.0] * (len(self.bounds) + 2)
        return series, folded

    def add(self, tally: SeriesTally) -> None:
        """Expose the lines of `tally`: each series admitted (or folded into `other`) now."""
        for key, lines in tally.counts.items():
            self.count(key, lines)
        for key, added in tally.histograms.items():
            series, folded = self.series(key)
            if folded:
                self._fold(int(sum(added[:-1])))
            for at, value in enumerate(added):
                series[at] += value
        skipped = self.skipped
        for reason, lines in tally.skipped.items():
            skipped[reason] = skipped.get(reason, 0) + lines

    def family(self) -> CounterMetricFamily | HistogramMetricFamily:
        shape = self.shape
        labels = list(shape.labels)
        if shape.kind == "counter":
            counter = CounterMetricFamily(shape.name, shape.help or f"Log lines matching rule {shape.name}",
                                          labels=labels)
            for key, value in list(self.counts.items()):
                counter.add_metric(list(key), value)
            return counter
        histogram = HistogramMetricFamily(shape.name, shape.help or f"Log field observed by rule {shape.name}",
                                          labels=labels)
        bounds = [*(repr(float(b)) for b in shape.buckets), "+Inf"]  # le as prometheus_client writes it: 10.0
        for key, series in list(self.histograms.items()):
            cumulative, running = [], 0.0
            for bound, count in zip(bounds, series, strict=False):
                running += count
                cumulative.append((bound, running))
            histogram.add_metric(list(key), cumulative, series[-1])
        return histogram


class SeriesTally:
    """What one chunk adds to a metric, held until the chunk's stream marks are stored (agents/grouper.py).

    Why not count into the store at once: a rebalance drops the table updates not yet persisted and the
    partition's next owner takes their lines again as fresh. Counted at once, those lines would stay in
    the old owner's exposed counts and be counted again by the new one (sums over workers 2x and 3x
    after one and two rebalances). A tally is added to its store (`SeriesStore.add`) only once its
    update is persisted, and forgotten if the update is dropped.
    """

    __slots__ = ("counts", "histograms", "skipped", "store")

    def __init__(self, store: SeriesStore) -> None:
        self.store = store
        self.counts: dict[tuple[str, ...], int] = {}
        self.histograms: dict[tuple[str, ...], list[float]] = {}  # label values -> [count per bucket..., sum]
        self.skipped: dict[str, int] = {}

    def count(self, key: tuple[str, ...], lines: int) -> None:
        self.counts[key] = self.counts.get(key, 0) + lines

    def series(self, key: tuple[str, ...]) -> list[float]:
        """The tally's histogram series of `key` (max_series is applied when it is added to the store)."""
        series = self.histograms.get(key)
        if series is None:
            series = self.histograms[key] = [0.0] * (len(self.store.bounds) + 2)
        return series

    def __bool__(self) -> bool:
        return bool(self.counts or self.histograms or self.skipped)


class LogMetricsCollector(Collector):
    """Every live metric's store, by name; the folded and skipped counts of each."""

    def __init__(self) -> None:
        self.stores: dict[str, SeriesStore] = {}

    def store(self, shape: MetricShape) -> SeriesStore:
        """The store of `shape`: the one held if its shape is the same (counts go on), else a new one."""
        held = self.stores.get(shape.name)
        if held is not None and held.shape == shape:
            return held
        if held is not None:
            log.info("metric %s changed (labels, buckets, help or max_series): it starts anew", shape.name)
        store = self.stores[shape.name] = SeriesStore(shape)
        return store

    def retain(self, stores: Iterable[SeriesStore]) -> None:
        """Expose only `stores` (those of the rules versions still held)."""
        keep = {id(store) for store in stores}
        self.stores = {name: store for name, store in self.stores.items() if id(store) in keep}

    def describe(self) -> list[CounterMetricFamily]:
        return []  # names come and go with the rules; no collision check at registration

    def collect(self) -> Iterator[CounterMetricFamily | HistogramMetricFamily]:
        stores = list(self.stores.values())
        folded = CounterMetricFamily(FOLDED_NAME, "Log metric lines counted under `other` past max_series",
                                     labels=["metric"])
        skipped = CounterMetricFamily(SKIPPED_NAME, "Matching lines a log histogram could not observe "
                                      "(field missing or not a number)", labels=["metric", "reason"])
        for store in stores:
            yield store.family()
            folded.add_metric([store.shape.name], store.folded)
            for reason, lines in list(store.skipped.items()):
                skipped.add_metric([store.shape.name, reason], lines)
        if stores:
            yield folded
            yield skipped

