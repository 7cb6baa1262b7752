"""Every component's heartbeat age as Prometheus gauges, from the heartbeat topic this worker follows.

`up` only says whether Prometheus reaches a process it was told about; a collector on a node
nobody scrapes, or one alive but cut off from Kafka, looks fine there. Every component already
beats to `stats.heartbeats` and every worker follows that topic for its stats page, so each worker
exports, per component (`component` = its heartbeat id, `kind`):

- `logweave_component_heartbeat_age_seconds`: seconds since its last beat, computed when scraped;
- `logweave_component_heartbeat_interval_seconds`: the interval it says it beats at.

A component whose last beat is `stopped` (a clean stop) has no series: it is gone on purpose,
not missing. One silent for more than `heartbeats.forget_after` is dropped from the view and so
from here too. The LogweaveHeartbeatMissing alert takes the smallest age over all workers.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable, Iterator

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from core.heartbeat import PipelineView

AGE = "logweave_component_heartbeat_age_seconds"
INTERVAL = "logweave_component_heartbeat_interval_seconds"
LABELS = ["component", "kind"]


class HeartbeatAgeCollector(Collector):
    """Reads the view at each scrape; `view` is asked anew each time (the follower may replace it)."""

    def __init__(self, view: Callable[[], PipelineView], clock: Callable[[], float] = time.time) -> None:
        self.view, self.clock = view, clock

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()

    def _families(self) -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (GaugeMetricFamily(AGE, "Seconds since the component's last heartbeat (none once it stopped "
                                       "cleanly), as this worker reads the heartbeat topic", labels=LABELS),
                GaugeMetricFamily(INTERVAL, "Seconds between the component's heartbeats, as it says",
                                  labels=LABELS))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        age, interval = self._families()
        now = self.clock()
        for beat in self.view().current(now):
            if beat.state == "stopped":
                continue
            age.add_metric([beat.id, beat.kind], max(0.0, now - beat.at))
            interval.add_metric([beat.id, beat.kind], beat.interval)
        yield age
        yield interval


# Keyed by the registry itself, weakly: an id() can be reused by a new registry once the old one is gone,
# which then got no collector (seen when a test's registry took a collected one's address).
_installed: weakref.WeakKeyDictionary[CollectorRegistry, HeartbeatAgeCollector] = weakref.WeakKeyDictionary()


def install(view: Callable[[], PipelineView], registry: CollectorRegistry = REGISTRY) -> HeartbeatAgeCollector:
    """Export the gauges in `registry` (once per registry; a later call points them at the new view)."""
    collector = _installed.get(registry)
    if collector is None:
        collector = _installed[registry] = HeartbeatAgeCollector(view)
        registry.register(collector)
    collector.view = view
    return collector
