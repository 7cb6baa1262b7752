"""A rolling history of the worker's counters for the stats page (lines/s per stage over minutes).

Samples are taken from the Prometheus metric objects themselves, so the page and `/metrics`
can never disagree.
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from prometheus_client import REGISTRY

_STAGES = ("parse_in", "parse_out", "grouped", "routed")


def metric_values() -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Current value of every logweave sample, by sample name and label set."""
    values: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in REGISTRY.collect():
        if not family.name.startswith("logweave_"):
            continue
        for sample in family.samples:
            values.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return values


def snapshot() -> dict[str, Any]:
    """Totals shown on the stats page, read from the metrics."""
    values = metric_values()

    def by(name: str, label: str) -> dict[str, float]:
        out: dict[str, float] = {}
        wanted = label.split(",")
        for labels, value in values.get(name, {}).items():
            named = dict(labels)
            if named.get("topic", "").endswith(("-changelog", "-__leader")):
                continue  # changelogs are read by standbys and recovery, not by stages
            key = "/".join(named.get(part, "") for part in wanted)
            out[key] = out.get(key, 0.0) + value
        return out

    return {
        "lines": by("logweave_lines_total", "stage"),
        "dead_letters": by("logweave_dead_letters_total", "stage,reason"),
        "open_traces": sum(values.get("logweave_open_traces", {}).values()),
        "traces_closed": by("logweave_traces_closed_total", "cause"),
        "sink_lines": by("logweave_sink_lines_written_total", "sink"),
        "sink_retries": by("logweave_sink_retries_total", "sink"),
        "sink_dead_letters": by("logweave_sink_dead_letters_total", "sink"),
        "breaker": by("logweave_sink_breaker_state", "sink"),
        "lag": by("logweave_consumer_lag", "topic,partition"),
        "rules": {"version": by("logweave_rules_version_info", "version"),
                  "refused": sum(values.get("logweave_rules_refused_total", {}).values())},
        "transforms": by("logweave_transform_lines_total", "rule,outcome"),
    }


class RateHistory:
    """Lines/s per stage, one point per sample, for the last `points` samples."""

    def __init__(self, points: int = 150) -> None:
        self.points: deque[dict[str, Any]] = deque(maxlen=points)
        self._last: tuple[float, dict[str, float]] | None = None

    def sample(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        totals = snapshot()
        current = totals["lines"]
        current.update({f"sink:{k}": v for k, v in totals["sink_lines"].items()})
        if self._last is not None:
            then, before = self._last
            elapsed = max(now - then, 1e-6)
            self.points.append({"t": now, "rates": {k: (v - before.get(k, 0.0)) / elapsed
                                                    for k, v in current.items()}})
        self._last = (now, current)

    def as_list(self) -> list[dict[str, Any]]:
        return list(self.points)
