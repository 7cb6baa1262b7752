"""The parse and group stages take many records at once and linger: a kill -9 mid-batch loses nothing.

The lingers are long here (parse 4 s, group 1 s, commits every 0.3 s) so that records the worker
has read wait in a batch, unsent, while offset commits run: a stage that acked a record before the
outputs made from it were acknowledged would have its offset committed, and after the kill the
restarted worker would never read it again. Records are small (3 lines, many streams), the live shape.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.support.polling import wait_for
from tests.support.worker_harness import WorkerHarness

BASE = 1_749_543_941_000_000_000
STREAMS = 40
LINES_PER_RECORD = 3


def doc(n: int) -> dict[str, Any]:
    seconds, nanos = divmod(BASE + n, 1_000_000_000)
    import datetime as dt

    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"
    return {"time": stamp, "traceId": f"t{n // 7}", "level": "info", "msg": f"m{n}", "n": n}


def metric(worker: WorkerHarness, name: str, stage: str) -> float:
    return worker.metric(name, stage=stage)


async def feed(worker: WorkerHarness, first: int, records: int) -> int:
    """`records` raw records of 3 lines, round-robin over the streams; returns the next line number."""
    n = first
    for record in range(records):
        await worker.feed([doc(i) for i in range(n, n + LINES_PER_RECORD)], stream=f"s{record % STREAMS}")
        n += LINES_PER_RECORD
    return n


async def test_kill_during_lingering_batches_loses_no_line(make_worker: Callable[..., WorkerHarness]) -> None:
    worker = await make_worker({"LOGWEAVE_PARSE__LINGER": "4s", "LOGWEAVE_PARSE__BATCH_RECORDS": "100000",
                                "LOGWEAVE_PARSE__BATCH_LINES": "100000", "LOGWEAVE_WORKER__GROUP_LINGER": "1s",
                                "LOGWEAVE_KAFKA__COMMIT_INTERVAL": "0.3s", "LOGWEAVE_TRACES__GAP": "1h",
                                "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h"}).start()
    n = await feed(worker, 0, 60)
    await wait_for(lambda: len(worker.sink_documents()) >= n, timeout=60, what="the first wave in the sink")
    parsed_before = metric(worker, "logweave_chunks_total", "parse")
    second = await feed(worker, n, 120)
    # every record of the second wave read by parse; its batch lingers (4 s) while commits run
    await wait_for(lambda: metric(worker, "logweave_chunks_total", "parse") >= parsed_before + 120, timeout=30,
                   what="parse to have read the second wave", interval=0.05)
    in_sink = len(worker.sink_documents())
    worker.stop(kill=True)
    assert in_sink < second, "the second wave was through before the kill: nothing was in flight"
    third = await feed(worker, second, 30)  # fed while the worker is down
    await worker.start()
    await wait_for(lambda: len(worker.sink_documents()) >= third, timeout=90, what="every line in the sink",
                   last_seen=lambda: len(worker.sink_documents()))
    numbers = sorted(d["n"] for d in worker.sink_documents())
    assert numbers == list(range(third)), f"lost: {sorted(set(range(third)) - set(numbers))[:20]}"


async def test_the_records_of_one_fetch_are_parsed_and_grouped_in_one_flush(
        make_worker: Callable[..., WorkerHarness]) -> None:
    """faust hands the records of a fetch to a stream one at a time, with a turn of the event loop
    between them, so the stream's queue is empty after each: a stage that flushed whenever its queue
    was empty flushed once per record (agents/fetched_batch.py). Here 40 records wait in logs.raw
    while the worker is down, so its first fetches after the restart bring them all; with the lingers
    long (1 s) and `eager_lines` 1, only "nothing more waits" flushes. Parse then sends at most one
    logs.parsed record per trace partition per fetch (the group stage counts the records it reads),
    where one flush per input record made one or two per input record (30 in a run without the
    tracker). Each stage flushes a few times at most (`logweave_stage_flushes_total`; 1 and 1 in
    a run), where it flushed once per record it read."""
    worker = await make_worker({"LOGWEAVE_PARSE__LINGER": "1s", "LOGWEAVE_PARSE__EAGER_LINES": "1",
                                "LOGWEAVE_WORKER__GROUP_LINGER": "1s"}).start()
    n = await feed(worker, 0, 1)
    await wait_for(lambda: len(worker.sink_documents()) >= n, timeout=60, what="the first record in the sink")
    worker.stop()
    records = 40
    n = await feed(worker, n, records)
    await worker.start()
    await wait_for(lambda: len(worker.sink_documents()) >= n, timeout=90, what="every line in the sink",
                   last_seen=lambda: len(worker.sink_documents()))
    assert metric(worker, "logweave_chunks_total", "parse") == records
    partitions = worker.settings.kafka.partitions
    parsed_records = metric(worker, "logweave_chunks_total", "group")
    assert 0 < parsed_records <= 2 * partitions, (
        f"{parsed_records:.0f} logs.parsed records for {records} logs.raw records: parse flushed per record")
    flushes = {stage: metric(worker, "logweave_stage_flushes_total", stage) for stage in ("parse", "group")}
    # group: one flush per fetch of parse's output; a fetch may land while a produce request's
    # partitions are being appended, so up to two per parse flush
    assert 0 < flushes["parse"] <= 2 and 0 < flushes["group"] <= 2 * flushes["parse"], (
        f"flushes {flushes} for {records} logs.raw and {parsed_records:.0f} logs.parsed records")
