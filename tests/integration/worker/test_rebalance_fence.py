"""A rebalance while trace-table updates wait for their persist: the old owner drops them unacked, its
revoke completes, and every trace is still counted once per line.

A worker is fed traces whose lines span several chunks, with a persist interval longer than the
feed's pauses, so updates always wait; a second worker then joins while the feed goes on. The first
worker's revoke fences its table (tables/trace_table.py): what was not persisted is dropped and read
again by whoever owns each partition next. A revoke that lands just after one of the first worker's
persists, before it grouped anything new, finds nothing waiting: then a third worker joins, and a
fourth, each join another revoke, until one drops updates (the feed lasts until then, so a worker slow
to start on a loaded machine still joins while updates wait). Real `faust -A app worker` processes on
the embedded broker; nothing is mocked.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections import Counter
from pathlib import Path

import orjson

from commands.broker import EmbeddedBroker
from tests.support.polling import wait_for
from tests.support.worker_harness import FENCE_LINE, WorkerHarness, dropped_unpersisted, join_until_a_revoke_drops

PARTITIONS = 4
LINES_PER_CHUNK = 20
LINES_PER_TRACE = 4  # each trace's lines are spread over 4 consecutive chunks
CHUNKS_BEFORE_THE_FIRST_JOIN = 60
MAX_CHUNKS = 4800  # four minutes of feeding: far more than three joins take on a loaded machine
CHUNKS_PER_S = 20


def trace_of(n: int) -> str:
    return f"t{(n // (LINES_PER_CHUNK * LINES_PER_TRACE)) * LINES_PER_CHUNK + n % LINES_PER_CHUNK}"


async def test_a_rebalance_drops_unpersisted_updates_and_every_trace_still_counts_each_line_once(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    shared_out = tmp_path / "out"

    def member(name: str) -> WorkerHarness:
        (tmp_path / name).mkdir()
        return WorkerHarness(broker, tmp_path / name, {
            "LOGWEAVE_KAFKA__PARTITIONS": str(PARTITIONS),
            "LOGWEAVE_KAFKA__GROUP_INSTANCE_ID": name,
            "LOGWEAVE_SINKS__FILE__DIRECTORY": str(shared_out),
            "LOGWEAVE_WORKER__TABLE_PERSIST_INTERVAL": "4s",  # updates wait: the rebalance finds some
            "LOGWEAVE_WORKER__TABLE_PERSIST_BYTES": "16MiB",
            "LOGWEAVE_TRACES__GAP": "8s",
            "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h",
        })

    members = [member(name) for name in ("first", "second", "third", "fourth")]
    first, *joiners = members
    fed = 0  # chunks fed so far
    settled = asyncio.Event()

    async def feed_until_settled() -> None:
        """One chunk every 1/CHUNKS_PER_S s until the joins are over, ending on a whole trace."""
        nonlocal fed
        begun = time.monotonic()
        while not (settled.is_set() and fed % LINES_PER_TRACE == 0):
            assert fed < MAX_CHUNKS, f"the joins took more than {MAX_CHUNKS // CHUNKS_PER_S} s of feeding"
            base = fed * LINES_PER_CHUNK
            docs = [{"traceId": trace_of(n), "time_ns": time.time_ns(), "n": n}
                    for n in range(base, base + LINES_PER_CHUNK)]
            await first.feed(docs, stream=f"s{fed % 6}")
            fed += 1
            await asyncio.sleep(max(0.0, begun + fed / CHUNKS_PER_S - time.monotonic()))

    first_log = first.workdir / "worker.log"

    def fenced_and_rejoined() -> bool:
        text = first_log.read_text(errors="replace")
        at = text.find(FENCE_LINE)
        return at >= 0 and re.search(r"Joined group .* \(generation \d+\)", text[at:]) is not None

    feeding: asyncio.Task[None] | None = None
    try:
        await first.start()
        feeding = task = asyncio.create_task(feed_until_settled())
        await wait_for(lambda: fed >= CHUNKS_BEFORE_THE_FIRST_JOIN or task.done(), timeout=60,
                       what=f"{CHUNKS_BEFORE_THE_FIRST_JOIN} chunks fed to the first worker alone")
        await join_until_a_revoke_drops(first, joiners)  # each joins while the first holds updates waiting
        settled.set()
        await feeding
        assert dropped_unpersisted(first), \
            f"none of {len(joiners)} joins found an update waiting for its persist: nothing was tested"
        await wait_for(fenced_and_rejoined, timeout=60, interval=0.5,
                       what="the first worker to rejoin the group after dropping unpersisted updates")
        expected = fed * LINES_PER_CHUNK

        def delivered() -> Counter[int]:
            seen: Counter[int] = Counter()
            for segment in shared_out.glob("*/*.ndjson"):
                for line in segment.read_bytes().splitlines():
                    seen[orjson.loads(line)["n"]] += 1
            return seen

        await wait_for(lambda: len(delivered()) >= expected, timeout=120, interval=0.5,
                       what=f"{expected} lines in the shared sink")
        await first.wait_until_quiet()
        seen = delivered()
        assert len(seen) == expected and max(seen.values()) == 1, "a line lost or written twice"

        traces = {trace_of(n) for n in range(expected)}

        async def all_closed() -> bool:
            return {s["trace"] for s in await first.closed_traces()} >= traces

        await wait_for(all_closed, timeout=120, interval=1.0, what=f"{len(traces)} traces closed")
        summaries = await first.closed_traces()
        closed = Counter(s["trace"] for s in summaries)
        assert max(closed.values()) == 1, "a trace closed twice"
        counts = Counter(s["count"] for s in summaries)
        assert counts == {LINES_PER_TRACE: len(traces)}, f"summaries by line count: {dict(counts)}"
    finally:
        if feeding is not None and not feeding.done():
            feeding.cancel()
        for worker in members:
            await worker.close()
