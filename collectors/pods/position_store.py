"""Where each container instance's log was last acknowledged, kept in a compacted Kafka topic.

A restarted pod collector (a Deployment pod on another node, with no disk of its own) resumes every
container from its last acknowledged line instead of re-reading whole logs: it reads `logs.positions`
(created by `logweave prepare` with cleanup.policy=compact, keyed by stream id) from the beginning to
its end at start, and writes the streams whose position moved every `pods.position_interval`. A
stream read to its end is marked done, so it is not read again; a deleted pod's streams are removed
with a tombstone. Positions trail the acknowledged lines by at most one interval: a crash re-sends
that much, under the same identities, which downstream dedupe drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from core.settings import KafkaSettings
from kafka_io.client_options import client_options
from kafka_io.connect import connect, started
from kafka_io.keyed_batches import Record, send_batched
from kafka_io.topic_admin import ensure_topics

log = logging.getLogger(__name__)
COMPACT = {"cleanup.policy": "compact"}


@dataclass(slots=True)
class SavedPosition:
    ts_ns: int | None  # timestamp of the last acknowledged line (None: nothing acknowledged yet)
    position: int
    done: bool = False
    namespace: str = ""  # the pod's, so a list of one namespace can tell which saved streams are stale


class PositionStore:
    def __init__(self, kafka: KafkaSettings, topic: str, interval: float) -> None:
        self._kafka = kafka
        self._topic = topic
        self._interval = interval
        self.saved: dict[str, SavedPosition] = {}
        self._dirty: dict[str, SavedPosition | None] = {}  # None: delete (tombstone)
        self._producer: AIOKafkaProducer | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await ensure_topics(self._kafka, [self._topic], compacted=True)
        self.saved = await self._load()
        self._producer = await connect(self._kafka, lambda: started(AIOKafkaProducer(
            **client_options(self._kafka), acks="all", enable_idempotence=True), self._kafka),
            "starting the positions producer")
        self._task = asyncio.create_task(self._run(), name="positions")
        log.info("loaded %d stream positions from %s", len(self.saved), self._topic)

    async def _load(self) -> dict[str, SavedPosition]:
        consumer = await connect(self._kafka, lambda: started(AIOKafkaConsumer(
            **client_options(self._kafka), group_id=None, enable_auto_commit=False), self._kafka),
            "reading " + self._topic)
        out: dict[str, SavedPosition] = {}
        try:
            await consumer.topics()
            tps = [TopicPartition(self._topic, p) for p in sorted(consumer.partitions_for_topic(self._topic) or ())]
            if not tps:
                return out
            consumer.assign(tps)
            await consumer.seek_to_beginning(*tps)
            ends = await consumer.end_offsets(tps)
            while [tp for tp in tps if await consumer.position(tp) < ends[tp]]:
                for messages in (await consumer.getmany(timeout_ms=500)).values():
                    for m in messages:
                        if m.key is None:
                            continue
                        if m.value is None:
                            out.pop(m.key.decode(), None)
                        else:
                            doc = orjson.loads(m.value)
                            out[m.key.decode()] = SavedPosition(doc.get("ts"), int(doc["pos"]), bool(doc.get("done")),
                                                                str(doc.get("ns", "")))
        finally:
            await consumer.stop()
        return out

    def acknowledged(self, stream_id: str, ts_ns: int | None, position: int, namespace: str = "") -> None:
        """The stream's last acknowledged line (it moves back when the broker lost acknowledged chunks)."""
        saved = self.saved.get(stream_id)
        if saved is not None and position == saved.position:
            return
        if saved is not None and not saved.done and saved.namespace == namespace:
            saved.ts_ns, saved.position = ts_ns, position  # moved in place: once per stream a tick
        else:
            saved = self.saved[stream_id] = SavedPosition(ts_ns, position, False, namespace)
        self._dirty[stream_id] = saved

    def prune(self, namespace: str | None, present_uids: set[str]) -> None:
        """Forget the streams of pods (of `namespace`, or any) that a fresh list no longer shows: deleted,
        or out of the selector, while no collector ran."""
        for stream_id, saved in list(self.saved.items()):
            if (namespace is None or saved.namespace == namespace) and stream_id.split(":")[1] not in present_uids:
                log.info("%s is no longer listed: forgetting its position", stream_id)
                self.forget(stream_id)

    def finished(self, stream_id: str, namespace: str = "") -> None:
        saved = self.saved.setdefault(stream_id, SavedPosition(None, -1, False, namespace))
        saved.done = True
        self._dirty[stream_id] = saved

    def forget(self, stream_id: str) -> None:
        if self.saved.pop(stream_id, None) is not None:
            self._dirty[stream_id] = None

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.flush()
            except Exception as exc:
                log.warning("saving stream positions failed (%s); trying again in %gs", exc, self._interval)

    async def flush(self) -> None:
        """Write every position that moved since the last flush; wait for Kafka's acknowledgement."""
        if not self._dirty or self._producer is None:
            return
        dirty, self._dirty = self._dirty, {}
        try:  # in whole record batches: a node of a thousand pods moves a thousand positions a second
            records: Iterator[Record] = ((sid.encode(), _encode(pos), []) for sid, pos in dirty.items())
            await send_batched(self._producer, self._topic, records)
        except BaseException:
            self._dirty = {**dirty, **self._dirty}
            raise

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._producer is not None:
            try:
                await asyncio.wait_for(self.flush(), 10)
            except Exception as exc:
                log.warning("the last stream positions were not saved (%s)", exc)
            await self._producer.stop()
            self._producer = None


def _encode(saved: SavedPosition | None) -> bytes | None:
    if saved is None:
        return None  # a tombstone: compaction drops the stream
    return orjson.dumps({"ts": saved.ts_ns, "pos": saved.position, "done": saved.done, "ns": saved.namespace})
