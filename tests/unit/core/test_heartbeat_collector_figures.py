"""The collectors' and the intake's heartbeat figures: lines in are what they took in, lines out what
Kafka acknowledged, read from the components' real metrics (so a renamed counter fails here)."""

from __future__ import annotations

from collectors.files.metrics import FileMetrics
from collectors.intake.metrics import IntakeMetrics
from collectors.pods.metrics import PodMetrics
from core.heartbeat_figures import FILE_COLLECTOR, INTAKE, POD_COLLECTOR, FigureReader


def test_pod_collector_lines_in_are_lines_read_and_out_lines_published() -> None:
    metrics = PodMetrics()
    reader = FigureReader(POD_COLLECTOR, metrics.registry, "pod-collector-h-9102", interval=5.0)
    reader.beat(now=100.0)
    metrics.lines_read.inc(300)  # read from the log streams; Kafka acknowledged a third of them
    metrics.lines.inc(100)
    held = reader.beat(now=110.0)
    assert (held.lines_in_per_s, held.lines_out_per_s) == (30.0, 10.0)
    metrics.lines.inc(200)  # the rest acknowledged, nothing new read
    caught_up = reader.beat(now=120.0)
    assert (caught_up.lines_in_per_s, caught_up.lines_out_per_s) == (0.0, 20.0)
    assert metrics.value("logweave_pod_collector_lines_read_total") == 300


def test_file_collector_lines_in_are_lines_read_and_out_lines_published() -> None:
    metrics = FileMetrics()
    reader = FigureReader(FILE_COLLECTOR, metrics.registry, "file-collector-n-9101", interval=5.0)
    reader.beat(now=100.0)
    metrics.lines_read.inc(50)
    beat = reader.beat(now=105.0)
    assert (beat.lines_in_per_s, beat.lines_out_per_s) == (10.0, 0.0)


def test_intake_lines_in_are_lines_received_and_out_lines_acknowledged() -> None:
    metrics = IntakeMetrics()
    reader = FigureReader(INTAKE, metrics.registry, "intake-h-8080", interval=5.0)
    reader.beat(now=100.0)
    metrics.lines_received.labels("http").inc(40)  # waiting for Kafka's ack
    metrics.lines_received.labels("syslog").inc(10)
    metrics.lines.labels("syslog").inc(10)
    beat = reader.beat(now=110.0)
    assert (beat.lines_in_per_s, beat.lines_out_per_s) == (5.0, 1.0)
