"""GcsSink against a real GCS JSON API server (gcp-storage-emulator) through gcloud-aio-storage:
the S3 sink's object layout and crash rules, resumable uploads for large objects, bucket handling,
and a worker killed with SIGKILL mid-upload leaving every line exactly once."""

from __future__ import annotations

import gzip
import os
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web
from gcloud.aio.storage import Storage

from commands.broker import free_port
from core.errors import PermanentError
from core.settings import GcsSinkSettings
from sinks.base import SinkBatch, SinkLine
from sinks.gcs import GcsSink
from sinks.object_store import object_key
from tests.support.servers import Server, gcs_emulator
from tests.support.sink_stack import kill_mid_upload_every_line_once
from tests.support.worker_harness import WorkerHarness

BASE_NS = 1_749_543_941_000_000_000  # 2025-06-10T08:25:41Z


@pytest.fixture(scope="module")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = gcs_emulator(tmp_path_factory.mktemp("gcs")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def storage(emulator: Server) -> AsyncIterator[Storage]:
    async with aiohttp.ClientSession() as http:
        yield Storage(api_root=emulator.url, session=http)  # type: ignore[arg-type]


def settings(server: Server, bucket: str, **extra: Any) -> GcsSinkSettings:
    return GcsSinkSettings(bucket=bucket, prefix="lw", endpoint_url=server.url, project="logweave-test", **extra)


def records(first: int, last: int, per_record: int = 3, pad: int = 50) -> list[SinkLine]:
    return [SinkLine(f"{o}-{i}", "t", BASE_NS + o, "info", "svc", orjson.dumps({"o": o, "i": i, "p": "x" * pad}), o, i)
            for o in range(first, last + 1) for i in range(per_record)]


async def all_lines(storage: Storage, bucket: str, prefix: str = "lw/dt=") -> list[dict[str, Any]]:
    listing = await storage.list_objects(bucket, params={"prefix": prefix})
    out: list[dict[str, Any]] = []
    for item in listing.get("items", []):
        try:
            data = await storage.download(bucket, item["name"])
        except aiohttp.ClientResponseError as exc:
            if exc.status == 404:  # a crashed batch's object, removed by its retry since the listing
                continue
            raise
        out.extend(orjson.loads(line) for line in gzip.decompress(data).splitlines())
    return out


async def test_objects_named_by_offsets_and_no_duplicate_on_retry_or_replay(emulator: Server,
                                                                            storage: Storage) -> None:
    sink = GcsSink(settings(emulator, "gcs-layout"))
    await sink.start()
    try:
        batch = SinkBatch("sink.gcs", 2, records(10, 19))
        await sink.write_batch(batch)
        key = object_key("lw", batch)
        assert key == "lw/dt=2025-06-10/hour=08/sink.gcs-2-0000000000000000010-0000000000000000019.ndjson.gz"
        meta = await storage.download_metadata("gcs-layout", key)
        assert meta["contentType"] == "application/x-ndjson"
        await sink.write_batch(batch)  # a retry
        await sink.write_batch(SinkBatch("sink.gcs", 2, records(5, 25)))  # an overlapping replay
        assert await sink.resume_offset("sink.gcs", 2) == 25 and await sink.resume_offset("sink.gcs", 0) is None
    finally:
        await sink.stop()
    lines = await all_lines(storage, "gcs-layout")
    assert sorted((d["o"], d["i"]) for d in lines) == [(o, i) for o in range(10, 26) for i in range(3)]


async def test_crash_before_state_update_leaves_no_duplicate(emulator: Server, storage: Storage) -> None:
    sink = GcsSink(settings(emulator, "gcs-crash"))
    await sink.start()
    await sink.write_batch(SinkBatch("sink.gcs", 0, records(0, 9)))
    crashed = SinkBatch("sink.gcs", 0, records(10, 30))  # its data object went up, its state did not
    await sink._put(object_key("lw", crashed), gzip.compress(b"".join(x.document + b"\n" for x in crashed.lines)))
    await sink.stop()
    restarted = GcsSink(settings(emulator, "gcs-crash"))
    await restarted.start()
    try:  # the drain re-delivers from offset 10, batched differently this time
        await restarted.write_batch(SinkBatch("sink.gcs", 0, records(10, 20)))
        await restarted.write_batch(SinkBatch("sink.gcs", 0, records(21, 30)))
    finally:
        await restarted.stop()
    lines = await all_lines(storage, "gcs-crash")
    assert sorted((d["o"], d["i"]) for d in lines) == [(o, i) for o in range(0, 31) for i in range(3)]


def record_requests(sink: GcsSink) -> list[tuple[str, str, str]]:
    """(method, uploadType, Content-Range) of every request the sink's HTTP session sends from now on."""
    seen: list[tuple[str, str, str]] = []

    async def on_request(_: Any, __: Any, params: aiohttp.TraceRequestStartParams) -> None:
        seen.append((params.method, params.url.query.get("uploadType", ""), params.headers.get("Content-Range", "")))

    trace = aiohttp.TraceConfig()
    trace.on_request_start.append(on_request)
    trace.freeze()
    assert sink._http is not None
    sink._http._trace_configs.append(trace)
    return seen


def big_lines(count: int = 4000) -> list[SinkLine]:
    """~2.4 MiB of random hex: over 1 MiB after gzip."""
    return [SinkLine(f"b{n}", "t", BASE_NS, "info", "svc", orjson.dumps({"n": n, "r": os.urandom(300).hex()}), n, 0)
            for n in range(count)]


async def test_large_objects_go_up_in_resumable_chunks_small_ones_multipart(emulator: Server,
                                                                          storage: Storage) -> None:
    sink = GcsSink(settings(emulator, "gcs-large", resumable_threshold=1024 * 1024, resumable_chunk=256 * 1024))
    await sink.start()
    requests = record_requests(sink)
    try:
        big = big_lines()
        await sink.write_batch(SinkBatch("sink.gcs", 1, big))
        await sink.write_batch(SinkBatch("sink.gcs", 1, records(5000, 5001)))  # small: multipart
    finally:
        await sink.stop()
    size = len(gzip.compress(b"".join(x.document + b"\n" for x in big), 5))
    chunks = [r for method, _, r in requests if method == "PUT" and not r.startswith("bytes */")]
    assert len(chunks) == -(-size // (256 * 1024)) >= 4, requests  # one request per 256 KiB chunk
    assert ("POST", "multipart", "") in requests
    lines = await all_lines(storage, "gcs-large")
    assert [d.get("n", d.get("o")) for d in lines] == [*range(4000), 5000, 5000, 5000, 5001, 5001, 5001]


@pytest.fixture
async def lossy_proxy(emulator: Server) -> AsyncIterator[str]:
    """An HTTP proxy to the emulator that delivers the first upload chunk and then drops the
    connection before the reply: the server holds the chunk, the client sees a lost connection."""
    dropped: list[str] = []
    forwarded = ("content-range", "content-type", "x-upload-content-type", "x-upload-content-length")
    async with aiohttp.ClientSession(auto_decompress=False) as http:
        async def forward(request: web.Request) -> web.StreamResponse:
            body = await request.read()
            async with http.request(request.method, emulator.url + request.raw_path, data=body,
                                    headers={k: v for k, v in request.headers.items() if k.lower() in forwarded}) as r:
                reply = web.Response(status=r.status, body=await r.read(), headers={
                    k: v.replace(emulator.url, proxy_url) for k in ("Location", "Range", "Content-Type")
                    if (v := r.headers.get(k))})
            chunk = request.method == "PUT" and not request.headers.get("Content-Range", "").startswith("bytes */")
            if chunk and not dropped:
                dropped.append(request.headers["Content-Range"])
                assert request.transport is not None
                request.transport.close()
            return reply

        app = web.Application(client_max_size=64 << 20)
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        proxy_url = f"http://127.0.0.1:{port}"
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield proxy_url
        finally:
            await runner.cleanup()
    assert dropped, "the proxy never dropped a chunk: nothing was tested"


async def test_a_lost_chunk_resumes_from_what_the_server_holds_and_a_cut_upload_leaves_nothing(
        lossy_proxy: str, emulator: Server, storage: Storage) -> None:
    sink = GcsSink(GcsSinkSettings(bucket="gcs-resume", prefix="lw", endpoint_url=lossy_proxy, project="p",
                                   resumable_threshold=256 * 1024, resumable_chunk=256 * 1024))
    await sink.start()
    requests = record_requests(sink)
    try:
        big = big_lines(3000)
        await sink.write_batch(SinkBatch("sink.gcs", 0, big))
        cut = await sink._open_session("lw/dt=cut/object.ndjson.gz", 1 << 20)  # a worker dies after this
        assert cut
    finally:
        await sink.stop()
    puts = [r for method, _, r in requests if method == "PUT"]
    first, query, again = puts[:3]  # a chunk, its reply lost; what does the server hold?; on from there
    assert first.startswith("bytes 0-") and query.startswith("bytes */") and again.startswith(f"bytes {256 * 1024}-")
    assert sorted(d["n"] for d in await all_lines(storage, "gcs-resume")) == list(range(3000))
    assert await all_lines(storage, "gcs-resume", "lw/dt=cut/") == []


async def test_missing_bucket_created_with_a_project_and_refused_without(emulator: Server,
                                                                         storage: Storage) -> None:
    sink = GcsSink(settings(emulator, "made-at-start"))
    await sink.start()
    await sink.stop()
    assert (await storage.get_bucket_metadata("made-at-start"))["name"] == "made-at-start"
    unmade = GcsSink(GcsSinkSettings(bucket="never-made", endpoint_url=emulator.url))
    with pytest.raises(PermanentError, match=r"sinks\.gcs\.project"):
        await unmade.start()
    await unmade.stop()


async def test_worker_killed_mid_upload_every_line_once(emulator: Server, storage: Storage,
                                                        make_worker: Callable[..., WorkerHarness],
                                                        tmp_path: Path) -> None:
    """A drain-only worker (input pre-built on sink.gcs) uploading a steady stream of objects is
    killed with SIGKILL, then restarted under the same static member id with another flush size,
    so the re-delivered records are cut into objects other than the first run's."""
    worker = make_worker({"LOGWEAVE_WORKER__STAGES": "drain", "LOGWEAVE_SINKS__GCS__ENDPOINT_URL": emulator.url,
                          "LOGWEAVE_SINKS__GCS__BUCKET": "gcs-kill", "LOGWEAVE_SINKS__GCS__PREFIX": "lw",
                          "LOGWEAVE_SINKS__GCS__PROJECT": "logweave-test",
                          "LOGWEAVE_SINKS__GCS__FLUSH_BYTES": "256KiB", "LOGWEAVE_SINKS__GCS__FLUSH_AGE": "0.2s"},
                         sinks=("gcs",))

    async def stored() -> Counter[int]:
        return Counter(d["n"] for d in await all_lines(storage, "gcs-kill"))

    await kill_mid_upload_every_line_once(worker, "sink.gcs", {"LOGWEAVE_SINKS__GCS__FLUSH_BYTES": "400KiB"}, stored)


async def test_a_record_split_across_batches_keeps_every_line(emulator: Server, storage: Storage) -> None:
    """The drain splits a record larger than flush_bytes inside; both parts must survive."""
    sink = GcsSink(settings(emulator, "gcs-split"))
    await sink.start()
    try:
        record = records(16, 16, per_record=100)
        await sink.write_batch(SinkBatch("sink.gcs", 0, record[:50]))
        await sink.write_batch(SinkBatch("sink.gcs", 0, record[50:]))
    finally:
        await sink.stop()
    assert sorted(d["i"] for d in await all_lines(storage, "gcs-split")) == list(range(100))
