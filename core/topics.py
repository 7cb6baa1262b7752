"""Logical topic names in one place; the Kafka name is the configured prefix plus these."""

from __future__ import annotations

from typing import Final

RAW: Final = "logs.raw"
PARSED: Final = "logs.parsed"
DEADLETTER: Final = "logs.deadletter"
TRACES_CLOSED: Final = "traces.closed"
POSITIONS: Final = "logs.positions"  # compacted: the pod collector's last acknowledged position per stream
RULES: Final = "config.rules"  # compacted, one partition: the live rules (core/rules.py)
HEARTBEATS: Final = "stats.heartbeats"  # compacted, one partition: each component's latest figures (core/heartbeat.py)


def sink_topic(sink_name: str) -> str:
    """Logical topic a sink's drain consumes: `sink.<name>`."""
    return f"sink.{sink_name}"


def pipeline_topics(enabled_sinks: list[str]) -> list[str]:
    """Every topic the pipeline uses for the given enabled sinks."""
    return [RAW, PARSED, DEADLETTER, TRACES_CLOSED, *(sink_topic(s) for s in enabled_sinks)]


TRACE_TABLE: Final = "traces"


def changelog_topic(app_id: str) -> str:
    """The trace table's changelog (faust names it `<app id>-<table>-changelog`, without the prefix)."""
    return f"{app_id}-{TRACE_TABLE}-changelog"
