"""Sink throughput on local real servers, beside each server's own bulk rate with the same client.

Per sink: lines/s through `write_batch` and client-side CPU seconds per 100K lines
(`time.process_time`), next to the limit: the same client sending pre-built bulk requests of the
same lines (etcd gateway transactions, Elasticsearch/OpenSearch `_bulk`, S3 `put_object` and GCS
uploads of pre-compressed objects, one Kafka transaction of pre-built records per batch, PostgreSQL COPY of
pre-built rows). The gap between the two is what the sink itself costs.
Run: `python -m tests.bench.bench_sinks --out bench/sinks.json`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import gzip
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import orjson
from aiobotocore.session import get_session
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from gcloud.aio.storage import Storage
from pydantic import SecretStr

from agents.drain_runner import write_together
from commands.broker import EmbeddedBroker, free_port
from commands.local_postgres import LocalPostgres
from core.gc_tuning import tune_garbage_collector
from core.settings import (
    ElasticsearchSinkSettings,
    EtcdSinkSettings,
    GcsSinkSettings,
    KafkaSettings,
    KafkaSinkSettings,
    PostgresSinkSettings,
    S3SinkSettings,
)
from sinks.base import Sink, SinkBatch, SinkLine
from sinks.elasticsearch import ElasticsearchSink
from sinks.etcd import MAX_TXN_OPS, EtcdSink, line_key
from sinks.gcs import GcsSink
from sinks.kafka import LINE_ID_HEADER, KafkaSink
from sinks.object_store import deflater
from sinks.packed import pack_sink_lines
from sinks.postgres import PostgresSink, row_of
from sinks.postgres_schema import create_partitions, day_of
from sinks.s3 import S3Sink
from tests.bench.brokers import bench_broker, broker_label
from tests.support.servers import Server, etcd_server, gcs_emulator, moto_server, osmem_server

SINK_ROUNDS = 5
SEARCH_ROUNDS = 3  # the search servers take seconds a run

BASE_NS = 1_749_543_941_000_000_000


def make_lines(count: int, batch_lines: int) -> list[SinkBatch]:
    """~250-byte JSON lines shaped like the pipeline's documents, cut into batches."""
    lines = []
    for n in range(count):
        trace = f"{n % 997:032x}"
        meta = {"sid": "s1", "pos": n, "lid": f"lid-{n:x}", "time_ns": BASE_NS + n * 1000, "trace": trace,
                "source": {"kind": "file", "node": "n1", "namespace": "demo", "pod": "web-1", "container": "app"}}
        doc = orjson.dumps({"time": "2025-06-10T08:25:41.63070246Z", "traceId": trace, "level": "info",
                            "service": "web", "msg": f"request {n} done", "logweave": meta})
        lines.append(SinkLine(f"lid-{n:x}", trace, BASE_NS + n * 1000, "info", "web", doc, n // 100, n % 100))
    return [SinkBatch("sink.bench", 0, lines[i:i + batch_lines]) for i in range(0, count, batch_lines)]


async def timed(lines: int, work: Callable[[], Awaitable[None]]) -> dict[str, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    await work()
    seconds, cpu_used = time.perf_counter() - wall, time.process_time() - cpu
    return {"lines": lines, "seconds": round(seconds, 3), "lines_per_s": round(lines / seconds),
            "cpu_s_per_100k": round(cpu_used / lines * 100_000, 3)}


def median_run(found: list[dict[str, float]]) -> dict[str, float]:
    """The run with the median rate."""
    return sorted(found, key=lambda r: r["lines_per_s"])[len(found) // 2]


Run = Callable[[int], Awaitable[dict[str, float]]]


async def alternating(rounds: int, sink: Run, *limits: Run) -> tuple[dict[str, float], list[dict[str, float]], str]:
    """Sink and limits in turn, `rounds` times (each told its round: a sink may need a fresh place per round);
    (median sink run, median run of each limit, a note listing every rate). The servers share the machine's
    cores and their speed drifts from minute to minute: alternating rounds see the same drift."""
    found: list[list[dict[str, float]]] = [[] for _ in range(1 + len(limits))]
    for n in range(rounds):
        for runs, run in zip(found, (sink, *limits), strict=True):
            runs.append(await run(n))
    rates = "; ".join(f"{name} {[r['lines_per_s'] for r in runs]}"
                      for name, runs in zip(["sink", *(f"limit {k + 1}" if len(limits) > 1 else "limit"
                                                      for k in range(len(limits)))], found, strict=True))
    return median_run(found[0]), [median_run(runs) for runs in found[1:]], \
        f"median of {rounds} alternating rounds ({rates})"


async def through_sink(sink: Sink, batches: list[SinkBatch], warm_up: int = 0) -> dict[str, float]:
    """The batches through `write_batch`, packed first (untimed, as the drain's C splice hands them) for a
    sink with `takes_packed`. The first `warm_up` batches are written untimed: what a sink does once per
    partition or process (an object store's state read, its first connections) is not its rate."""
    count = sum(len(b.lines) for b in batches[warm_up:])
    if sink.takes_packed:
        batches = [SinkBatch(b.topic, b.partition, [], b.size_bytes, pack_sink_lines(b.lines)) for b in batches]
    await sink.start()
    try:
        async def write(batch: SinkBatch) -> None:
            result = await sink.write_batch(batch)
            if result.permanent or result.retry:
                raise RuntimeError(f"{sink.name}: {len(result.permanent)} permanent, {len(result.retry)} retry")

        for batch in batches[:warm_up]:
            await write(batch)
        batches = batches[warm_up:]

        async def run() -> None:  # as the drain writes them: `concurrent_batches` at once
            await write_together(batches, write, sink.concurrent_batches)
        return await timed(count, run)
    finally:
        await sink.stop()


async def etcd_limit(url: str, batches: list[SinkBatch], inflight: int) -> dict[str, float]:
    """The same transactions' bodies built beforehand, each put under a lease as the sink's are (granted
    untimed), `inflight` requests open at once as the sink sends them (`sinks.etcd.inflight_txns`),
    through the same client."""
    async with aiohttp.ClientSession() as session, \
            session.post(url + "/v3/lease/grant", data=b'{"TTL":"3600"}') as granted:
        lease = str(orjson.loads(await granted.read())["ID"])
    bodies = []
    for batch in batches:
        for i in range(0, len(batch.lines), MAX_TXN_OPS):
            ops = [{"request_put": {"key": base64.b64encode(line_key("/raw", x)).decode(),
                                    "value": base64.b64encode(x.document).decode(), "lease": lease}}
                   for x in batch.lines[i:i + MAX_TXN_OPS]]
            bodies.append(orjson.dumps({"compare": [], "success": ops, "failure": []}))
    async with aiohttp.ClientSession() as session:
        async def send(pending: Iterator[bytes]) -> None:
            for body in pending:
                async with session.post(url + "/v3/kv/txn", data=body) as response:
                    await response.read()

        async def run() -> None:
            pending = iter(bodies)  # shared by the senders: each body is sent once
            await asyncio.gather(*(send(pending) for _ in range(inflight)))
        return await timed(sum(len(b.lines) for b in batches), run)


async def search_limit(sink: ElasticsearchSink, batches: list[SinkBatch], index: str = "raw-bench") -> dict[str, float]:
    bodies = [b"".join(orjson.dumps({"index": {"_index": index, "_id": x.line_id}}) + b"\n" + x.document + b"\n"
                       for x in batch.lines) for batch in batches]
    client = sink.make_client()
    try:
        async def run() -> None:
            for body in bodies:
                await client.bulk(body=body)
        return await timed(sum(len(b.lines) for b in batches), run)
    finally:
        await client.close()


async def s3_limit(url: str, batches: list[SinkBatch], compress_level: int | None = None,
                   warm_up: int = 0) -> dict[str, float]:
    """put_object of pre-compressed bodies; with `compress_level`, each body is gzipped inside the timed loop
    instead (one thread, this process) by the deflater and level the sink uses for that setting (ISA-L or
    zlib, sinks.object_store.deflater), the same client's floor for a compressing writer. The first
    `warm_up` bodies go up untimed, as the sink's first batches do (`through_sink`)."""
    raw = [b"".join(x.document + b"\n" for x in batch.lines) for batch in batches]
    bodies = [gzip.compress(data, 5) for data in raw] if compress_level is None else raw
    module, level = deflater(compress_level or 1)
    async with get_session().create_client("s3", endpoint_url=url, region_name="us-east-1") as client:
        async def put(n: int, prepared: bytes) -> None:
            body = prepared if compress_level is None else module.compress(prepared, level, wbits=31)
            await client.put_object(Bucket="bench", Key=f"raw/{n}.ndjson.gz", Body=body)

        for n in range(warm_up):
            await put(n, bodies[n])

        async def run() -> None:
            for n in range(warm_up, len(bodies)):
                await put(n, bodies[n])
        return await timed(sum(len(b.lines) for b in batches[warm_up:]), run)


async def gcs_limit(url: str, batches: list[SinkBatch]) -> dict[str, float]:
    bodies = [gzip.compress(b"".join(x.document + b"\n" for x in batch.lines), 5) for batch in batches]
    async with aiohttp.ClientSession() as http:
        storage = Storage(api_root=url, session=http)  # type: ignore[arg-type]

        async def run() -> None:
            for n, body in enumerate(bodies):
                await storage.upload("bench", f"raw/{n}.ndjson.gz", body, content_type="application/x-ndjson",
                                     metadata={"contentEncoding": "gzip"})
        return await timed(sum(len(b.lines) for b in batches), run)


async def kafka_limit(bootstrap: str, batches: list[SinkBatch], run_prefix: str = "") -> dict[str, float]:
    """One transaction per batch of record batches built beforehand (key, value, line-id header,
    partitioned as the sink does), no position read or committed."""
    topic = f"{run_prefix}raw-bench"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, transactional_id=f"{run_prefix}bench-limit",
                                enable_idempotence=True, acks="all", max_batch_size=1_000_000, linger_ms=5)
    await producer.start()
    try:
        partitions = sorted(await producer.partitions_for(topic))
        choose = DefaultPartitioner()
        built: list[list[tuple[int, Any]]] = []
        for batch in batches:
            builders: list[tuple[int, Any]] = []
            current: dict[int, Any] = {}
            for x in batch.lines:
                key = x.trace_id.encode()
                partition = choose(key, partitions, partitions)
                builder = current.get(partition)
                if builder is None or builder.append(key=key, value=x.document, timestamp=None,
                                                     headers=[(LINE_ID_HEADER, x.line_id.encode())]) is None:
                    builder = current[partition] = producer.create_batch()
                    builders.append((partition, builder))
                    builder.append(key=key, value=x.document, timestamp=None,
                                   headers=[(LINE_ID_HEADER, x.line_id.encode())])
            built.append(builders)

        async def run() -> None:
            for builders in built:
                async with producer.transaction():
                    sent = [await producer.send_batch(b, topic, partition=p) for p, b in builders]
                    await asyncio.gather(*sent)
        return await timed(sum(len(b.lines) for b in batches), run)
    finally:
        await producer.stop()


async def bench_kafka_and_gcs(tmp: Path, scale: float, add: Callable[[str, dict[str, float], dict[str, float], str],
                                                                    None]) -> None:
    with bench_broker(tmp, "kafka-sink") as broker:  # KAFKA_BROKERS, or a noida-db of its own
        prefix = broker.run_prefix
        sink = KafkaSink(KafkaSinkSettings(topic=f"{prefix}lines-bench", topic_partitions=1), KafkaSettings(
            brokers=broker.bootstrap), f"{prefix}bench-sink", f"{prefix}bench.sink.kafka")
        batches = make_lines(int(100_000 * scale), 10_000)
        where = "external Kafka" if broker.external else "noida-db"
        add(f"kafka ({where}, transactional)", await through_sink(sink, batches),
            await kafka_limit(broker.bootstrap, batches, prefix),
            "10K-line transactions; limit: pre-built record batches")
    (tmp / "gcs").mkdir()
    server = gcs_emulator(tmp / "gcs").start()
    try:
        gcs = GcsSink(GcsSinkSettings(bucket="bench", prefix="lw", endpoint_url=server.url, project="bench"))
        batches = make_lines(int(200_000 * scale), 20_000)
        add("gcs (gcp-storage-emulator)", await through_sink(gcs, batches), await gcs_limit(server.url, batches),
            "20K-line objects; limit: uploads of pre-compressed bodies")
    finally:
        server.stop()


async def postgres_limit(dsn: str, batches: list[SinkBatch]) -> dict[str, float]:
    """The same client COPYing the same rows, pre-built, straight into `logs` (every index kept)."""
    import asyncpg

    columns = ("time", "line_id", "trace_id", "service", "level", "message", "namespace", "pod", "container", "node",
               "attributes", "tags")
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    prebuilt = [[(epoch + timedelta(microseconds=r[0] // 1000), "limit-" + r[1], *r[2:])
                 for r in (row_of(x, "logweave") for x in batch.lines)] for batch in batches]
    conn = await asyncpg.connect(dsn)
    try:
        await create_partitions(conn, {day_of(x.time_ns) for batch in batches for x in batch.lines})

        async def run() -> None:
            for rows in prebuilt:
                await conn.copy_records_to_table("logs", records=rows, columns=columns)
        return await timed(sum(len(b.lines) for b in batches), run)
    finally:
        await conn.close()


async def postgres_rows(server: LocalPostgres, batches: list[SinkBatch], rounds: int = 3) -> list[dict[str, Any]]:
    """Sink and limit alternate, each round on fresh databases of one server (same schema and
    indexes); the median round of each is reported, since the server shares the machine's cores.
    Then a replay of the same lines, which the sink answers through its staging path."""
    def settings(dsn: str) -> PostgresSinkSettings:
        return PostgresSinkSettings(dsn=SecretStr(dsn), retention=0)

    async def fresh(name: str) -> str:
        database = LocalPostgres(server.data_dir, server.port, database=name)
        await asyncio.to_thread(database.create_database)
        prepared = PostgresSink(settings(database.dsn), (1000, 1 << 22, 1.0), "logweave")
        await prepared.start()  # schema and partitions, untimed
        await prepared.stop()
        return database.dsn

    written: list[str] = []  # the sink's databases, the last one replayed

    async def sink_round(n: int) -> dict[str, float]:
        written.append(await fresh(f"sink{n}"))
        return await through_sink(PostgresSink(settings(written[-1]), (1000, 1 << 22, 1.0), "logweave"), batches)

    async def limit_round(n: int) -> dict[str, float]:
        return await postgres_limit(await fresh(f"limit{n}"), batches)
    sink, (limit,), rounds_note = await alternating(rounds, sink_round, limit_round)
    replay = await through_sink(PostgresSink(settings(written[-1]), (1000, 1 << 22, 1.0), "logweave"), batches)
    note = f"{rounds_note} on fresh databases; limit: COPY of pre-built rows into logs, same indexes"
    return [{"name": "postgres (Debian PostgreSQL 15, fsync off)", **sink, "limit_lines_per_s": limit["lines_per_s"],
             "limit_cpu_s_per_100k": limit["cpu_s_per_100k"], "note": "new lines: direct COPY; " + note},
            {"name": "postgres, replay of stored lines", **replay, "limit_lines_per_s": limit["lines_per_s"],
             "limit_cpu_s_per_100k": limit["cpu_s_per_100k"],
             "note": "every line already stored: staging COPY + INSERT ON CONFLICT DO NOTHING"}]


async def bench(tmp: Path, scale: float, only: set[str] | None = None) -> list[dict[str, Any]]:
    tune_garbage_collector()  # as the worker, where the sinks run, does at start (app/faust_app.py)
    rows: list[dict[str, Any]] = []

    def add(name: str, sink_row: dict[str, float], limit_row: dict[str, float], note: str) -> None:
        rows.append({"name": name, **sink_row, "limit_lines_per_s": limit_row["lines_per_s"],
                     "limit_cpu_s_per_100k": limit_row["cpu_s_per_100k"], "note": note})

    if only is None or "etcd" in only:
        (tmp / "etcd").mkdir()
        server: Server = etcd_server(tmp / "etcd").start()
        try:
            batches = make_lines(int(30_000 * scale), 1000)
            settings = EtcdSinkSettings(servers=server.url)
            sink_run, (limit,), rounds = await alternating(
                SINK_ROUNDS, lambda _: through_sink(EtcdSink(settings, (1000, 1 << 22, 1.0)), batches),
                lambda _: etcd_limit(server.url, batches, settings.inflight_txns))
            add("etcd (Debian etcd 3.4, JSON gateway)", sink_run, limit,
                f"{rounds}; limit: same txns of 128 puts under a lease, {settings.inflight_txns} in flight; sink: "
                f"{EtcdSink.concurrent_batches} batches at once as the drain writes them")
        finally:
            server.stop()

    if only is None or "elasticsearch" in only:
        port = free_port()
        noida = EmbeddedBroker(tmp / "noida", free_port(), elasticsearch_port=port).start()
        try:
            es_url = f"http://127.0.0.1:{port}"

            def es_sink(n: int) -> ElasticsearchSink:  # indices of its own per round: new documents, not updates
                return ElasticsearchSink(ElasticsearchSinkSettings(url=es_url, index_prefix=f"bench{n}"),
                                         (1000, 1 << 22, 1.0))
            batches = make_lines(int(20_000 * scale), 1000)
            sink_run, (limit,), rounds = await alternating(
                SEARCH_ROUNDS, lambda n: through_sink(es_sink(n), batches),
                lambda n: search_limit(es_sink(n), batches, f"raw-bench{n}"))
            add("elasticsearch (noida-db, ES 8 API)", sink_run, limit,
                f"{rounds}; each round into new indices; limit: pre-built _bulk bodies")
        finally:
            noida.stop(kill=True)

    if only is None or "opensearch" in only:
        (tmp / "osmem").mkdir()
        server = osmem_server(tmp / "osmem").start()
        try:
            os_url = server.url

            def os_sink(n: int) -> ElasticsearchSink:  # indices of its own per round: new documents, not updates
                return ElasticsearchSink(ElasticsearchSinkSettings(url=os_url, mode="opensearch",
                                                                   index_prefix=f"bench{n}"), (1000, 1 << 22, 1.0))
            batches = make_lines(int(8_000 * scale), 1000)
            sink_run, (limit,), rounds = await alternating(
                SEARCH_ROUNDS, lambda n: through_sink(os_sink(n), batches),
                lambda n: search_limit(os_sink(n), batches, f"raw-bench{n}"))
            add("opensearch (osmem-server)", sink_run, limit,
                f"{rounds}; each round into new indices; limit: pre-built _bulk bodies")
        finally:
            server.stop()

    if only is None or "postgres" in only:
        tmp.chmod(0o755)  # run as root, the server runs as the postgres user
        server_pg = LocalPostgres(tmp / "postgres", free_port(), database="sink", fsync=False).start()
        try:
            rows += await postgres_rows(server_pg, make_lines(int(100_000 * scale), 1000))
        finally:
            server_pg.stop("immediate")

    if only is None or "s3" in only:
        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        (tmp / "moto").mkdir()
        server = moto_server(tmp / "moto").start()
        try:
            batches = make_lines(int(620_000 * scale), 20_000)
            level = S3SinkSettings(bucket="bench").compression_level
            url = server.url

            def s3_sink(n: int) -> S3Sink:  # a prefix of its own per round: no round replays another's lines
                return S3Sink(S3SinkSettings(bucket="bench", prefix=f"lw{n}", endpoint_url=url, path_style=True,
                                             create_bucket=True))
            sink_run, (limit, compressing), rounds = await alternating(
                SINK_ROUNDS, lambda n: through_sink(s3_sink(n), batches, warm_up=1),
                lambda _: s3_limit(url, batches, warm_up=1), lambda _: s3_limit(url, batches, level, warm_up=1))
            add("s3 (moto_server)", sink_run, limit,
                "20K-line objects, the first of each run untimed (the sink reads the partition's state there); "
                f"{rounds}; limit 1: put_object of pre-compressed bodies")
            add("s3 (moto_server), beside a compressing client", sink_run, compressing,
                f"same sink runs; limit 2: gzip level {level} in-process then put_object (no state/list requests)")
            rows[-1]["limit"] = f"same client, gzip level {level} in the same process, then put_object"
        finally:
            server.stop()

    if only is None or only & {"kafka", "gcs"}:
        await bench_kafka_and_gcs(tmp, scale, add)

    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the line counts")
    parser.add_argument("--only", default="", help="comma-separated sinks to run (etcd, elasticsearch, opensearch, "
                                                    "postgres, s3, kafka, gcs); default: all")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = asyncio.run(bench(Path(tmp), args.scale, set(args.only.split(",")) if args.only else None))
    print(f"| {'sink':<38} | {'lines':>7} | {'lines/s':>8} | {'CPU s/100K':>10} | {'limit lines/s':>13} | "
          f"{'limit CPU s/100K':>16} | note")
    for r in rows:
        print(f"| {r['name']:<38} | {r['lines']:>7} | {r['lines_per_s']:>8,} | {r['cpu_s_per_100k']:>10.3f} | "
              f"{r['limit_lines_per_s']:>13,} | {r['limit_cpu_s_per_100k']:>16.3f} | {r['note']}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"broker": broker_label(), "sinks": rows}, indent=2))  # the Kafka sink's


if __name__ == "__main__":
    main()
