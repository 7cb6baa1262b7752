"""A worker that falls behind closes the same traces as one that keeps up: no split traces.

The idle gap counts only while a partition has no backlog, so lines of a trace still queued in
Kafka behind a stall (GC pause, SIGSTOP, a slow node, a restart) join their trace when they are read.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable

from tests.integration.worker.test_grouping import BASE, _all_closed, doc
from tests.support.polling import wait_for
from tests.support.worker_harness import WorkerHarness

GAP_SECONDS = 2.0
TRACES = [f"lag{i:03d}" for i in range(60)]
FILLER_CHUNKS = 200


async def test_a_stalled_worker_closes_each_trace_once_with_every_line(
        make_worker: Callable[..., WorkerHarness]) -> None:
    # A lateness of 1 h keeps event time from closing anything: only the idle gap is under test.
    worker = await make_worker({"LOGWEAVE_TRACES__GAP": f"{GAP_SECONDS}s",
                                "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h"}).start()
    await worker.feed([doc(trace, BASE + n, n) for n, trace in enumerate(TRACES)], stream="a")
    await wait_for(lambda: len(worker.sink_documents()) >= len(TRACES), timeout=30, what="the first halves in the sink")
    assert worker.process is not None
    os.kill(worker.process.pid, signal.SIGSTOP)
    try:
        second = len(TRACES)
        await worker.feed([doc(trace, BASE + 1_000 + n, second + n) for n, trace in enumerate(TRACES)], stream="a")
        # The scenario itself, not a wait for a result: the worker stays stopped for longer than the
        # gap (and shorter than the 6 s session timeout, so the group does not rebalance meanwhile).
        await asyncio.sleep(GAP_SECONDS + 1.5)
    finally:
        os.kill(worker.process.pid, signal.SIGCONT)
    closed = await wait_for(lambda: _all_closed(worker, len(TRACES)), timeout=60, what="every trace to close")
    await wait_for(lambda: len(worker.sink_documents()) >= 2 * len(TRACES), timeout=30, what="every line in the sink")
    closed = await _all_closed(worker, len(TRACES)) or closed
    split = {trace: [s["count"] for s in summaries] for trace, summaries in closed.items()
             if len(summaries) != 1 or summaries[0]["count"] != 2}
    assert not split, f"traces closed early or split (line counts per summary): {split}"


async def test_a_restarted_worker_reads_the_backlog_before_closing_idle_traces(
        make_worker: Callable[..., WorkerHarness]) -> None:
    worker = await make_worker({"LOGWEAVE_TRACES__GAP": f"{GAP_SECONDS}s",
                                "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h"}).start()
    await worker.feed([doc(trace, BASE + n, n) for n, trace in enumerate(TRACES)], stream="a")
    await wait_for(lambda: len(worker.sink_documents()) >= len(TRACES), timeout=30, what="the first halves in the sink")
    worker.stop(kill=True)  # restarted below under the same member id, as a StatefulSet does
    # A backlog the restarted worker must read first (untraced lines: dead-lettered, never grouped),
    # then the rest of each trace behind it in the same stream.
    for _ in range(FILLER_CHUNKS):
        await worker.feed([b'{"msg":"filler"}'] * 1000, stream="a")
    second = len(TRACES)
    await worker.feed([doc(trace, BASE + 1_000 + n, second + n) for n, trace in enumerate(TRACES)], stream="a")
    # The scenario: the worker stays down for longer than the gap while the rest of each trace waits in Kafka.
    await asyncio.sleep(GAP_SECONDS + 1.0)
    await worker.start()
    closed = await wait_for(lambda: _all_closed(worker, len(TRACES)), timeout=60, what="every trace to close")
    await wait_for(lambda: len(worker.sink_documents()) >= 2 * len(TRACES), timeout=30, what="every line in the sink")
    closed = await _all_closed(worker, len(TRACES)) or closed
    split = {trace: [s["count"] for s in summaries] for trace, summaries in closed.items()
             if len(summaries) != 1 or summaries[0]["count"] != 2}
    assert not split, f"traces closed early or split (line counts per summary): {split}"
