"""KafkaSink against a real Kafka-protocol broker (noida-db: idempotent producer, transactions,
read_committed): keys and headers, retries and replays add nothing, an abandoned transaction stays
invisible, and a worker killed with SIGKILL mid-drain leaves every line exactly once for a
read_committed consumer, also when a partition moves to another worker in the middle of a batch."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from commands.broker import EmbeddedBroker
from core.errors import RetriableError
from core.settings import KafkaSettings, KafkaSinkSettings, load_settings
from sinks.base import SinkBatch, SinkLine
from sinks.kafka import LINE_ID_HEADER, KafkaSink
from tests.support.kafka import read_topic, start_broker
from tests.support.polling import wait_for
from tests.support.sink_stack import kill_mid_upload_every_line_once
from tests.support.worker_harness import WorkerHarness


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    embedded = start_broker(tmp_path_factory.mktemp("kafka-sink") / "broker")
    try:
        yield embedded
    finally:
        embedded.stop(kill=True)


def make_sink(broker: EmbeddedBroker, topic: str, **extra: object) -> KafkaSink:
    settings = KafkaSinkSettings(brokers=broker.bootstrap, topic=topic, topic_partitions=2, **extra)  # type: ignore[arg-type]
    return KafkaSink(settings, KafkaSettings(brokers=broker.bootstrap), f"test-{topic}", f"test-{topic}.positions")


def lines(first: int, last: int, per_record: int = 3) -> list[SinkLine]:
    return [SinkLine(f"{o:04x}-{i}", f"trace-{o % 4}", 0, "info", "svc", orjson.dumps({"o": o, "i": i}), o, i)
            for o in range(first, last + 1) for i in range(per_record)]


async def written(broker: EmbeddedBroker, topic: str) -> list[tuple[bytes | None, dict[str, int]]]:
    return [(key, orjson.loads(value)) for _, _, key, value in await read_topic(broker.bootstrap, topic)]


async def test_lines_keyed_by_trace_with_line_ids_and_no_duplicate_on_retry_or_replay(
        shared_broker: EmbeddedBroker) -> None:
    sink = make_sink(shared_broker, "out-lines")
    await sink.start()
    try:
        assert await sink.resume_offset("sink.kafka", 1) is None
        await sink.write_batch(SinkBatch("sink.kafka", 1, lines(10, 19)))
        await sink.write_batch(SinkBatch("sink.kafka", 1, lines(10, 19)))  # a retry
        await sink.write_batch(SinkBatch("sink.kafka", 1, lines(5, 25)))  # an overlapping replay
        await sink.write_batch(SinkBatch("sink.kafka", 0, lines(0, 1)))  # another partition: its own position
        assert await sink.resume_offset("sink.kafka", 1) == 25
    finally:
        await sink.stop()
    found = await written(shared_broker, "out-lines")
    assert sorted((d["o"], d["i"]) for _, d in found) == sorted(
        [(o, i) for o in range(10, 26) for i in range(3)] + [(o, i) for o in range(2) for i in range(3)])
    assert all(key == f"trace-{d['o'] % 4}".encode() for key, d in found)
    murmur2 = DefaultPartitioner()  # where any Kafka client puts a key: a trace stays in one partition
    assert all(p == murmur2(k, [0, 1], [0, 1]) for p, _, k, _ in await read_topic(shared_broker.bootstrap, "out-lines"))
    headers = await _headers(shared_broker, "out-lines")
    assert len(headers) == len(found) and headers[b"sink.kafka/1/10/2"] == f"{10:04x}-2"


async def _headers(broker: EmbeddedBroker, topic: str) -> dict[bytes, str]:
    """Each record's line-id header by its source header."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=broker.bootstrap, isolation_level="read_committed",
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in (0, 1)])
        out: dict[bytes, str] = {}
        while batch := await consumer.getmany(timeout_ms=1000):
            for messages in batch.values():
                for m in messages:
                    headers = dict(m.headers)
                    out[headers["logweave-source"]] = headers[LINE_ID_HEADER].decode()
        return out
    finally:
        await consumer.stop()


async def test_a_line_forwarded_again_under_a_new_offset_is_skipped_by_its_stream_mark(
        shared_broker: EmbeddedBroker) -> None:
    """The group stage re-forwards lines after a crash upstream: same line ids, later sink-topic offsets."""
    def stream_lines(first_offset: int, positions: range) -> list[SinkLine]:
        return [SinkLine(f"00000000000000aa-{p:x}", "t", 0, "info", "svc", orjson.dumps({"p": p}), first_offset + p, 0)
                for p in positions]

    sink = make_sink(shared_broker, "out-marks")
    await sink.start()
    try:
        await sink.write_batch(SinkBatch("sink.kafka", 0, stream_lines(0, range(0, 10))))
        await sink.write_batch(SinkBatch("sink.kafka", 0, stream_lines(100, range(5, 16))))  # 5..9 again
    finally:
        await sink.stop()
    assert sorted(d["p"] for _, d in await written(shared_broker, "out-marks")) == list(range(16))


async def test_marks_of_thousands_of_streams_survive_a_restart(shared_broker: EmbeddedBroker) -> None:
    """2,000 streams write to one sink-topic partition (the offset metadata alone held ~120); after a
    restart every one of them is re-forwarded under new offsets, and none is written twice."""
    def one_per_stream(first_offset: int, position: int) -> list[SinkLine]:
        return [SinkLine(f"{s:016x}-{position:x}", "t", 0, "info", "svc", orjson.dumps({"s": s, "p": position}),
                         first_offset + s, 0) for s in range(2000)]

    first = make_sink(shared_broker, "out-many-streams")
    await first.start()
    try:
        await first.write_batch(SinkBatch("sink.kafka", 0, one_per_stream(0, 5)))
    finally:
        await first.stop()
    restarted = make_sink(shared_broker, "out-many-streams")
    await restarted.start()
    try:
        await restarted.write_batch(SinkBatch("sink.kafka", 0, one_per_stream(10_000, 5)))  # re-forwarded
        await restarted.write_batch(SinkBatch("sink.kafka", 0, one_per_stream(20_000, 6)))  # new lines
    finally:
        await restarted.stop()
    found = Counter((d["s"], d["p"]) for _, d in await written(shared_broker, "out-many-streams"))
    duplicated = sorted(k for k, n in found.items() if n > 1)
    assert not duplicated, f"{len(duplicated)} lines written twice, e.g. {duplicated[:3]}"
    assert set(found) == {(s, p) for s in range(2000) for p in (5, 6)}


async def test_marks_committed_inline_by_an_earlier_version_are_honoured(shared_broker: EmbeddedBroker) -> None:
    """A position committed with the marks in the offset metadata (before the marks topic) still
    skips a re-forwarded line after an upgrade."""
    from aiokafka import AIOKafkaProducer, TopicPartition
    from aiokafka.structs import OffsetAndMetadata

    sink = make_sink(shared_broker, "out-upgrade")
    producer = AIOKafkaProducer(bootstrap_servers=shared_broker.bootstrap, transactional_id="earlier-version")
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_offsets_to_transaction(
                {TopicPartition("sink.kafka", 0): OffsetAndMetadata(9, '{"index":0,"streams":{"00000000000000aa":9}}')},
                sink.position_group)
    finally:
        await producer.stop()
    await sink.start()
    try:
        reforwarded = [SinkLine(f"00000000000000aa-{p:x}", "t", 0, "info", "svc", orjson.dumps({"p": p}), 100 + p, 0)
                       for p in range(5, 16)]
        await sink.write_batch(SinkBatch("sink.kafka", 0, reforwarded))
    finally:
        await sink.stop()
    assert sorted(d["p"] for _, d in await written(shared_broker, "out-upgrade")) == list(range(10, 16))


async def test_whole_traces_as_one_record_each(shared_broker: EmbeddedBroker) -> None:
    sink = make_sink(shared_broker, "out-traces", record="trace")
    await sink.start()
    try:
        await sink.write_batch(SinkBatch("sink.kafka", 0, lines(0, 7)))
    finally:
        await sink.stop()
    records = await read_topic(shared_broker.bootstrap, "out-traces")
    by_key = {key: [orjson.loads(x) for x in value.splitlines()] for _, _, key, value in records}
    assert len(records) == 4 and set(by_key) == {f"trace-{t}".encode() for t in range(4)}
    assert [(d["o"], d["i"]) for d in by_key[b"trace-1"]] == [(o, i) for o in (1, 5) for i in range(3)]


async def test_an_abandoned_transaction_stays_invisible_and_the_batch_is_written_once(
        shared_broker: EmbeddedBroker) -> None:
    """A worker dies inside a transaction: its records were sent but never committed."""
    crashed = make_sink(shared_broker, "out-crash")
    await crashed.start()
    producer = await crashed._producer_for("sink.kafka", 0)
    await producer.begin_transaction()
    for line in lines(0, 9):
        await producer.send_and_wait("out-crash", line.document, key=line.trace_id.encode())
    restarted = make_sink(shared_broker, "out-crash")  # same transactional id: fences and aborts the old one
    await restarted.start()
    try:
        await restarted.write_batch(SinkBatch("sink.kafka", 0, lines(0, 9)))
    finally:
        await restarted.stop()
    found = await written(shared_broker, "out-crash")
    assert Counter((d["o"], d["i"]) for _, d in found) == Counter((o, i) for o in range(10) for i in range(3))


def worker_sink(broker: EmbeddedBroker, topic: str, instance: str) -> KafkaSink:
    """The Kafka sink as the worker process `instance` builds it from its settings."""
    settings = load_settings(environ={}, kafka={"brokers": broker.bootstrap, "group_instance_id": instance},
                             sinks={"enabled": ["kafka"], "kafka": {"topic": topic, "topic_partitions": 2}})
    return KafkaSink.from_settings(settings)


async def test_a_partition_moved_mid_batch_fences_its_old_owner_and_each_line_is_committed_once(
        shared_broker: EmbeddedBroker, monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker A is slowed inside a batch's transaction (its records sent, the commit not yet made);
    the sink-topic partition moves to worker B at a rebalance, and B is handed the same batch again
    (A never acked it) and the next one. A then resumes: its commit must fail (fenced), and its
    drain's retry of the batch it still holds must write nothing. The two workers' sinks run in this
    process, built from two workers' settings (different instance names); the pause is a hook on
    the send (the only stand-in here), the broker, producers and read_committed consumer are real."""
    import sinks.kafka as kafka_module

    topic = "out-moved"
    worker_a, worker_b = worker_sink(shared_broker, topic, "worker-a"), worker_sink(shared_broker, topic, "worker-b")
    await worker_a.start()
    await worker_b.start()
    inside, resume = asyncio.Event(), asyncio.Event()
    real_send = kafka_module.send_batched
    slowed: list[object] = []

    async def send_then_maybe_pause(producer: Any, to: str, records: Iterator[Any]) -> None:
        await real_send(producer, to, records)
        if producer in slowed:
            inside.set()
            await resume.wait()

    monkeypatch.setattr(kafka_module, "send_batched", send_then_maybe_pause)
    try:
        await worker_a.write_batch(SinkBatch("sink.kafka", 0, lines(0, 9)))  # written and acked by A
        slowed.extend(worker_a._producers.values())
        in_flight = asyncio.create_task(worker_a.write_batch(SinkBatch("sink.kafka", 0, lines(10, 19))))
        await wait_for(inside.is_set, timeout=30, what="worker A inside its second batch's transaction")
        await worker_b.write_batch(SinkBatch("sink.kafka", 0, lines(10, 19)))  # the new owner, same batch
        await worker_b.write_batch(SinkBatch("sink.kafka", 0, lines(20, 29)))
        resume.set()
        with pytest.raises(RetriableError, match="fenced"):
            await in_flight
        await worker_a.write_batch(SinkBatch("sink.kafka", 0, lines(10, 19)))  # A's drain retries its batch
        assert await worker_b.resume_offset("sink.kafka", 0) == 29
    finally:
        resume.set()
        await worker_a.stop()
        await worker_b.stop()
    found = Counter((d["o"], d["i"]) for _, d in await written(shared_broker, topic))
    duplicated = sorted(k for k, n in found.items() if n > 1)
    assert not duplicated, f"{len(duplicated)} lines committed twice, e.g. {duplicated[:5]}"
    assert set(found) == {(o, i) for o in range(30) for i in range(3)}


async def test_worker_killed_mid_drain_every_line_once_for_read_committed(
        make_worker: Callable[..., WorkerHarness], tmp_path: Path) -> None:
    """A drain-only worker (its input pre-built on sink.kafka, so upstream re-forwarding plays no
    part) is killed with SIGKILL while it commits transactions, then restarted under the same
    static member id; its input is paced and goes on while it is down (sink_stack's
    kill_mid_upload_every_line_once). Every line is in lines.out once for a read_committed reader."""
    worker = make_worker({"LOGWEAVE_WORKER__STAGES": "drain", "LOGWEAVE_SINKS__KAFKA__TOPIC": "lines.out",
                          "LOGWEAVE_SINKS__KAFKA__MAX_BATCH_LINES": "2000"}, sinks=("kafka",))

    async def held() -> Counter[int]:
        return Counter(orjson.loads(v)["n"] for _, _, _, v in await read_topic(worker.broker.bootstrap, "lines.out"))

    await kill_mid_upload_every_line_once(worker, "sink.kafka", {}, held, total=60_000, per_chunk=1000)
