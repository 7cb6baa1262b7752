"""`logweave replay` run as a user would, against real servers: no sink gains a duplicate, lines a
sink lost are written again, offsets follow --from/--to/--partitions, and dead letters come back
into the pipeline after a fix."""

from __future__ import annotations

import base64
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from elasticsearch import AsyncElasticsearch

from tests.support.polling import wait_for
from tests.support.processes import VENV_BIN, base_env
from tests.support.servers import etcd_gateway
from tests.support.sink_stack import SINKS, Stack, assert_exactly_once, feed, sink_counts, stack, wait_all
from tests.support.worker_harness import WorkerHarness

__all__ = ["stack"]  # the fixture, imported so pytest finds it here


def replay(worker: WorkerHarness, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(VENV_BIN / "logweave"), "replay", *args], env=base_env({**worker.env, **(env or {})}),
                          capture_output=True, text=True, timeout=120)


async def forget_some_lines(stack: Stack, numbers: list[int]) -> None:
    """Delete a few delivered lines from etcd and Elasticsearch, as an operator's mistake would."""
    es = AsyncElasticsearch(stack.es_url)
    try:
        await es.delete_by_query(index="lw-*", query={"terms": {"n": numbers}}, refresh=True)
    finally:
        await es.close()
    body = etcd_gateway(stack.etcd.url, "/v3/kv/range", {"key": base64.b64encode(b"/lw/").decode(),
                                                          "range_end": base64.b64encode(b"/lw0").decode()})
    for kv in body.get("kvs", []):  # type: ignore[union-attr]
        if orjson.loads(base64.b64decode(kv["value"]))["n"] in numbers:
            etcd_gateway(stack.etcd.url, "/v3/kv/deleterange", {"key": kv["key"]})


async def test_replay_adds_no_duplicates_to_any_sink_and_restores_lost_lines(
        stack: Stack, make_worker: Callable[..., WorkerHarness]) -> None:
    worker = await make_worker(stack.env(), sinks=SINKS).start()
    await feed(worker, 3_000)
    assert_exactly_once(await wait_all(stack, worker, 3_000, timeout=120), 3_000)
    worker.stop()
    await forget_some_lines(stack, [5, 1234, 2999])
    counts = await sink_counts(stack, worker)
    assert len(counts["etcd"]) == len(counts["elasticsearch"]) == 2_997
    refused = replay(worker, "--sink", "s3", "--from", "earliest")  # noida keeps the stopped static member
    assert refused.returncode == 2 and "--workers-stopped" in refused.stderr, refused.stderr
    for sink in SINKS:
        run = replay(worker, "--sink", sink, "--from", "earliest", "--workers-stopped")
        assert run.returncode == 0, run.stderr
        assert "lines in" in run.stdout and f"written to the {sink} sink" in run.stdout
    assert_exactly_once(await sink_counts(stack, worker), 3_000)


async def test_dry_run_shows_offsets_for_times_offsets_and_partitions(
        make_worker: Callable[..., WorkerHarness]) -> None:
    worker = await make_worker().start()
    await worker.feed([{"traceId": f"t{i}", "n": i} for i in range(400)])
    await wait_for_lines(worker, 400)
    everything = replay(worker, "--sink", "file", "--from", "2000-01-01T00:00:00Z", "--dry-run")
    assert everything.returncode == 0, everything.stderr
    total = int(everything.stdout.split(": ", 1)[1].split(" records")[0])
    assert total > 0 and "dry run: nothing written" in everything.stdout
    assert "partition 3" in everything.stdout
    future = replay(worker, "--sink", "file", "--from", "2999-01-01T00:00:00Z", "--dry-run")
    assert "sink.file: 0 records" in future.stdout
    recent = replay(worker, "--sink", "file", "--from", "1h", "--dry-run")
    assert f"sink.file: {total} records" in recent.stdout
    bounded = replay(worker, "--sink", "file", "--from", "0", "--to", "1", "--partitions", "0,1", "--dry-run")
    assert "partition 0: offsets 0..1 (1 records)" in bounded.stdout and "partition 2" not in bounded.stdout
    for bad, option in ((["--from", "yesterday"], "--from"), (["--from", "0", "--partitions", "9"], "--partitions"),
                        (["--from", "0", "--sink", "nope"], "--sink")):
        args = bad if "--sink" in bad else ["--sink", "file", *bad]
        run = replay(worker, *args)
        assert run.returncode == 2 and option in run.stderr, run.stderr
    run = replay(worker, "--sink", "etcd", "--from", "0")
    assert run.returncode == 2 and "not enabled" in run.stderr


async def wait_for_lines(worker: WorkerHarness, count: int, timeout: float = 60) -> list[dict[str, Any]]:
    return await wait_for(lambda: docs if len(docs := worker.sink_documents()) >= count else None,
                          timeout=timeout, what=f"{count} lines in the file sink",
                          last_seen=lambda: len(worker.sink_documents()))


BATCHES = 16  # 10 traces each: partition 0 of the sink topic gets a record from every one (16 > 8)


async def test_file_replay_never_starts_after_where_the_data_ends(
        make_worker: Callable[..., WorkerHarness], tmp_path: Path) -> None:
    """Backfilling a new directory in two steps with a hole between them: the second replay starts
    where the first one's data ends instead, so the new directory matches the drain's, line for line."""
    worker = await make_worker({"LOGWEAVE_PARSE__LINGER": "0s"}).start()  # no merging: a record per chunk
    for batch in range(BATCHES):  # many small chunks, each delivered before the next is fed: a record each
        # on every sink-topic partition its traces reach (fed at once, a busy worker takes many together)
        await worker.feed([{"traceId": f"t{batch}-{i}", "n": batch * 10 + i} for i in range(10)])
        await wait_for_lines(worker, (batch + 1) * 10)
    backfill = {"LOGWEAVE_SINKS__FILE__DIRECTORY": str(tmp_path / "backfill")}
    first = replay(worker, "--sink", "file", "--from", "0", "--to", "3", "--partitions", "0", env=backfill)
    assert first.returncode == 0, first.stderr
    second = replay(worker, "--sink", "file", "--from", "8", "--partitions", "0", env=backfill)
    assert second.returncode == 0, second.stderr
    assert "data ends at offset 2; replaying from there instead of 8" in second.stdout + second.stderr
    def lines(directory: Path) -> list[bytes]:
        return [line for segment in sorted(directory.glob("sink.file-0/*.ndjson"))
                for line in segment.read_bytes().splitlines()]
    drained, backfilled = lines(worker.workdir / "out"), lines(tmp_path / "backfill")
    assert len(drained) > 30 and sorted(backfilled) == sorted(drained)


async def test_dead_letters_replayed_after_a_fix_are_delivered_once(
        make_worker: Callable[..., WorkerHarness]) -> None:
    worker = await make_worker().start()
    await worker.feed([{"traceId": "ok", "n": 0}] + [{"n": i} for i in range(1, 51)])  # 50 lack a trace id
    await wait_for_lines(worker, 1)
    worker.stop()
    worker.overrides["LOGWEAVE_PARSE__UNTRACED"] = "pass"  # the fix: keep untraced lines
    await worker.start()
    for _ in range(2):  # the second replay of the same range is dropped as a duplicate
        run = replay(worker, "--deadletters", "--from", "earliest")
        assert run.returncode == 0, run.stderr
        assert "50 dead-lettered lines re-published" in run.stdout
    await wait_for_lines(worker, 51)
    await worker.wait_until_quiet()  # a duplicate in flight would land before this returns
    assert sorted(d["n"] for d in worker.sink_documents()) == list(range(51))
