"""Traffic for metrics from logs with its known answers: lines of several services and namespaces,
some errors, numeric and missing and non-numeric `duration_ms`, and the rules that count them.

Shared by the two-worker test (tests/integration/worker/test_log_metrics_two_workers.py) and the
real-Prometheus test (tests/integration/monitoring/test_prometheus.py).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

RULES: list[dict[str, Any]] = [
    {"name": "logweave_log_errors_total", "type": "counter", "help": "Error lines by service and namespace",
     "match": {"level_at_least": "error"}, "labels": ["service", "namespace"]},
    {"name": "logweave_log_duration_ms", "type": "histogram", "help": "duration_ms of lines, by service",
     "field": "duration_ms", "buckets": [10, 50, 100, 500, 1000], "labels": ["service"]},
]
SERVICES = ("checkout", "payments", "shipping")
NAMESPACES = ("shop", "ops")


@dataclass
class Expected:
    errors: Counter[tuple[str, str]] = field(default_factory=Counter)  # (service, namespace) -> error lines
    observed: int = 0
    total_ms: float = 0.0
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass
class Chunk:
    stream: str
    source: dict[str, Any]
    docs: list[dict[str, Any]]


def traffic(streams: int, per_stream: int, time_text: str) -> tuple[list[Chunk], Expected]:
    """`streams` chunks of `per_stream` lines (one event time, `time_text`, so no trace closes early)."""
    chunks, expected, n = [], Expected(), 0
    for s in range(streams):
        namespace = NAMESPACES[s % len(NAMESPACES)]
        docs = []
        for _ in range(per_stream):
            service = SERVICES[n % len(SERVICES)]
            level = "error" if n % 7 == 0 else "fatal" if n % 29 == 0 else "info"
            doc: dict[str, Any] = {"time": time_text, "traceId": f"t{n % 41}", "level": level, "service": service,
                                   "msg": f"line {n}", "n": n}
            if n % 11 == 0:
                expected.skipped["missing"] += 1
            elif n % 13 == 0:
                doc["duration_ms"] = "slow"
                expected.skipped["not_a_number"] += 1
            else:
                doc["duration_ms"] = (n * 37) % 1200 + 0.5
                expected.observed += 1
                expected.total_ms += doc["duration_ms"]
            if level != "info":
                expected.errors[(service, namespace)] += 1
            docs.append(doc)
            n += 1
        chunks.append(Chunk(f"lm{s}", {"kind": "file", "namespace": namespace, "pod": f"pod-{s}", "container": "app"},
                            docs))
    return chunks, expected


def samples(metrics_text: str) -> list[tuple[str, dict[str, str], float]]:
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(metrics_text)
            for s in family.samples]


def grouped_lines(metrics_text: str) -> int:
    """The lines a worker's group stage took (`logweave_lines_total{stage="grouped"}` on its /metrics)."""
    return int(sum(value for name, labels, value in samples(metrics_text)
                   if name == "logweave_lines_total" and labels["stage"] == "grouped"))


def summed(texts: list[str]) -> Expected:
    """What the workers' /metrics texts add up to (a sum over workers: no per-process label)."""
    got = Expected()
    for text in texts:
        for name, labels, value in samples(text):
            if name == "logweave_log_errors_total":
                got.errors[(labels["service"], labels["namespace"])] += int(value)
            elif name == "logweave_log_duration_ms_count":
                got.observed += int(value)
            elif name == "logweave_log_duration_ms_sum":
                got.total_ms += value
            elif name == "logweave_log_metric_skipped_total":
                got.skipped[labels["reason"]] += int(value)
    return got
