"""The intake's refusals: counted by reason, and the latest of each reason kept as its heartbeat example."""

from __future__ import annotations

from collectors.intake.lines import Rejection
from collectors.intake.metrics import IntakeMetrics
from core.heartbeat_figures import INTAKE, FigureReader, note_dead_letter


def test_refused_records_are_counted_by_reason_and_the_last_of_each_is_the_example() -> None:
    metrics = IntakeMetrics()
    metrics.reject_records("http", [Rejection(0, "not_json", "not valid JSON", b'{"a": oops}'),
                                    Rejection(1, "not_object", "not a JSON object (got number)", b"7"),
                                    Rejection(2, "not_json", "not valid JSON", b'{"token=abc123": x}'),
                                    Rejection(3, "bad_trace_id", "trace_id must be 16 bytes")])
    metrics.reject("http", "rate_limited", example='{"error": "tenant \'shop\' is over its rate limit"}')
    metrics.reject("http", "too_many_connections")  # no example given: the count alone
    note_dead_letter("not_object", "a worker's line in the same process")  # apart from the intake's
    beat = FigureReader(INTAKE, metrics.registry, "intake-h-8080", 5.0).beat(now=1.0)
    dead = {reason: (figure.count, figure.example) for reason, figure in beat.dead_letters.items()}
    assert dead == {"not_json": (2, '{"token=********": x}'),  # the last one, its secret masked
                    "not_object": (1, "7"),
                    "bad_trace_id": (1, "record 3: trace_id must be 16 bytes"),  # no record: what was wrong
                    "rate_limited": (1, '{"error": "tenant \'shop\' is over its rate limit"}'),
                    "too_many_connections": (1, None)}
    assert metrics.value("logweave_intake_rejections_total", protocol="http", reason="not_json") == 2
