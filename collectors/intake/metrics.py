"""Every metric of the intake in one place, in a registry of its own (served at /metrics).

Labels are the same everywhere: `protocol` (http, forward, otlp_grpc, otlp_http) and, for
rejections, a short machine-readable `reason`. A rejection may come with an example (the bad
record, or what the client was told), which the intake's heartbeat shows beside the reason's count.
"""

from __future__ import annotations

from collections import Counter as Tally

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from collectors.intake.lines import Rejection
from core.heartbeat_figures import INTAKE_EXAMPLES, note_dead_letter


class IntakeMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("logweave_intake_requests", "Requests (HTTP, OTLP) or messages (forward) "
                                "answered, by protocol and outcome", ["protocol", "outcome"], registry=r)
        self.lines_received = Counter("logweave_intake_lines_received",
                                      "Lines of accepted records handed to Kafka, before its ack (a request "
                                      "refused for a busy or absent broker counts again when retried)",
                                      ["protocol"], registry=r)
        self.lines = Counter("logweave_intake_lines", "Lines acknowledged by Kafka", ["protocol"], registry=r)
        self.bytes = Counter("logweave_intake_bytes", "Payload bytes received (as sent, before decompression)",
                             ["protocol"], registry=r)
        self.rejections = Counter("logweave_intake_rejections", "Records or requests refused, by reason",
                                  ["protocol", "reason"], registry=r)
        self.ack_latency = Histogram("logweave_intake_ack_seconds", "From handing a chunk to Kafka to its ack",
                                     ["protocol"], registry=r,
                                     buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
        self.connections = Gauge("logweave_intake_connections", "Open TCP connections", ["protocol"], registry=r)

    def reject(self, protocol: str, reason: str, count: int = 1, example: str | bytes | None = None) -> None:
        self.rejections.labels(protocol, reason).inc(count)
        if example is not None:
            note_dead_letter(INTAKE_EXAMPLES + reason, example)

    def reject_records(self, protocol: str, rejections: list[Rejection]) -> None:
        """Count a request's bad records by reason; the last of each reason is its example."""
        if not rejections:  # the common request: nothing to count
            return
        last = {rejection.reason: rejection for rejection in rejections}
        for reason, count in Tally(rejection.reason for rejection in rejections).items():
            self.reject(protocol, reason, count, last[reason].shown())

    def value(self, name: str, **labels: str) -> float:
        """Current value of a sample (tests and the bench read figures this way)."""
        found = self.registry.get_sample_value(name, labels or None)
        return float(found or 0.0)
