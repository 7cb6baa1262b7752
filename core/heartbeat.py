"""Heartbeats: each component's figures every few seconds, and the pipeline view folded from them.

Every process (collectors, intake, workers and their drains) publishes one small record per
interval to a compacted topic, keyed by its component id, so the topic always holds each
component's latest figures. Anyone can then read the whole pipeline from that one topic: the
`logweave status` view and any worker's stats page. This module is the record and the fold;
kafka_io/heartbeat.py moves them over Kafka, core/heartbeat_figures.py computes the figures.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict, dataclass, field, fields, replace
from typing import Any

import orjson

FORMAT = 1
# Pipeline order of component kinds, for views that list stages the way lines flow.
KIND_ORDER = ("file-collector", "pod-collector", "intake", "worker", "drain")
MISSING_AFTER_BEATS = 3  # a component silent for this many of its intervals is shown as missing
FORGET_AFTER = 6 * 3600.0  # seconds; the default of `heartbeats.forget_after`


class HeartbeatError(ValueError):
    """A record on the stats topic that is not a heartbeat of a known format."""


@dataclass
class DeadLetterFigure:
    count: int
    example: str | None = None  # the latest line dead-lettered for this reason (cut to 300 characters)


@dataclass
class SinkFigure:
    name: str
    state: str  # starting, ready, failing, open
    last_error: str | None = None
    oldest_unwritten_age: float | None = None  # seconds


@dataclass
class Heartbeat:
    kind: str  # one of KIND_ORDER
    id: str  # stable across restarts: the compaction key
    host: str
    version: str
    state: str  # starting, running, stopping, stopped (+ missing, set by the reader)
    at: float  # epoch seconds when sent
    interval: float  # seconds between beats
    lines_in_per_s: float = 0.0
    lines_out_per_s: float = 0.0
    stages: dict[str, float] = field(default_factory=dict)  # lines/s per stage, in pipeline order
    lag: int | None = None  # records waiting for this component
    lag_seconds: float | None = None  # how long that backlog takes at the current output rate
    dead_letters: dict[str, DeadLetterFigure] = field(default_factory=dict)
    sink: SinkFigure | None = None
    figures: dict[str, float] = field(default_factory=dict)  # kind-specific (open traces, closes per minute)
    rules_version: str | None = None  # the live rules version it runs (collectors and workers follow config.rules)

    def encode(self) -> bytes:
        return orjson.dumps({"format": FORMAT, **asdict(self)})

    @classmethod
    def decode(cls, raw: bytes) -> Heartbeat:
        try:
            data = orjson.loads(raw)
            if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
                raise HeartbeatError(f"not a heartbeat of format {FORMAT}")
            dead = {reason: DeadLetterFigure(**figure) for reason, figure in data.pop("dead_letters", {}).items()}
            sink = data.pop("sink", None)
            known = {name: value for name, value in data.items() if name in _FIELDS}  # newer writers may add some
            return cls(**known, dead_letters=dead, sink=SinkFigure(**_known(SinkFigure, sink)) if sink else None)
        except (orjson.JSONDecodeError, TypeError, AttributeError) as exc:
            raise HeartbeatError(f"not a heartbeat: {exc}") from None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _known(kind: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(kind)}
    return {name: value for name, value in data.items() if name in names}


_FIELDS = {f.name for f in fields(Heartbeat)}


@dataclass
class PipelineView:
    """The latest heartbeat of every component, as read from the stats topic."""

    components: dict[str, Heartbeat] = field(default_factory=dict)
    refused: int = 0  # records that were not heartbeats
    # a component silent this long is dropped (gone for good: a node removed, a port changed)
    forget_after: float = FORGET_AFTER

    def fold(self, key: bytes | None, value: bytes | None) -> None:
        if value is None:  # a tombstone: the component was removed for good
            if key is not None:
                self.components.pop(key.decode(errors="replace"), None)
            return
        try:
            beat = Heartbeat.decode(value)
        except HeartbeatError:
            self.refused += 1
            return
        previous = self.components.get(beat.id)
        if previous is None or beat.at >= previous.at:
            self.components[beat.id] = beat

    def current(self, now: float) -> list[Heartbeat]:
        """Components in pipeline order (then by id); silent ones marked `missing`, and those silent for
        more than `forget_after` dropped."""
        for gone in [key for key, latest in self.components.items() if now - latest.at > self.forget_after]:
            del self.components[gone]
        out = []
        for latest in self.components.values():
            silent = now - latest.at > MISSING_AFTER_BEATS * latest.interval
            out.append(replace(latest, state="missing") if silent and latest.state != "stopped" else latest)
        rank = {kind: i for i, kind in enumerate(KIND_ORDER)}
        return sorted(out, key=lambda b: (rank.get(b.kind, len(rank)), b.id))

    def summary(self, now: float) -> dict[str, Any]:
        """The whole pipeline as plain data (what `logweave status --json` prints)."""
        beats = self.current(now)
        live = [b for b in beats if b.state == "running"]
        dead: dict[str, dict[str, Any]] = {}
        for beat in beats:
            for reason, figure in beat.dead_letters.items():
                entry = dead.setdefault(dead_letter_key(beat.kind, reason), {"count": 0, "example": None,
                                                                            "components": []})
                entry["count"] += figure.count
                entry["example"] = figure.example or entry["example"]
                entry["components"].append(beat.id)
        return {
            "at": now,
            "components": [beat.as_dict() for beat in beats],
            "stages": [{"kind": kind,
                        "lines_in_per_s": sum(b.lines_in_per_s for b in live if b.kind == kind),
                        "lines_out_per_s": sum(b.lines_out_per_s for b in live if b.kind == kind),
                        "lag": sum(b.lag or 0 for b in live if b.kind == kind),
                        "components": sum(1 for b in beats if b.kind == kind)}
                       for kind in KIND_ORDER if any(b.kind == kind for b in beats)],
            "sinks": [{**(b.sink.__dict__ if b.sink else {}), "component": b.id, "lag": b.lag,
                       "lag_seconds": b.lag_seconds, "lines_out_per_s": b.lines_out_per_s}
                      for b in beats if b.sink is not None],
            "dead_letters": dead,
            "refused_records": self.refused,
        }


def dead_letter_key(kind: str, reason: str) -> str:
    """How a reason is listed across the pipeline: a worker's and a drain's as they are (lines in
    logs.deadletter), another kind's after it (`intake: not_json`, records the intake refused), so
    the same reason name in two stages is not summed into one row."""
    return reason if kind in ("worker", "drain") else f"{kind}: {reason}"


class PipelineHistory:
    """Lines/s in and out and lag per stage over the last `points` samples of a view, for a chart."""

    def __init__(self, points: int = 180) -> None:
        self.points: deque[dict[str, Any]] = deque(maxlen=points)

    def sample(self, summary: dict[str, Any]) -> None:
        self.points.append({"t": summary["at"], "stages": {
            stage["kind"]: {"in": stage["lines_in_per_s"], "out": stage["lines_out_per_s"], "lag": stage["lag"]}
            for stage in summary["stages"]}})

    def as_list(self) -> list[dict[str, Any]]:
        return list(self.points)
