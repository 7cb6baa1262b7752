"""PartitionBatcher: many streams' chunks per partition in one record, acks shared, order kept.

The publisher is a stand-in recording what it was handed (the real one is exercised against the
broker in tests/integration/collectors/test_file_batching.py); its acks are settled by the test.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import KafkaTimeoutError

from core.models import RawBatch, RawChunk, make_raw_line, wire_lines
from kafka_io.partition_batcher import PartitionBatcher
from kafka_io.publisher import ChunkAck
from tests.support.polling import wait_for


class RecordingPublisher:
    recoveries = 0

    def __init__(self) -> None:
        self.sent: list[tuple[int, RawBatch, asyncio.Future[ChunkAck]]] = []

    def partition_for(self, stream_id: str) -> int:
        return int(stream_id[-1]) % 2

    async def publish(self, chunk: RawBatch, partition: int | None = None) -> asyncio.Future[ChunkAck]:
        assert partition is not None
        ack: asyncio.Future[ChunkAck] = asyncio.get_running_loop().create_future()
        self.sent.append((partition, chunk, ack))
        return ack

    def lost(self, ack: ChunkAck) -> bool:
        return False


def chunk(stream: str, *positions: int) -> RawChunk:
    return RawChunk({"path": stream}, stream, 1, [make_raw_line(p, b"line %d" % p) for p in positions])


def make(linger: float = 0.05, max_lines: int = 100) -> tuple[RecordingPublisher, PartitionBatcher]:
    publisher = RecordingPublisher()
    return publisher, PartitionBatcher(publisher, linger, max_lines, 1 << 20)  # type: ignore[arg-type]


def lines_of(batch: RawBatch) -> dict[str, list[Any]]:
    return {seg.stream_id: [line[0] for line in seg.lines] for seg in batch.segments}


async def test_streams_of_one_partition_share_a_record_and_its_ack() -> None:
    publisher, batcher = make()
    acks = [await batcher.publish(chunk(f"s{n}", n * 10, n * 10 + 1)) for n in range(6)]
    acks.append(await batcher.publish(chunk("s2", 22)))  # a stream's second chunk joins its segment
    await wait_for(lambda: len(publisher.sent) == 2, timeout=10, what="one record per partition after the linger")
    by_partition = {partition: batch for partition, batch, _ in publisher.sent}
    assert lines_of(by_partition[0]) == {"s0": [0, 1], "s2": [20, 21, 22], "s4": [40, 41]}
    assert lines_of(by_partition[1]) == {"s1": [10, 11], "s3": [30, 31], "s5": [50, 51]}
    assert acks[0] is acks[2] is acks[4] is acks[6] and acks[1] is acks[3] is acks[5] and acks[0] is not acks[1]
    for partition, _, sent in publisher.sent:
        sent.set_result(ChunkAck(partition, 7))
    assert await acks[6] == ChunkAck(0, 7)
    await batcher.stop()


async def test_a_full_batch_goes_at_once_and_a_streams_chunks_stay_in_order() -> None:
    publisher, batcher = make(linger=60, max_lines=4)
    await batcher.publish(chunk("s0", 1, 2, 3))
    await batcher.publish(chunk("s0", 4, 5))  # does not fit: the first batch closes, this one opens
    await batcher.publish(chunk("s2", 1, 2))  # 4 lines: full
    await wait_for(lambda: len(publisher.sent) == 2, timeout=10, what="two full batches sent without the linger")
    assert [lines_of(batch) for _, batch, _ in publisher.sent] == [{"s0": [1, 2, 3]}, {"s0": [4, 5], "s2": [1, 2]}]
    await batcher.stop()


async def test_a_failed_record_fails_every_stream_and_discard_drops_unsent_lines() -> None:
    publisher, batcher = make(linger=0.05)
    first = await batcher.publish(chunk("s0", 1))
    await wait_for(lambda: publisher.sent, timeout=10, what="the first record")
    second = await batcher.publish(chunk("s0", 2))
    also = await batcher.publish(chunk("s2", 9))
    publisher.sent[0][2].set_exception(KafkaTimeoutError("refused"))
    with pytest.raises(KafkaTimeoutError):
        await first
    batcher.discard("s0")  # s0 re-reads from its checkpoint: its later line must not go out first
    await wait_for(lambda: len(publisher.sent) == 2, timeout=10, what="the second record")
    assert lines_of(publisher.sent[1][1]) == {"s2": [9]} and second is also
    await batcher.stop()


async def test_a_streams_encoded_and_plain_chunks_share_its_segment_in_order() -> None:
    """A file's read may give encoded lines (the C scan's) and entries (the Python path's) one after
    the other: the segment holds them all in order, and the record is the one plain entries make."""
    publisher, batcher = make()
    first, second, third = chunk("s0", 0, 1), chunk("s0", 2), chunk("s0", 3, 4)
    await batcher.publish(RawChunk(first.source, "s0", 1, wire=wire_lines(first.lines)))
    await batcher.publish(second)
    await batcher.publish(RawChunk(third.source, "s0", 1, wire=wire_lines(third.lines)))
    await batcher.publish(chunk("s2", 7))
    batcher.flush()
    await wait_for(lambda: len(publisher.sent) == 1, timeout=10, what="one record")
    (_, batch, _), = publisher.sent
    assert batch.line_count == 6
    expected = RawBatch(1, [RawChunk(first.source, "s0", 1, first.lines + second.lines + third.lines), chunk("s2", 7)])
    assert batch.encode() == expected.encode()
    await batcher.stop()


async def test_publish_nowait_callers_are_told_their_batch_outcome_in_order(caplog: pytest.LogCaptureFixture) -> None:
    """A batch's immediate callers (the pod poll's streams) are told its outcome by one callback, in the
    order their chunks came, with the batch's future; one failing does not keep it from the others."""
    publisher, batcher = make(linger=0.05)
    told: list[tuple[str, asyncio.Future[ChunkAck]]] = []

    def telling(name: str, fail: bool = False) -> Any:
        def tell(fut: asyncio.Future[ChunkAck]) -> None:
            told.append((name, fut))
            if fail:
                raise RuntimeError(f"{name} broke")
        return tell

    assert batcher.has_room
    ack = batcher.publish_nowait(chunk("s0", 1), None, telling("a"))
    assert batcher.publish_nowait(chunk("s2", 5), None, telling("b", fail=True)) is ack
    assert batcher.publish_nowait(chunk("s0", 2), None, telling("c")) is ack
    await wait_for(lambda: publisher.sent, timeout=10, what="the record")
    assert told == []  # nothing before Kafka answered
    publisher.sent[0][2].set_result(ChunkAck(0, 3))
    assert await ack == ChunkAck(0, 3)
    await wait_for(lambda: len(told) == 3, timeout=10, what="every caller told")
    assert [name for name, _ in told] == ["a", "b", "c"] and all(fut is ack for _, fut in told)
    assert "a stream failed to take its batch's outcome" in caplog.text and "b broke" in caplog.text

    told.clear()
    refused = batcher.publish_nowait(chunk("s0", 3), None, telling("d"))
    await wait_for(lambda: len(publisher.sent) == 2, timeout=10, what="the second record")
    publisher.sent[1][2].set_exception(KafkaTimeoutError("refused"))
    await wait_for(lambda: told, timeout=10, what="the caller told of the failure")
    assert told[0][1] is refused and isinstance(refused.exception(), KafkaTimeoutError)
    await batcher.stop()
