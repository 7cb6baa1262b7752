"""The trace table persists acked updates on a cadence: a kill -9 mid-cadence loses and doubles nothing.

The persist interval is long here (5 s) and offsets are committed every 0.3 s, so a wave of lines
is in the sink, its table updates (trace states and stream marks) are staged but not yet stored,
and the commit timer runs while the worker is killed. Were an input acked before the persist that
holds its updates, its offset would be committed and the restarted worker would never apply those
lines to their traces (counts short); were the marks stored without the states, or the states
applied twice, the counts would be off the other way.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from tests.integration.worker.test_grouping import (
    BASE,
    HOUR,
    NO_IDLE_CLOSE,
    _all_closed,
    advance_stream_time,
    doc,
    without_clock,
)
from tests.support.polling import wait_for
from tests.support.worker_harness import WorkerHarness

INTERVAL = 5.0
TRACES = 20
WAVE = 100


def wave(k: int) -> list[dict[str, Any]]:
    return [doc(f"c{n % TRACES}", BASE + n, n) for n in range(k * WAVE, (k + 1) * WAVE)]


async def test_kill_mid_persist_cadence_loses_and_doubles_no_line(make_worker: Callable[..., WorkerHarness]) -> None:
    worker = await make_worker({**NO_IDLE_CLOSE, "LOGWEAVE_WORKER__TABLE_PERSIST_INTERVAL": f"{INTERVAL}s",
                                "LOGWEAVE_KAFKA__COMMIT_INTERVAL": "0.3s"}).start()
    await worker.feed(wave(0), stream="a")
    await wait_for(lambda: len(worker.sink_documents()) >= WAVE, timeout=30, what="the first wave in the sink")
    await asyncio.sleep(INTERVAL + 1.5)  # the first wave's updates persisted, its inputs committed
    fed = time.monotonic()
    await worker.feed(wave(1), stream="a")
    await wait_for(lambda: len(worker.sink_documents()) >= 2 * WAVE, timeout=30, what="the second wave in the sink",
                   interval=0.05)
    worker.stop(kill=True)
    # the persist of the second wave's updates starts its interval only once its outputs are acked
    assert time.monotonic() - fed < INTERVAL, "the kill came after the persist: nothing was mid-cadence"
    # a collector re-sending lines the table stored before the crash (replays: dropped), then new lines;
    # the second wave is not re-sent: only the worker's own re-reading of its inputs can apply it again
    await worker.feed(wave(0), stream="a", resend_from=0)
    await worker.feed(wave(2), stream="a")
    await worker.start()
    await wait_for(lambda: len(worker.sink_documents()) >= 3 * WAVE, timeout=90, what="every line in the sink",
                   last_seen=lambda: len(worker.sink_documents()))
    await advance_stream_time(worker, BASE + 3 * HOUR)
    closed = await wait_for(lambda: _all_closed(worker, TRACES), timeout=60, what="every trace to close")
    assert all(len(v) == 1 for v in closed.values()), "a trace was closed twice"
    assert sorted(v[0]["count"] for v in closed.values()) == [3 * WAVE // TRACES] * TRACES
    numbers = sorted(d["n"] for d in without_clock(worker.sink_documents()))
    assert numbers == list(range(3 * WAVE)), f"lost or doubled: {numbers[:10]}..."
