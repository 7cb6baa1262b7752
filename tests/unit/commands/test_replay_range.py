"""Replay ranges: `--from`/`--to` parsing and the guards on offsets_for_times answers.

The consumer here is a small fake with fixed beginning/end offsets and offsets_for_times answers,
so each guard (None, a time in the future, a retention-deleted start) can be set up exactly; the
real broker's answers are covered by tests/integration/agents/test_replay.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from aiokafka import TopicPartition

from commands.replay_range import PartitionRange, Position, parse_partitions, parse_position, resolve
from core.errors import ConfigError

NOW = 1_800_000_000.0


def test_positions_in_every_accepted_form() -> None:
    assert parse_position("--from", "earliest") == Position("earliest")
    assert parse_position("--to", " latest ") == Position("latest")
    assert parse_position("--from", "1200") == Position("offset", 1200)
    assert parse_position("--from", "2026-11-22T10:00:00Z") == Position("time", 1_795_341_600_000)
    assert parse_position("--from", "2026-11-22T11:00:00.5+01:00") == Position("time", 1_795_341_600_500)
    assert parse_position("--from", "2h", now_s=NOW) == Position("time", int((NOW - 7200) * 1000))
    assert parse_position("--from", "30s", now_s=NOW) == Position("time", int((NOW - 30) * 1000))


@pytest.mark.parametrize("text", ["yesterday", "-5", "", "12:00", "2026-13-01T00:00:00Z"])
def test_bad_position_names_the_option_and_the_allowed_forms(text: str) -> None:
    with pytest.raises(ConfigError, match=r"--to .* allowed: earliest, latest, an offset"):
        parse_position("--to", text)


def test_partitions_default_to_all_and_are_checked() -> None:
    assert parse_partitions(None, 3) == [0, 1, 2]
    assert parse_partitions("2,0,2", 3) == [0, 2]
    for bad in ("3", "a", "0,,1", "-1"):
        with pytest.raises(ConfigError, match=r"--partitions .* from 0 to 2"):
            parse_partitions(bad, 3)


@dataclass
class Answer:
    offset: int


class FakeConsumer:
    """Partition 0 holds offsets 100..199 (older ones deleted), partition 1 holds 0..49."""

    def __init__(self, by_time: dict[int, int | None]) -> None:
        self.by_time = by_time
        self.asked: list[dict[Any, int]] = []

    async def beginning_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 100 if tp.partition == 0 else 0 for tp in tps}

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: 200 if tp.partition == 0 else 50 for tp in tps}

    async def offsets_for_times(self, query: dict[TopicPartition, int]) -> dict[TopicPartition, Answer | None]:
        self.asked.append(query)
        return {tp: None if (o := self.by_time.get(tp.partition)) is None else Answer(o) for tp in query}


async def ranges(consumer: FakeConsumer, start: Position, end: Position) -> list[PartitionRange]:
    return await resolve(consumer, "sink.file", [0, 1], start, end)


async def test_keywords_and_offsets_are_clamped_to_what_each_partition_holds() -> None:
    consumer = FakeConsumer({})
    assert await ranges(consumer, Position("earliest"), Position("latest")) == [
        PartitionRange(0, 100, 200), PartitionRange(1, 0, 50)]
    assert await ranges(consumer, Position("offset", 10), Position("offset", 120)) == [
        PartitionRange(0, 100, 120), PartitionRange(1, 10, 50)]
    assert await ranges(consumer, Position("offset", 500), Position("latest")) == [
        PartitionRange(0, 200, 200), PartitionRange(1, 50, 50)]
    assert [r.records for r in await ranges(consumer, Position("latest"), Position("earliest"))] == [0, 0]
    assert consumer.asked == []


async def test_times_guard_none_deleted_and_future_answers() -> None:
    consumer = FakeConsumer({0: 40, 1: None})  # 40 was deleted by retention; nothing on 1 after the time
    assert await ranges(consumer, Position("time", 1_000), Position("latest")) == [
        PartitionRange(0, 100, 200), PartitionRange(1, 50, 50)]
    future = FakeConsumer({0: 150, 1: 20})
    assert await ranges(future, Position("time", 10 ** 15), Position("latest")) == [
        PartitionRange(0, 200, 200), PartitionRange(1, 50, 50)]
    assert future.asked == []  # a future time never reaches the broker
    bounded = FakeConsumer({0: 150, 1: 20})
    assert await ranges(bounded, Position("earliest"), Position("time", 1_000)) == [
        PartitionRange(0, 100, 150), PartitionRange(1, 0, 20)]
