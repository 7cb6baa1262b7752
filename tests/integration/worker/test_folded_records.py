"""Large logs.parsed records take the group stage's folded path (agents/folded_chunk.py) in a real worker:
every line reaches the sink once, across a kill -9 right after the first record reached the sink (its
trace states and marks may not be stored yet) and a collector re-sending that record, and the trace
summaries count every line once, as on the decoded path.

Records here are 3,000 lines of ~300 bytes: parse re-chunks them by trace partition into records of
~750 lines, past the size from which the group stage reads a record's folds from its bytes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from tests.support.polling import wait_for
from tests.support.worker_harness import WorkerHarness

LINES = 3_000
PER_TRACE = 10


def doc(n: int) -> dict[str, Any]:
    return {"traceId": f"t{n // PER_TRACE}", "level": "error" if n % 50 == 0 else "info", "n": n,
            "msg": f"step {n} of the \"checkout\" flow", "pad": "x" * 220}


async def test_large_records_folded_reach_the_sink_once_across_a_kill_and_their_summaries_count_every_line(
        make_worker: Callable[..., WorkerHarness]) -> None:
    worker = await make_worker({"LOGWEAVE_TRACES__GAP": "2s", "LOGWEAVE_TRACES__CLOSE_CHECK_INTERVAL": "0.5s"}).start()
    await worker.feed([doc(n) for n in range(LINES)], stream="s1")
    await wait_for(lambda: len(worker.sink_documents()) >= LINES, timeout=60, what="every line in the sink",
                   last_seen=lambda: len(worker.sink_documents()))
    assert worker.metric("logweave_group_records_folded_total") > 0, "no logs.parsed record took the folded path"
    worker.stop(kill=True)
    await worker.start()
    await worker.feed([doc(n) for n in range(LINES)], stream="s1", resend_from=0)  # the collector re-sends it
    await worker.feed([doc(n) for n in range(LINES, LINES + 500)], stream="s1")  # and goes on
    await wait_for(lambda: len(worker.sink_documents()) >= LINES + 500, timeout=60, what="the next lines")
    await worker.wait_until_quiet()
    numbers = Counter(d["n"] for d in worker.sink_documents())
    assert sorted(numbers) == list(range(LINES + 500)) and set(numbers.values()) == {1}, "a line lost or twice"
    summaries: list[dict[str, Any]] = []

    async def all_closed() -> bool:
        summaries[:] = await worker.closed_traces()
        return len(summaries) >= (LINES + 500) // PER_TRACE

    await wait_for(all_closed, timeout=60, what="every trace closed")
    assert sorted(s["count"] for s in summaries) == [PER_TRACE] * ((LINES + 500) // PER_TRACE)
    assert {s["trace"]: s["errors"] for s in summaries}["t0"] == 1
