"""S3Sink against a real S3 API server (moto_server): objects, multipart, replays, crash retries, two
writers of one partition at a rebalance, and a worker killed with SIGKILL mid-upload."""

from __future__ import annotations

import gzip
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiobotocore.session import get_session

from core.errors import PermanentError, RetriableError
from core.settings import S3SinkSettings
from sinks.base import SinkBatch, SinkLine
from sinks.s3 import S3Sink, object_key
from tests.support.servers import Server, moto_server
from tests.support.sink_stack import kill_mid_upload_every_line_once
from tests.support.worker_harness import WorkerHarness

BASE_NS = 1_749_543_941_000_000_000  # 2025-06-10T08:25:41Z


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[Server]:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    server = moto_server(tmp_path).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def client(s3_server: Server) -> AsyncIterator[Any]:
    async with get_session().create_client("s3", endpoint_url=s3_server.url, region_name="us-east-1") as c:
        yield c


def settings(server: Server, **extra: Any) -> S3SinkSettings:
    extra.setdefault("create_bucket", True)
    return S3SinkSettings(bucket="logs-test", prefix="lw", endpoint_url=server.url, path_style=True, **extra)


def records(first: int, last: int, per_record: int = 3, pad: int = 50) -> list[SinkLine]:
    return [SinkLine(f"{o}-{i}", "t", BASE_NS + o, "info", "svc", orjson.dumps({"o": o, "i": i, "p": "x" * pad}), o, i)
            for o in range(first, last + 1) for i in range(per_record)]


async def all_lines(client: Any) -> list[dict[str, Any]]:
    listing = await client.list_objects_v2(Bucket="logs-test", Prefix="lw/dt=")
    out: list[dict[str, Any]] = []
    for item in listing.get("Contents", []):
        reply = await client.get_object(Bucket="logs-test", Key=item["Key"])
        async with reply["Body"] as body:
            out.extend(orjson.loads(line) for line in gzip.decompress(await body.read()).splitlines())
    return out


async def test_objects_named_by_offsets_and_event_time(s3_server: Server, client: Any) -> None:
    sink = S3Sink(settings(s3_server))
    await sink.start()
    try:
        batch = SinkBatch("sink.s3", 2, records(10, 19))
        await sink.write_batch(batch)
        key = object_key("lw", batch)
        assert key == "lw/dt=2025-06-10/hour=08/sink.s3-2-0000000000000000010-0000000000000000019.ndjson.gz"
        head = await client.head_object(Bucket="logs-test", Key=key)
        assert head["ContentEncoding"] == "gzip"
        assert len(await all_lines(client)) == 30
        await sink.write_batch(batch)  # retry / replay of the same records
        await sink.write_batch(SinkBatch("sink.s3", 2, records(5, 25)))  # an overlapping replay
    finally:
        await sink.stop()
    lines = await all_lines(client)
    assert sorted((d["o"], d["i"]) for d in lines) == [(o, i) for o in range(10, 26) for i in range(3)]


async def test_crash_before_state_update_leaves_no_duplicate(s3_server: Server, client: Any) -> None:
    sink = S3Sink(settings(s3_server))
    await sink.start()
    await sink.write_batch(SinkBatch("sink.s3", 0, records(0, 9)))
    # simulate a crash after the data object of [10..30] went up but before its state was saved
    crashed = SinkBatch("sink.s3", 0, records(10, 30))
    await sink._put(object_key("lw", crashed), gzip.compress(b"".join(x.document + b"\n" for x in crashed.lines)))
    await sink.stop()
    restarted = S3Sink(settings(s3_server))
    await restarted.start()
    try:  # the drain re-delivers from offset 10, batched differently this time
        await restarted.write_batch(SinkBatch("sink.s3", 0, records(10, 20)))
        await restarted.write_batch(SinkBatch("sink.s3", 0, records(21, 30)))
    finally:
        await restarted.stop()
    lines = await all_lines(client)
    assert sorted((d["o"], d["i"]) for d in lines) == [(o, i) for o in range(0, 31) for i in range(3)]


async def test_multipart_upload_above_threshold(s3_server: Server, client: Any) -> None:
    sink = S3Sink(settings(s3_server, multipart_threshold=1024 * 1024, part_size=5 * 1024 * 1024))
    await sink.start()
    try:
        big = [SinkLine(f"b{n}", "t", BASE_NS, "info", "svc", orjson.dumps({"n": n, "r": os.urandom(600).hex()}), n, 0)
               for n in range(12_000)]  # ~14 MiB of hex, about half after gzip: several 5 MiB parts
        await sink.write_batch(SinkBatch("sink.s3", 1, big))
    finally:
        await sink.stop()
    key = object_key("lw", SinkBatch("sink.s3", 1, big))
    head = await client.head_object(Bucket="logs-test", Key=key)
    parts = -(-head["ContentLength"] // (5 * 1024 * 1024))
    assert parts >= 2 and head["ETag"].strip('"').endswith(f"-{parts}")  # a multipart ETag names its part count
    lines = await all_lines(client)
    assert [d["n"] for d in lines] == list(range(12_000))


async def test_settings_reach_the_client_and_the_bucket_is_created(s3_server: Server, client: Any,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "from-the-chain")  # the standard AWS chain, no key in settings
    sink = S3Sink(S3SinkSettings(bucket="made-at-start", prefix="lw", endpoint_url=s3_server.url, path_style=True,
                                 region="eu-west-1", create_bucket=True))
    await sink.start()
    try:
        meta = sink._client.meta
        assert (meta.endpoint_url, meta.region_name) == (s3_server.url, "eu-west-1")
        assert meta.config.s3["addressing_style"] == "path"
        credentials = await sink._client._request_signer._credentials.get_frozen_credentials()
        assert credentials.access_key == "from-the-chain"
    finally:
        await sink.stop()
    buckets = [b["Name"] for b in (await client.list_buckets())["Buckets"]]
    assert "made-at-start" in buckets


async def test_a_missing_bucket_is_not_created_unless_asked(s3_server: Server, client: Any) -> None:
    sink = S3Sink(settings(s3_server, create_bucket=False))
    with pytest.raises(PermanentError, match=r"S3 bucket 'logs-test' does not exist.*sinks\.s3\.create_bucket: true"):
        await sink.start()
    await sink.stop()
    assert "logs-test" not in [b["Name"] for b in (await client.list_buckets())["Buckets"]]


@pytest.mark.parametrize(("encryption", "key_id"), [("AES256", None), ("aws:kms", "alias/logweave")])
async def test_every_object_is_written_with_server_side_encryption(s3_server: Server, client: Any, encryption: str,
                                                                   key_id: str | None) -> None:
    sink = S3Sink(settings(s3_server, server_side_encryption=encryption, sse_kms_key_id=key_id,
                           multipart_threshold=1024 * 1024, part_size=5 * 1024 * 1024))
    small = SinkBatch("sink.s3", 0, records(0, 4))
    big = SinkBatch("sink.s3", 0, [SinkLine(f"b{n}", "t", BASE_NS, "info", "svc",
                                            orjson.dumps({"n": n, "r": os.urandom(600).hex()}), 5 + n, 0)
                                   for n in range(6_000)])  # ~7 MiB gzipped: a multipart upload
    await sink.start()
    try:
        await sink.write_batch(small)
        await sink.write_batch(big)
    finally:
        await sink.stop()
    keys = [object_key("lw", small), object_key("lw", big), "lw/_state/sink.s3-0.json"]
    for key in keys:
        head = await client.head_object(Bucket="logs-test", Key=key)
        assert head.get("ServerSideEncryption") == encryption, (key, head)
        if key_id:
            assert key_id in head.get("SSEKMSKeyId", ""), (key, head)


async def test_event_times_before_1970_or_far_ahead_are_dead_lettered(s3_server: Server, client: Any) -> None:
    batch = records(0, 5, per_record=1)
    batch[1].time_ns = -1  # 1969-12-31T23:59:59.999999999Z
    batch[4].time_ns = 4_102_444_800 * 10**9  # 2100-01-01
    sink = S3Sink(settings(s3_server, max_future_skew=3600))
    await sink.start()
    try:
        result = await sink.write_batch(SinkBatch("sink.s3", 0, batch))
        replayed = await sink.write_batch(SinkBatch("sink.s3", 0, batch))
    finally:
        await sink.stop()
    assert [(f.line.offset, f.reason) for f in result.permanent] == [(1, "event_time_out_of_range"),
                                                                     (4, "event_time_out_of_range")]
    assert "before 1970" in result.permanent[0].detail and "max_future_skew" in result.permanent[1].detail
    assert not replayed.permanent and not replayed.retry  # the position moved past them: no second dead letter
    listing = await client.list_objects_v2(Bucket="logs-test", Prefix="lw/dt=")
    assert [item["Key"].split("/")[1] for item in listing["Contents"]] == ["dt=2025-06-10"]
    assert sorted(d["o"] for d in await all_lines(client)) == [0, 2, 3, 5]


def count_requests(sink: S3Sink) -> Counter[str]:
    """S3 operations the sink's client sends from now on, by name."""
    sent: Counter[str] = Counter()

    def before_call(model: Any, **_: Any) -> None:
        sent[model.name] += 1

    sink._client.meta.events.register("before-call.s3", before_call)
    return sent


async def test_steady_state_costs_one_object_put_and_one_state_put(s3_server: Server, client: Any) -> None:
    sink = S3Sink(settings(s3_server))
    await sink.start()
    try:
        sent = count_requests(sink)
        await sink.write_batch(SinkBatch("sink.s3", 0, records(0, 9)))  # reads the state, lists the siblings
        assert sent == {"GetObject": 1, "PutObject": 2, "ListObjectsV2": 1}
        sent.clear()
        for first in range(10, 50, 10):
            await sink.write_batch(SinkBatch("sink.s3", 0, records(first, first + 9)))
        assert sent == {"PutObject": 8}  # per object: the object and its state, at once; nothing read or listed
    finally:
        await sink.stop()
    assert sorted((d["o"], d["i"]) for d in await all_lines(client)) == [(o, i) for o in range(50) for i in range(3)]


async def test_a_state_naming_a_missing_object_falls_back_to_the_position_before_it(s3_server: Server,
                                                                                    client: Any) -> None:
    """The state went up beside an object that never landed (the worker died between the two requests)."""
    sink = S3Sink(settings(s3_server))
    await sink.start()
    await sink.write_batch(SinkBatch("sink.s3", 0, records(0, 9)))

    async def lost(key: str, body: bytes) -> None:
        raise RetriableError("connection reset")

    sink._put = lost  # type: ignore[method-assign]
    with pytest.raises(RetriableError):
        await sink.write_batch(SinkBatch("sink.s3", 0, records(10, 30)))
    await sink.stop()
    state = orjson.loads(await (await client.get_object(Bucket="logs-test", Key="lw/_state/sink.s3-0.json"))[
        "Body"].read())
    assert state["offset"] == 30 and state["before"]["offset"] == 9  # the state landed, naming the lost object
    restarted = S3Sink(settings(s3_server))
    await restarted.start()
    try:
        assert await restarted.resume_offset("sink.s3", 0) == 9
        await restarted.write_batch(SinkBatch("sink.s3", 0, records(10, 20)))
        await restarted.write_batch(SinkBatch("sink.s3", 0, records(21, 30)))
        assert await restarted.resume_offset("sink.s3", 0) == 30
    finally:
        await restarted.stop()
    assert sorted((d["o"], d["i"]) for d in await all_lines(client)) == [(o, i) for o in range(31) for i in range(3)]


async def test_a_crash_mid_multipart_leaves_no_object_and_its_parts_are_aborted(s3_server: Server,
                                                                                client: Any) -> None:
    sink = S3Sink(settings(s3_server, multipart_threshold=64))
    await sink.start()
    await sink.write_batch(SinkBatch("sink.s3", 0, records(0, 9)))
    crashed = SinkBatch("sink.s3", 0, records(10, 30))

    class Died(Exception):
        pass

    async def dies_before_completing(**_: Any) -> None:  # the process dies: no abort is sent
        raise Died

    abort = sink._client.abort_multipart_upload
    sink._client.complete_multipart_upload = dies_before_completing
    sink._client.abort_multipart_upload = dies_before_completing
    with pytest.raises(Died):
        await sink.write_batch(crashed)
    sink._client.abort_multipart_upload = abort
    await sink.stop()
    uploads = (await client.list_multipart_uploads(Bucket="logs-test")).get("Uploads", [])
    assert [u["Key"] for u in uploads] == [object_key("lw", crashed)]  # its part is stored, billed, invisible
    restarted = S3Sink(settings(s3_server, multipart_threshold=64))
    await restarted.start()
    try:
        assert await restarted.resume_offset("sink.s3", 0) == 9
        assert not (await client.list_multipart_uploads(Bucket="logs-test")).get("Uploads")
        await restarted.write_batch(SinkBatch("sink.s3", 0, records(10, 25)))
    finally:
        await restarted.stop()
    assert sorted((d["o"], d["i"]) for d in await all_lines(client)) == [(o, i) for o in range(26) for i in range(3)]


@pytest.mark.parametrize("other_wrote_to", [20, 30])
async def test_the_old_owners_late_write_is_fenced_and_taken_back(s3_server: Server, client: Any,
                                                                  other_wrote_to: int) -> None:
    """A partition moved to worker B and back: A's position in memory is stale. A's state write is refused
    (its version moved), so A takes back its object, which shares its first line with B's, and its retry
    starts from B's position."""
    a, b = S3Sink(settings(s3_server)), S3Sink(settings(s3_server))
    await a.start()
    await b.start()
    try:
        await a.write_batch(SinkBatch("sink.s3", 0, records(0, 9)))
        await b.write_batch(SinkBatch("sink.s3", 0, records(10, 20)))  # B reads A's state, then writes on
        if other_wrote_to > 20:
            await b.write_batch(SinkBatch("sink.s3", 0, records(21, other_wrote_to)))
        late = SinkBatch("sink.s3", 0, records(10, 25))  # A goes on from 9, as if nobody had written
        with pytest.raises(RetriableError, match=r"another worker wrote sink\.s3-0"):
            await a.write_batch(late)
        assert object_key("lw", late) not in await a._list("lw/dt=")
        await a.write_batch(late)  # the drain's retry: read afresh, only what B has not written
        await a.write_batch(SinkBatch("sink.s3", 0, records(26, 35)))
    finally:
        await a.stop()
        await b.stop()
    lines = await all_lines(client)
    assert sorted((d["o"], d["i"]) for d in lines) == [(o, i) for o in range(36) for i in range(3)]


async def test_a_second_sink_writing_first_makes_the_first_one_read_again(s3_server: Server, client: Any) -> None:
    """Two workers with one state version in memory race for the next object: one state write wins, the
    other's object is taken back when it shares a first line with the winner's."""
    a, b = S3Sink(settings(s3_server)), S3Sink(settings(s3_server))
    await a.start()
    await b.start()
    try:
        await a.write_batch(SinkBatch("sink.s3", 0, records(0, 4)))
        await b.write_batch(SinkBatch("sink.s3", 0, records(0, 9)))  # reads A's state: writes 5-9
        await a.write_batch(SinkBatch("sink.s3", 0, records(10, 14)))  # A's version is stale
    except RetriableError:
        await a.write_batch(SinkBatch("sink.s3", 0, records(10, 14)))
    finally:
        await a.stop()
        await b.stop()
    assert sorted((d["o"], d["i"]) for d in await all_lines(client)) == [(o, i) for o in range(15) for i in range(3)]


async def test_worker_killed_mid_upload_every_line_once(s3_server: Server, client: Any,
                                                        make_worker: Callable[..., WorkerHarness]) -> None:
    """A drain-only worker uploading a steady stream of multipart objects (with their state objects beside
    them) is killed with SIGKILL, then restarted under the same static member id with another flush size,
    so the re-delivered records are cut into objects other than the first run's."""
    worker = make_worker({"LOGWEAVE_WORKER__STAGES": "drain", "LOGWEAVE_SINKS__S3__ENDPOINT_URL": s3_server.url,
                          "LOGWEAVE_SINKS__S3__BUCKET": "logs-test", "LOGWEAVE_SINKS__S3__PREFIX": "lw",
                          "LOGWEAVE_SINKS__S3__PATH_STYLE": "true", "LOGWEAVE_SINKS__S3__CREATE_BUCKET": "true",
                          "LOGWEAVE_SINKS__S3__MULTIPART_THRESHOLD": "1KiB",
                          "LOGWEAVE_SINKS__S3__FLUSH_BYTES": "256KiB", "LOGWEAVE_SINKS__S3__FLUSH_AGE": "0.2s"},
                         sinks=("s3",))

    async def stored() -> Counter[int]:
        seen: Counter[int] = Counter()
        listing = client.get_paginator("list_objects_v2").paginate(Bucket="logs-test", Prefix="lw/dt=")
        async for page in listing:
            for item in page.get("Contents", []):
                try:
                    reply = await client.get_object(Bucket="logs-test", Key=item["Key"])
                except client.exceptions.NoSuchKey:  # an orphan removed by a retry since the listing
                    continue
                async with reply["Body"] as body:
                    seen.update(orjson.loads(line)["n"] for line in gzip.decompress(await body.read()).splitlines())
        return seen

    await kill_mid_upload_every_line_once(worker, "sink.s3", {"LOGWEAVE_SINKS__S3__FLUSH_BYTES": "400KiB"}, stored)
