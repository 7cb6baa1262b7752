"""Which offsets a replay covers: `--from`/`--to` values turned into per-partition offset ranges.

A start or end is `earliest`, `latest`, an offset (applied to every chosen partition), an RFC 3339
time, or a duration ago (`2h`). Times go through `offsets_for_times`, whose answers are guarded:
no record at or after the time (a time past the last record, or in the future) means the end
offset, never an error or a silent start from zero; every offset is clamped to what the partition
still holds, so a retention-deleted start begins at the first record kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from core.durations import parse_duration
from core.errors import ConfigError
from core.timeparse import parse_rfc3339_ns


@dataclass(frozen=True, slots=True)
class Position:
    """One end of a replay range: a keyword, an offset or a time in epoch milliseconds."""

    kind: str  # "earliest", "latest", "offset" or "time"
    value: int = 0


@dataclass(frozen=True, slots=True)
class PartitionRange:
    partition: int
    start: int
    end: int  # exclusive

    @property
    def records(self) -> int:
        return max(0, self.end - self.start)


def parse_position(option: str, text: str, now_s: float | None = None) -> Position:
    """Parse a `--from`/`--to` value; the error names the option and the accepted forms."""
    value = text.strip()
    if value in ("earliest", "latest"):
        return Position(value)
    if value.isdigit():
        return Position("offset", int(value))
    stamp = parse_rfc3339_ns(value)
    if stamp is not None:
        return Position("time", stamp // 1_000_000)
    try:
        ago = parse_duration(value)
    except (ValueError, TypeError):
        ago = None
    if ago is not None and ago >= 0:
        now = time.time() if now_s is None else now_s
        return Position("time", int((now - ago) * 1000))
    raise ConfigError(f"{option} {text!r} is not valid; allowed: earliest, latest, an offset (e.g. 1200), "
                      "an RFC 3339 time (2026-11-22T10:00:00Z) or a duration ago (30m, 2h)")


def parse_partitions(text: str | None, available: int) -> list[int]:
    """`--partitions 0,2,5` (default: all), each checked against the topic's partition count."""
    if not text:
        return list(range(available))
    chosen: list[int] = []
    for part in text.split(","):
        if not part.strip().isdigit() or int(part) >= available:
            raise ConfigError(f"--partitions {text!r} is not valid; allowed: comma-separated numbers "
                              f"from 0 to {available - 1}")
        chosen.append(int(part))
    return sorted(set(chosen))


async def resolve(consumer: Any, topic: str, partitions: list[int], start: Position,
                  end: Position) -> list[PartitionRange]:
    """Per-partition [start, end) offsets for `topic`, using an aiokafka consumer's metadata calls."""
    from aiokafka import TopicPartition

    tps = [TopicPartition(topic, p) for p in partitions]
    first = await consumer.beginning_offsets(tps)
    last = await consumer.end_offsets(tps)
    starts = await _offsets(consumer, tps, start, first, last)
    ends = await _offsets(consumer, tps, end, first, last)
    return [PartitionRange(tp.partition, starts[tp], max(starts[tp], ends[tp])) for tp in tps]


async def _offsets(consumer: Any, tps: list[Any], position: Position, first: dict[Any, int],
                   last: dict[Any, int]) -> dict[Any, int]:
    if position.kind == "earliest":
        return dict(first)
    if position.kind == "latest":
        return dict(last)
    if position.kind == "offset":
        return {tp: min(max(position.value, first[tp]), last[tp]) for tp in tps}
    if position.value > time.time() * 1000:  # the future: nothing is there yet
        return dict(last)
    found = await consumer.offsets_for_times({tp: position.value for tp in tps})
    out = {}
    for tp in tps:
        answer = found.get(tp)
        offset = last[tp] if answer is None else answer.offset  # None: no record at or after the time
        out[tp] = min(max(offset, first[tp]), last[tp])
    return out
