"""Every metric of the file collector in one place, in a registry of its own.

The collector runs as its own process with its own /metrics port (`collector.metrics_port`); a
private registry also lets tests run several collectors in one process and read their figures.
Per-file lag is labelled by path, so the series are removed when a file is released.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class FileMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        p = "logweave_file_collector_"
        self.files_tracked = Gauge(p + "files_tracked", "Files open and followed", registry=r)
        self.bytes_read = Counter(p + "bytes_read", "Bytes read from files", registry=r)
        self.lines_read = Counter(p + "lines_read", "Lines read (after partial merging)", registry=r)
        self.lines_published = Counter(p + "lines_published", "Lines acknowledged by Kafka", registry=r)
        self.lines_truncated = Counter(p + "lines_truncated", "Lines cut at max_line_bytes", registry=r)
        self.lines_bad_time = Counter(p + "lines_bad_time", "CRI lines whose timestamp did not parse (flagged; "
                                      "the collection time stands in)", registry=r)
        self.lines_bad_prefix = Counter(p + "lines_bad_prefix", "Lines of a CRI file without the CRI prefix "
                                        "(flagged; dead-lettered as bad_cri_prefix unless JSON)", registry=r)
        self.rotations = Counter(p + "rotations", "Rotations seen, by kind", ["kind"], registry=r)
        self.send_errors = Counter(p + "send_errors", "Chunks Kafka did not acknowledge (re-read)", registry=r)
        self.checkpoint_age = Gauge(p + "checkpoint_age_seconds", "Seconds since the last checkpoint save",
                                    registry=r)
        self.lag_bytes = Gauge(p + "lag_bytes", "Bytes in a file not yet read", ["path"], registry=r)
        self.watch_errors = Counter(p + "inotify_errors", "inotify watches refused or queue overflows",
                                    registry=r)
        self.write_events = Gauge(p + "write_events", "1 while passes read only the files inotify saw written, "
                                  "0 while every pass looks at every file (most are written every pass)", registry=r)
        self.write_events.set(1)
        self.rules_version = Gauge(p + "rules_version_info", "The live rules version this collector runs (value 1)",
                                   ["version"], registry=r)
        self.rules_refused = Counter(p + "rules_refused", "Published rules versions refused", registry=r)

    def value(self, name: str, **labels: str) -> float:
        """Current value of a sample (tests and the bench read figures this way)."""
        found = self.registry.get_sample_value(name, labels or None)
        return float(found or 0.0)
