"""ChunkPublisher after a sequence error: a new producer, and the broker's end offsets to find lost acks."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiokafka.errors import OutOfOrderSequenceNumber
from aiokafka.structs import RecordMetadata, TopicPartition

from core.models import FLAG_TRUNCATED, RawBatch, RawChunk, decode_raw_chunks, make_raw_line
from core.settings import load_settings
from kafka_io.publisher import ChunkAck, ChunkPublisher


class FakeProducer:
    """Records sends; each returns a future the test settles."""

    def __init__(self) -> None:
        self.sent: list[asyncio.Future[RecordMetadata]] = []
        self.records: list[tuple[bytes | None, int | None, bytes]] = []
        self.stopped = False

    async def send(self, topic: str, value: bytes, key: bytes | None,
                   partition: int | None = None) -> asyncio.Future[RecordMetadata]:
        fut: asyncio.Future[RecordMetadata] = asyncio.get_running_loop().create_future()
        self.sent.append(fut)
        self.records.append((key, partition, value))
        return fut

    async def flush(self) -> None:
        await asyncio.gather(*self.sent, return_exceptions=True)

    async def stop(self) -> None:
        self.stopped = True


def stored_at(offset: int) -> RecordMetadata:
    return RecordMetadata("logs.raw", 0, TopicPartition("logs.raw", 0), offset, -1, 0, 0)


def chunk(position: int) -> RawChunk:
    return RawChunk({"kind": "file"}, "file:1:2:abc:0", 0, [make_raw_line(position, b"line", "stdout", 0, 0)])


@pytest.fixture
def publisher(monkeypatch: pytest.MonkeyPatch) -> tuple[ChunkPublisher, list[FakeProducer]]:
    settings = load_settings(environ={}, kafka={"brokers": "127.0.0.1:1"})
    pub = ChunkPublisher(settings.kafka, "logs.raw", 1 << 20, create_topics=[])
    producers: list[FakeProducer] = []

    async def start_producer() -> Any:
        producers.append(FakeProducer())
        return producers[-1]

    async def end_offsets() -> dict[int, int]:
        return {0: 11}  # the broker restarted holding offsets 0-10

    monkeypatch.setattr(pub, "_start_producer", start_producer)
    monkeypatch.setattr(pub, "_read_end_offsets", end_offsets)
    return pub, producers


async def test_an_ack_carries_where_the_chunk_was_stored(publisher: tuple[ChunkPublisher, list[FakeProducer]]) -> None:
    pub, producers = publisher
    await pub.start()
    done = await pub.publish(chunk(0))
    producers[0].sent[0].set_result(stored_at(7))
    assert await done == ChunkAck(0, 7)
    assert pub.in_flight_bytes == 0


async def test_a_sequence_error_replaces_the_producer_and_tells_which_acks_were_lost(
        publisher: tuple[ChunkPublisher, list[FakeProducer]]) -> None:
    pub, producers = publisher
    await pub.start()
    acked = [await pub.publish(chunk(n)) for n in range(3)]
    for n, fut in enumerate(producers[0].sent):
        fut.set_result(stored_at(10 + n))
    acks = [await fut for fut in acked]
    failed = await pub.publish(chunk(3))
    producers[0].sent[3].set_exception(OutOfOrderSequenceNumber())  # the broker lost offsets 11 and 12
    with pytest.raises(OutOfOrderSequenceNumber):
        await failed
    # aiokafka keeps the producer id and sequence numbers the broker refuses: only a new producer helps
    assert pub.recoveries == 1 and producers[0].stopped and len(producers) == 2
    assert [pub.lost(ack) for ack in acks] == [False, True, True]
    again = await pub.publish(chunk(1))
    assert len(producers[1].sent) == 1 and len(producers[0].sent) == 4
    producers[1].sent[0].set_result(stored_at(11))
    assert await again == ChunkAck(0, 11, producer=1)
    assert not pub.lost(await again)  # stored by the new producer, after the end offsets were read
    assert pub.in_flight_bytes == 0


def test_an_oversize_multi_stream_chunk_is_split_between_streams_then_lines() -> None:
    settings = load_settings(environ={}, kafka={"brokers": "127.0.0.1:1", "max_message_bytes": 4096,
                                                    "payload_codec": "none"})
    pub = ChunkPublisher(settings.kafka, "logs.raw", 1 << 20, create_topics=[])
    streams = [RawChunk({"kind": "file", "path": f"/p{s}"}, f"file:1:{s}:x:0", 9,
                        [make_raw_line(n * 100, b"x%05d" % n + b"y" * 90, "stdout", 0, 0) for n in range(30)])
               for s in range(4)]
    streams.append(RawChunk({"kind": "file"}, "huge", 9, [make_raw_line(0, b"z" * 10_000, "stdout", 0, 0)]))
    payloads = pub.encode(RawBatch(9, streams))
    assert len(payloads) > 5 and all(len(p) <= 4096 - 1024 for p in payloads)
    decoded = [chunk for payload in payloads for chunk in decode_raw_chunks(payload)]
    for stream in streams[:4]:  # every line once, in position order, under its own stream and source
        mine = [c for c in decoded if c.stream_id == stream.stream_id]
        assert all(c.source == stream.source for c in mine)
        assert [line for c in mine for line in c.lines] == stream.lines
    [huge] = [c for c in decoded if c.stream_id == "huge"]
    assert huge.lines[0][4] & FLAG_TRUNCATED and len(huge.lines[0][1]) < 4096


async def test_a_multi_stream_chunk_goes_to_its_partition_without_a_key(
        publisher: tuple[ChunkPublisher, list[FakeProducer]]) -> None:
    pub, producers = publisher
    await pub.start()
    done = await pub.publish(RawBatch(1, [chunk(0), chunk(5)]), partition=3)
    assert producers[0].records[0][:2] == (None, 3)
    await pub.publish(chunk(9))
    assert producers[0].records[1][:2] == (b"file:1:2:abc:0", None)
    producers[0].sent[0].set_result(stored_at(4))
    assert (await done).offset == 4


async def test_partition_for_is_where_a_record_keyed_by_the_stream_id_goes(
        publisher: tuple[ChunkPublisher, list[FakeProducer]], monkeypatch: pytest.MonkeyPatch) -> None:
    """Streams keep the partition they used when records were keyed by stream id (before version 2). The
    metadata is read at most every _PARTITIONS_CHECK_SECONDS: a grown topic is picked up that much later."""
    from types import SimpleNamespace

    from aiokafka.partitioner import DefaultPartitioner

    import kafka_io.publisher as module

    clock = [1000.0]
    monkeypatch.setattr(module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    pub, producers = publisher
    await pub.start()
    counts, asked = [6], [0]

    def partitions_for_topic(topic: str) -> set[int]:
        asked[0] += 1
        return set(range(counts[0]))

    producers[0].client = SimpleNamespace(cluster=SimpleNamespace(partitions_for_topic=partitions_for_topic))  # type: ignore[attr-defined]
    sids = [f"file:2049:{n}:9c1f{n:x}:0" for n in range(200)]
    assert [pub.partition_for(s) for s in sids] == [DefaultPartitioner()(s.encode(), list(range(6)), []) for s in sids]
    assert len({pub.partition_for(s) for s in sids}) == 6
    assert asked == [1]  # 400 records, one read of the metadata
    counts[0] = 9  # the topic grew: streams move as keyed records would, once the metadata is read again
    assert [pub.partition_for(s) for s in sids[:5]] == [DefaultPartitioner()(s.encode(), list(range(6)), [])
                                                        for s in sids[:5]]
    clock[0] += module._PARTITIONS_CHECK_SECONDS
    assert [pub.partition_for(s) for s in sids] == [DefaultPartitioner()(s.encode(), list(range(9)), []) for s in sids]
    assert asked == [2]
