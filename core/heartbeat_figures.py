"""A component's heartbeat figures, read from its own Prometheus registry.

Each component already counts what it does in its metrics; a heartbeat is those counters turned
into rates between two beats, so the heartbeat and `/metrics` never disagree and no stage needs
code of its own. A recipe per kind says which samples are lines in, lines out, stages, lag and dead
letters. Dead-letter counters carry no line, so the places that dead-letter a line also call
`note_dead_letter` (one line each), which keeps the latest example per reason.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

from prometheus_client import CollectorRegistry

from core.heartbeat import DeadLetterFigure, Heartbeat
from core.redact import mask_text

Labels = dict[str, str]
Match = Callable[[Labels], bool]
EXAMPLE_CHARS = 300
INTAKE_EXAMPLES = "intake:"  # the intake's examples, apart from a worker's of the same reason in one process
_examples: dict[str, str] = {}


def note_dead_letter(reason: str, line: str | bytes) -> None:
    """Keep `line` as the latest example of `reason` for this process's next heartbeat.

    Kept at twice the length shown, so a secret that straddles the cut is still recognised (and
    masked) when the example is read; masking waits for the read, once per beat, not per line."""
    kept = line[:2 * EXAMPLE_CHARS * 4]  # at most 4 bytes a character
    text = kept.decode("utf-8", "replace") if isinstance(kept, bytes) else kept
    _examples[reason] = text[:2 * EXAMPLE_CHARS]


def latest_example(reason: str) -> str | None:
    """The latest example of `reason`, secrets masked (core/redact.py) and cut to EXAMPLE_CHARS."""
    text = _examples.get(reason)
    return None if text is None else mask_text(text)[:EXAMPLE_CHARS]


def _any(labels: Labels) -> bool:
    return True


def where(**wanted: str) -> Match:
    return lambda labels: all(labels.get(k) == v for k, v in wanted.items())


@dataclass(frozen=True)
class Sample:
    """The sum of one sample name's series whose labels match."""

    name: str
    match: Match = _any

    def read(self, values: dict[str, list[tuple[Labels, float]]]) -> float:
        return sum(value for labels, value in values.get(self.name, []) if self.match(labels))


@dataclass(frozen=True)
class Recipe:
    kind: str
    lines_in: Sample
    lines_out: Sample
    stages: dict[str, Sample] = field(default_factory=dict)  # counters, in pipeline order
    lag: Sample | None = None  # a gauge of records waiting
    dead_letters: tuple[str, str] | None = None  # (counter sample name, reason label)
    gauges: dict[str, Sample] = field(default_factory=dict)  # figures sent as they are
    counters_per_minute: dict[str, Sample] = field(default_factory=dict)  # figures sent as rates per minute
    example_prefix: str = ""  # a dead letter's example is noted under this prefix + its reason
    rules_version: str | None = None  # an info gauge whose `version` label set to 1 is the rules version run


def registry_values(registry: CollectorRegistry) -> dict[str, list[tuple[Labels, float]]]:
    values: dict[str, list[tuple[Labels, float]]] = {}
    for family in registry.collect():
        for sample in family.samples:
            values.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return values


def host_name() -> str:
    return os.environ.get("HOSTNAME") or socket.gethostname()


def logweave_version() -> str:
    try:
        return version("logweave")
    except PackageNotFoundError:
        return "unknown"


def catch_up_seconds(lag: int | None, out_rate: float) -> float | None:
    """How long the backlog takes at the current output rate (None when unknown or not moving)."""
    if lag is None or (lag > 0 and out_rate <= 0):
        return None
    return lag / out_rate if lag else 0.0


class FigureReader:
    """Turns a registry into heartbeats: totals now, rates since the previous beat."""

    def __init__(self, recipe: Recipe, registry: CollectorRegistry, component_id: str, interval: float) -> None:
        self.recipe, self.registry, self.component_id, self.interval = recipe, registry, component_id, interval
        self.host, self.version = host_name(), logweave_version()
        self._last: tuple[float, dict[str, float]] | None = None

    def _counters(self, values: dict[str, list[tuple[Labels, float]]]) -> dict[str, float]:
        r = self.recipe
        counters = {"in": r.lines_in.read(values), "out": r.lines_out.read(values)}
        counters.update({f"stage:{name}": sample.read(values) for name, sample in r.stages.items()})
        counters.update({f"minute:{name}": sample.read(values) for name, sample in r.counters_per_minute.items()})
        return counters

    def beat(self, now: float, state: str = "running") -> Heartbeat:
        r = self.recipe
        values = registry_values(self.registry)
        counters = self._counters(values)
        rates = dict.fromkeys(counters, 0.0)
        if self._last is not None:
            then, before = self._last
            elapsed = max(now - then, 1e-6)
            rates = {key: max(0.0, value - before.get(key, 0.0)) / elapsed for key, value in counters.items()}
        self._last = (now, counters)
        lag = int(r.lag.read(values)) if r.lag is not None else None
        out_rate = rates["out"]
        dead: dict[str, DeadLetterFigure] = {}
        if r.dead_letters is not None:
            name, label = r.dead_letters
            for labels, value in values.get(name, []):
                reason = labels.get(label, "unknown")
                figure = dead.setdefault(reason, DeadLetterFigure(0, latest_example(r.example_prefix + reason)))
                figure.count += int(value)
        figures = {name: sample.read(values) for name, sample in r.gauges.items()}
        figures.update({f"{name}_per_minute": rates[f"minute:{name}"] * 60 for name in r.counters_per_minute})
        running = [labels.get("version") for labels, value in values.get(r.rules_version or "", []) if value == 1]
        return Heartbeat(
            kind=r.kind, id=self.component_id, host=self.host, version=self.version, state=state, at=now,
            interval=self.interval, lines_in_per_s=rates["in"], lines_out_per_s=out_rate,
            stages={name: rates[f"stage:{name}"] for name in r.stages}, lag=lag,
            lag_seconds=catch_up_seconds(lag, out_rate),
            dead_letters=dead, figures=figures, rules_version=running[0] if running else None)


# A collector's or the intake's lines in are the lines it took in (read, received), counted before Kafka
# acknowledges them; lines out are those Kafka acknowledged. In above out is what waits for Kafka (or,
# for the pod collector, duplicates dropped on a reconnect and lines joined into multiline records).
FILE_COLLECTOR = Recipe("file-collector", Sample("logweave_file_collector_lines_read_total"),
                        Sample("logweave_file_collector_lines_published_total"),
                        gauges={"files": Sample("logweave_file_collector_files_tracked"),
                                "unread_bytes": Sample("logweave_file_collector_lag_bytes")},
                        rules_version="logweave_file_collector_rules_version_info")
POD_COLLECTOR = Recipe("pod-collector", Sample("logweave_pod_collector_lines_read_total"),
                       Sample("logweave_pod_collector_lines_published_total"),
                       gauges={"streams": Sample("logweave_pod_collector_streams_open")},
                       rules_version="logweave_pod_collector_rules_version_info")
INTAKE = Recipe("intake", Sample("logweave_intake_lines_received_total"), Sample("logweave_intake_lines_total"),
                dead_letters=("logweave_intake_rejections_total", "reason"),
                gauges={"connections": Sample("logweave_intake_connections")}, example_prefix=INTAKE_EXAMPLES)


def _stage_topic(labels: Labels) -> bool:
    topic = labels.get("topic", "")
    return not topic.endswith(("-changelog", "-__leader")) and "sink." not in topic


def worker_recipe() -> Recipe:
    lines = "logweave_lines_total"
    return Recipe("worker", Sample(lines, where(stage="parse_in")), Sample(lines, where(stage="routed")),
                  stages={name: Sample(lines, where(stage=name)) for name in ("parse_in", "parse_out", "grouped",
                                                                               "routed")},
                  lag=Sample("logweave_consumer_lag", _stage_topic),
                  dead_letters=("logweave_dead_letters_total", "reason"),
                  gauges={"open_traces": Sample("logweave_open_traces")},
                  counters_per_minute={"traces_closed": Sample("logweave_traces_closed_total")},
                  rules_version="logweave_rules_version_info")


def drain_recipe(sink: str, sink_topic: str) -> Recipe:
    written = Sample("logweave_sink_lines_written_total", where(sink=sink))
    return Recipe("drain", written, written, lag=Sample("logweave_consumer_lag", where(topic=sink_topic)),
                  dead_letters=None)
