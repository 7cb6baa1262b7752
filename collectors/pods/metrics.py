"""Every metric of the pod collector in one place, in a registry of its own.

The collector is its own process with its own /metrics port; a private registry also lets tests
run several collectors in one process and read each one's figures.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily


class LoopCounter:
    """A counter bumped only from the event loop, on every stream's every read and acknowledgement: a
    plain integer, without prometheus_client's lock (two of those per stream per tick were ~5% of the pod
    collector's CPU on a live node). A scrape (its own thread) reads the integer as it is."""

    def __init__(self, name: str, documentation: str, registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.count = 0
        registry.register(self)

    def inc(self, amount: int = 1) -> None:
        self.count += amount

    def describe(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterator[CounterMetricFamily]:
        yield CounterMetricFamily(self.name, self.documentation, value=self.count)


class PodMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.pods_watched = Gauge("logweave_pod_collector_pods_watched", "Pods in scope", registry=r)
        self.streams_open = Gauge("logweave_pod_collector_streams_open", "Log streams open", registry=r)
        self.streams_waiting = Gauge("logweave_pod_collector_streams_waiting",
                                     "Log streams waiting for a slot (max_streams reached)", registry=r)
        self.reconnects = Counter("logweave_pod_collector_stream_reconnects",
                                  "Log streams reopened after they broke or ended", registry=r)
        self.lines_read = LoopCounter("logweave_pod_collector_lines_read",
                                      "Lines read from the log streams (before dropping duplicates and joining "
                                      "multiline records; read again after a chunk Kafka did not acknowledge)", r)
        self.lines = LoopCounter("logweave_pod_collector_lines_published", "Lines acknowledged by Kafka", r)
        self.bytes = LoopCounter("logweave_pod_collector_bytes_published", "Line bytes acknowledged by Kafka", r)
        self.duplicates = LoopCounter("logweave_pod_collector_duplicate_lines",
                                      "Replayed lines dropped on resume (already published)", r)
        self.publish_errors = Counter("logweave_pod_collector_publish_errors",
                                      "Records Kafka did not acknowledge, once per stream they carried", registry=r)
        self.watch_restarts = Counter("logweave_pod_collector_watch_restarts",
                                      "Pod watches restarted, by reason", ["reason"], registry=r)
        self.rules_version = Gauge("logweave_pod_collector_rules_version_info",
                                   "The live rules version this collector runs (value 1)", ["version"], registry=r)
        self.rules_refused = Counter("logweave_pod_collector_rules_refused", "Published rules versions refused",
                                     registry=r)

    def value(self, name: str, **labels: str) -> float:
        """Current value of a sample (tests and the bench read figures this way)."""
        found = self.registry.get_sample_value(name, labels or None)
        return float(found or 0.0)
