"""The faust floor's topology without faust: what aiokafka alone costs to move a live row's records.

The faust floor (tests/bench/faust_floor_app.py) measures what faust costs to move the worker's
records with no work on their lines; on the live rows it alone exceeds the worker's CPU target. This
process moves the same records the same way - each raw record fans out to four partitions of a
second topic (a quarter of its bytes each), and each of those goes on to a third topic - with one
aiokafka consumer in a group and one producer on one event loop: no faust streams, agents, conductor,
consumer thread, tables or web server. Offsets are committed every COMMIT_INTERVAL seconds, as
faust's commit timer does (`broker_commit_interval`, 2.8 s). Its consumer pauses between empty
fetches as the worker's does (kafka_io/kafka_compat.py), and, as there, a batch acknowledged on a
topic it reads wakes it; a broker that holds fetches holds its fetches as long as the worker's
(`kafka.fetch_max_wait`).

Read beside the faust floor (tests/bench/live_floor.py, `floor_at(..., app="aiokafka")`): the
difference is what faust's machinery costs per record at that shape, the part of the worker's CPU
that no work on its lines can remove while it runs on faust.

Run as `python -m tests.bench.aiokafka_floor_app` with FLOOR_BROKER, FLOOR_CHUNK_LINES and
FLOOR_TOPIC_PREFIX set; it writes how many lines it forwarded to FLOOR_COUNT_FILE at most every
COUNT_EVERY seconds while records flow, and as soon as a fetch comes back empty. (Written after every
batch, the file's write and rename took about a fifth of this process's CPU samples at 10 records/s x 400
lines: the floor measured the count file, not aiokafka.)
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from app.fetch_wait import fetch_wait_ms
from core.settings import KafkaSettings
from kafka_io.kafka_compat import install_idle_fetch_pause

FANOUT = 4
COMMIT_INTERVAL = 2.8  # seconds, faust's default broker_commit_interval
COUNT_EVERY = 0.25  # seconds between writes of the count file while records flow


async def run(broker: str, prefix: str, lines_per_record: int, count_file: Path) -> None:
    """Forward until SIGTERM; the forwarded line count goes to `count_file`."""
    install_idle_fetch_pause()
    raw, parsed, sink = (f"{prefix}floor.{hop}" for hop in ("raw", "parsed", "sink"))
    consumer = AIOKafkaConsumer(raw, parsed, bootstrap_servers=broker, group_id=f"{prefix}aiokafka-floor",
                                enable_auto_commit=False, auto_offset_reset="earliest",
                                max_partition_fetch_bytes=8 << 20,
                                fetch_max_wait_ms=fetch_wait_ms(KafkaSettings().fetch_max_wait))
    producer = AIOKafkaProducer(bootstrap_servers=broker, acks="all", max_batch_size=1_000_000, linger_ms=10,
                                max_request_size=16 << 20)
    stopping = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
    await producer.start()
    await consumer.start()
    forwarded, committed_at = 0, time.monotonic()
    written, written_at = 0, 0.0
    temp = count_file.with_suffix(".tmp")
    try:
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=1000)
            for tp, messages in batches.items():
                for message in messages:
                    if tp.topic == raw:
                        value = message.value or b""
                        quarter = value[: len(value) // FANOUT]
                        for partition in range(FANOUT):
                            await producer.send(parsed, quarter, partition=partition)
                    else:
                        await producer.send(sink, message.value, partition=tp.partition)
                        forwarded += lines_per_record // FANOUT
            if forwarded != written and (not batches or time.monotonic() - written_at >= COUNT_EVERY):
                temp.write_text(str(forwarded))
                temp.replace(count_file)  # replaced whole, so a reader never sees half a number
                written, written_at = forwarded, time.monotonic()
            if time.monotonic() - committed_at >= COMMIT_INTERVAL:
                await consumer.commit()
                committed_at = time.monotonic()
    finally:
        await consumer.stop()
        await producer.stop()


def main() -> None:
    asyncio.run(run(os.environ.get("FLOOR_BROKER", "localhost:9092"), os.environ.get("FLOOR_TOPIC_PREFIX", ""),
                    int(os.environ.get("FLOOR_CHUNK_LINES", "1000")), Path(os.environ["FLOOR_COUNT_FILE"])))


if __name__ == "__main__":
    main()
