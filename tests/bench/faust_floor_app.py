"""The worker benchmark's floor: faust itself, with the worker's topology and no work per line.

Two agents move 1,000-line chunk records the way the worker does - each raw record fans out to four
trace partitions (a quarter of its bytes each), and each of those goes on to a sink topic - but
nothing is decoded, parsed, grouped or stored. What this reaches on the same broker in the same run
is what any Python per-line work and the trace table have to fit under.

Its consumer pauses between empty fetches as the worker's does (kafka_io/kafka_compat.py,
`install_idle_fetch_pause`): without it, faust on the embedded broker spins at ~90% of a core while
idle, which a floor fed at a live node's slow rate would measure instead of the hops. A broker that
holds fetches holds its fetches as long as the worker's (`kafka.fetch_max_wait`, app/fetch_wait.py).

Run by tests/bench/bench_worker.py (pre-loaded records) and tests/bench/live_floor.py (records fed at
a live row's rate): `faust -A tests.bench.faust_floor_app worker -l info` with FLOOR_BROKER, FLOOR_WEB_PORT,
FLOOR_CHUNK_LINES and FLOOR_TOPIC_PREFIX set; GET /floor/count answers how many lines went through.
It logs at info, as the benchmarked worker does: faust's own worker class at `-l warn` turns the root
logger to DEBUG (app/worker_class.py), which cost this floor 7-10% more CPU at a live row's rate.
"""

from __future__ import annotations

import os
from typing import Any

import faust

from app.fetch_wait import hold_fetches_at_most
from core.settings import KafkaSettings
from kafka_io.kafka_compat import install_idle_fetch_pause

FANOUT = 4
PREFIX = os.environ.get("FLOOR_TOPIC_PREFIX", "")
install_idle_fetch_pause()
hold_fetches_at_most(KafkaSettings().fetch_max_wait)  # as the worker's consumer (app/fetch_wait.py)
app = faust.App(f"logweave-floor{PREFIX.rstrip('.')}",
                broker=f"kafka://{os.environ.get('FLOOR_BROKER', 'localhost:9092')}",
                store="memory://", topic_partitions=FANOUT, autodiscover=False, stream_buffer_maxsize=64,
                producer_acks=-1, consumer_max_fetch_size=8 << 20,
                producer_max_batch_size=1_000_000, producer_linger=0.01,  # as the worker (kafka.linger)
                web_port=int(os.environ.get("FLOOR_WEB_PORT", "6067")))
RAW, PARSED, SINK = (app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw",
                               partitions=FANOUT) for name in (f"{PREFIX}floor.raw", f"{PREFIX}floor.parsed",
                                                               f"{PREFIX}floor.sink"))
LINES_PER_RECORD = int(os.environ.get("FLOOR_CHUNK_LINES", "1000"))
forwarded = [0]


@app.agent(RAW)
async def fan_out(stream: Any) -> None:
    async for event in stream.events():
        quarter = event.value[: len(event.value) // FANOUT]
        for partition in range(FANOUT):
            await PARSED.send(value=quarter, partition=partition)


@app.agent(PARSED)
async def pass_on(stream: Any) -> None:
    async for event in stream.events():
        SINK.send_soon(value=event.value, partition=event.message.partition)
        forwarded[0] += LINES_PER_RECORD // FANOUT


@app.page("/floor/count")
async def count(web: Any, request: Any) -> Any:
    return web.json({"lines": forwarded[0]})
