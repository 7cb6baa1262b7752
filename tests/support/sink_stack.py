"""A real stack for sink tests: noida-db (Kafka + Elasticsearch API), etcd and moto (S3), with
helpers that feed a worker and count what every sink holds, per line number `n`."""

from __future__ import annotations

import asyncio
import base64
import gzip
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiobotocore.session import get_session
from aiokafka import AIOKafkaProducer
from elasticsearch import AsyncElasticsearch

from commands.broker import EmbeddedBroker, free_port
from core.codec import compressor
from core.models import ParsedChunk
from tests.support.polling import wait_for
from tests.support.servers import Server, etcd_gateway, etcd_server, moto_server
from tests.support.worker_harness import WorkerHarness

SINKS = ("file", "etcd", "elasticsearch", "s3")
BASE = 1_749_543_941_000_000_000


@dataclass
class Stack:
    broker: EmbeddedBroker
    es_url: str
    etcd: Server
    s3: Server
    workdir: Path

    def env(self) -> dict[str, str]:
        return {
            "LOGWEAVE_SINKS__ETCD__SERVERS": self.etcd.url,
            "LOGWEAVE_SINKS__ETCD__PREFIX": "/lw",
            "LOGWEAVE_SINKS__ELASTICSEARCH__URL": self.es_url,
            "LOGWEAVE_SINKS__ELASTICSEARCH__INDEX_PREFIX": "lw",
            "LOGWEAVE_SINKS__S3__ENDPOINT_URL": self.s3.url,
            "LOGWEAVE_SINKS__S3__BUCKET": "lw-bucket",
            "LOGWEAVE_SINKS__S3__PATH_STYLE": "true",
            "LOGWEAVE_SINKS__S3__CREATE_BUCKET": "true",
            "LOGWEAVE_SINKS__S3__FLUSH_AGE": "1s",
            "LOGWEAVE_SINKS__RETRY__BREAKER_FAILURES": "3",
            "LOGWEAVE_SINKS__RETRY__BREAKER_RESET": "2s",
            "LOGWEAVE_SINKS__RETRY__MAX_BACKOFF": "2s",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "LOGWEAVE_TRACES__GAP": "5s",
            "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h",
        }


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    es_port = free_port()
    from commands.broker import EmbeddedBroker as Broker

    broker = Broker(tmp_path / "noida", free_port(), elasticsearch_port=es_port).start(log_path=tmp_path / "noida.log")
    etcd = etcd_server(tmp_path).start()
    s3 = moto_server(tmp_path).start()
    try:
        yield Stack(broker, f"http://127.0.0.1:{es_port}", etcd, s3, tmp_path)
    finally:
        s3.stop()
        etcd.stop()
        broker.stop(kill=True)


def doc(n: int) -> dict[str, Any]:
    return {
        "time": f"2025-06-10T08:25:{n % 60:02d}.{n:09d}Z",
        "traceId": f"tr-{n // 10}",
        "level": "info",
        "service": "svc",
        "msg": f"line {n}",
        "n": n,
    }


async def feed(worker: WorkerHarness, count: int, start: int = 0) -> None:
    for first in range(start, start + count, 1000):
        await worker.feed(
            [doc(n) for n in range(first, min(first + 1000, start + count))], stream=f"s{(first // 1000) % 8}"
        )


async def sink_counts(stack: Stack, worker: WorkerHarness) -> dict[str, Counter[int]]:
    counts = await _all_counts(stack, worker)
    return {name: counts[name] for name in worker.sinks}


async def _all_counts(stack: Stack, worker: WorkerHarness) -> dict[str, Counter[int]]:
    counts: dict[str, Counter[int]] = {"file": Counter(d["n"] for d in worker.sink_documents())}
    counts["etcd"] = etcd_counts(stack.etcd.url)
    es = AsyncElasticsearch(stack.es_url)
    try:
        await es.indices.refresh(index="lw-*")
        found: Counter[int] = Counter()
        reply = await es.search(index="lw-*", size=10_000, sort=["n"], source=["n"], query={"match_all": {}})
        hits = reply["hits"]["hits"]
        while hits:
            found.update(h["_source"]["n"] for h in hits)
            reply = await es.search(
                index="lw-*",
                size=10_000,
                sort=["n"],
                source=["n"],
                query={"match_all": {}},
                search_after=hits[-1]["sort"],
            )
            hits = reply["hits"]["hits"]
        counts["elasticsearch"] = found
    except Exception:
        counts["elasticsearch"] = Counter()
    finally:
        await es.close()
    if "s3" not in worker.sinks:
        return counts
    async with get_session().create_client("s3", endpoint_url=stack.s3.url, region_name="us-east-1") as s3:
        found = Counter()
        paginator = s3.get_paginator("list_objects_v2")
        async for page in paginator.paginate(Bucket="lw-bucket", Prefix="logs/dt="):
            for item in page.get("Contents", []):
                reply = await s3.get_object(Bucket="lw-bucket", Key=item["Key"])
                async with reply["Body"] as body_stream:
                    data = gzip.decompress(await body_stream.read())
                found.update(orjson.loads(line)["n"] for line in data.splitlines())
        counts["s3"] = found
    return counts


def etcd_counts(url: str) -> Counter[int]:
    """Every line under /lw/, read in pages (a single range of 200K values is too big a reply)."""
    found: Counter[int] = Counter()
    start, end = b"/lw/", b"/lw0"
    while True:
        body = etcd_gateway(url, "/v3/kv/range", {"key": base64.b64encode(start).decode(),
                                                   "range_end": base64.b64encode(end).decode(), "limit": 20_000})
        kvs = body.get("kvs", [])
        assert isinstance(kvs, list)
        found.update(orjson.loads(base64.b64decode(kv["value"]))["n"] for kv in kvs)
        if not body.get("more"):
            return found
        start = base64.b64decode(kvs[-1]["key"]) + b"\x00"


async def quick_counts(stack: Stack, worker: WorkerHarness) -> dict[str, int]:
    """Cheap progress figures (counts only); the full read happens once at the end."""
    out = {"file": len(worker.sink_documents())}
    if "etcd" in worker.sinks:
        body = etcd_gateway(stack.etcd.url, "/v3/kv/range", {"key": base64.b64encode(b"/lw/").decode(),
                                                              "range_end": base64.b64encode(b"/lw0").decode(),
                                                              "count_only": True})
        out["etcd"] = int(str(body.get("count", 0)))
    if "elasticsearch" in worker.sinks:
        es = AsyncElasticsearch(stack.es_url)
        try:
            await es.indices.refresh(index="lw-*")
            out["elasticsearch"] = int((await es.count(index="lw-*"))["count"])
        except Exception:
            out["elasticsearch"] = 0
        finally:
            await es.close()
    return out


async def wait_all(stack: Stack, worker: WorkerHarness, expected: int, timeout: float) -> dict[str, Counter[int]]:
    """Every sink's per-line counts once each holds `expected` lines and the worker has committed to
    the end of its inputs (so a duplicate still in flight would be counted too)."""
    last: dict[str, int] = {}

    async def all_there() -> bool:
        nonlocal last
        assert worker.process is not None and worker.process.alive(), worker.process and worker.process.log_tail()
        last = await quick_counts(stack, worker)  # cheap counts first; S3 is read whole only after
        if any(last.get(name, expected) < expected for name in worker.sinks if name != "s3"):
            return False
        last = {name: len(counter) for name, counter in (await sink_counts(stack, worker)).items()}
        return all(size >= expected for size in last.values())

    await wait_for(all_there, timeout=timeout, interval=1.0, what=f"{expected} lines in every sink",
                   last_seen=lambda: last)
    await worker.wait_until_quiet(timeout=timeout)
    return await sink_counts(stack, worker)


def assert_exactly_once(counts: dict[str, Counter[int]], expected: int) -> None:
    for sink, counter in counts.items():
        missing = expected - len(counter)
        duplicates = sum(c - 1 for c in counter.values() if c > 1)
        assert (missing, duplicates) == (0, 0), f"{sink}: {missing} lines missing, {duplicates} duplicates"
        assert set(counter) == set(range(expected))


def parsed_chunk(first: int, count: int, stream: str) -> bytes:
    """A sink-topic record as the group stage writes it: lines `{"n": first..first+count-1}` of `stream`."""
    src = {"kind": "file", "namespace": "ns", "pod": "p", "container": "c"}
    rows = [[0, stream, n, BASE + n, f"tr-{n // 10}", "info", "svc", orjson.dumps({"n": n}).decode(), "stdout"]
            for n in range(first, first + count)]
    return compressor("lz4")(ParsedChunk([src], rows).encode())


@dataclass
class Burst:
    """`records` records of a paced feed sent back to back once `asked` is set; `sent` is set when the
    last of them is acked (or the feed ended)."""

    records: int
    asked: asyncio.Event = field(default_factory=asyncio.Event)
    sent: asyncio.Event = field(default_factory=asyncio.Event)


async def publish_sink_records(bootstrap: str, topic: str, total: int, per_chunk: int, partitions: int = 4,
                               pace: float = 0.0, published: list[int] | None = None,
                               burst: Burst | None = None) -> None:
    """Pre-built input for a drain-only worker: `total` lines in records of `per_chunk`, round robin,
    one record every `pace` seconds (but for a `burst`); `published` (if given) holds the count of lines
    acked so far."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    left = burst.records if burst is not None else 0
    try:
        for number, first in enumerate(range(0, total, per_chunk)):
            await producer.send_and_wait(topic, parsed_chunk(first, per_chunk, f"s{number % 8}"),
                                         partition=number % partitions)
            if published is not None:
                published[0] = first + per_chunk
            if burst is not None and burst.asked.is_set() and left:
                left -= 1
                if not left:
                    burst.sent.set()
                continue
            if pace:
                await asyncio.sleep(pace)
    finally:
        if burst is not None:
            burst.sent.set()
        await producer.stop()


async def kill_mid_upload_every_line_once(worker: WorkerHarness, topic: str, restart_with: dict[str, str],
                                          lines_stored: Callable[[], Awaitable[Counter[int]]],
                                          total: int = 40_000, per_chunk: int = 200) -> None:
    # records of 200 lines (~60 KB): objects hold whole records (the flush sizes are above one)
    """A drain-only `worker` writing objects from `topic`, fed a steady stream of pre-built records
    (about 6 s in all), is killed with SIGKILL once a fifth of the lines are stored, while lines it
    was given are still unstored; the feed goes on while it is down. It is restarted under the same
    static member id with `restart_with` (env settings; an object store's flush size at 400KiB cuts the
    re-delivered records into other objects than the first run's). Every line must then be stored exactly once
    (`lines_stored`: the `n` of each stored line).

    The feed is paced rather than published up front: a sink faster than this test's polling of the
    store would otherwise have stored everything before the kill, and the kill would test nothing. For
    the same reason the kill comes the moment a burst of records is acked: paced alone, a drain that kept
    up with the feed while the test's slow reads of the store went on had stored every line fed."""
    await worker.start()
    published = [0]
    burst = Burst(records=5)
    feeding = asyncio.ensure_future(publish_sink_records(
        worker.broker.bootstrap, topic, total, per_chunk, pace=6.0 * per_chunk / total, published=published,
        burst=burst))
    seen: Counter[int] = Counter()

    async def progressed(goal: int) -> bool:
        nonlocal seen
        seen = await lines_stored()
        return len(seen) >= goal

    try:
        await wait_for(lambda: progressed(total // 5), timeout=120, what=f"a fifth of the lines from {topic}",
                       interval=0.2, last_seen=lambda: len(seen))
        burst.asked.set()
        await burst.sent.wait()
        fed_before_kill = published[0]
        worker.stop(kill=True)
        stored_at_kill = len(await lines_stored())  # nothing is written after the kill
        assert stored_at_kill < fed_before_kill, (
            f"the kill came after the worker had stored all {fed_before_kill} lines fed: nothing was in flight")
        worker.overrides.update(restart_with)
        await worker.start()
        started = time.monotonic()
        await feeding
    finally:
        feeding.cancel()
    await wait_for(lambda: progressed(total), timeout=180, what=f"every line from {topic} after the restart",
                   interval=0.5, last_seen=lambda: len(seen))
    duplicates = {n: c for n, c in seen.items() if c > 1}
    assert not duplicates, f"{len(duplicates)} duplicated lines, e.g. {sorted(duplicates)[:5]}"
    assert set(seen) == set(range(total))
    print(f"killed at {stored_at_kill} lines stored of {fed_before_kill} fed; "
          f"the rest took {time.monotonic() - started:.1f}s after the restart")
