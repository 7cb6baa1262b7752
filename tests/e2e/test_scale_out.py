"""Scale-out: three `faust -A app worker` processes share six partitions under steady load; one is
killed with SIGKILL and a replacement starts (the same static member id, as a StatefulSet pod comes
back, but an empty data directory, as on a new node, so its tables are recovered from the changelog).
Every line reaches the shared file sink exactly once, every trace closes exactly once, and the time
until the group is processing again is printed.

The replacement reuses the killed member's instance id because the embedded broker (noida-db) never
drops a SIGKILLed member (docs/testing.md); on Kafka a replacement under a new id is assigned after the
session timeout instead.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import orjson

from commands.broker import EmbeddedBroker
from tests.support.polling import wait_for
from tests.support.worker_harness import WorkerHarness

PARTITIONS = 6
RATE_CHUNKS_PER_S = 20
LINES_PER_CHUNK = 50
LINES_PER_TRACE = 5
SPAN = LINES_PER_CHUNK * LINES_PER_TRACE  # a trace's lines are spread over 5 consecutive chunks


def trace_of(n: int) -> str:
    return f"t{(n // SPAN) * LINES_PER_CHUNK + n % LINES_PER_CHUNK}"


class SinkWatcher:
    """Reads the shared file sink as it grows: when each line was first seen, and in which partition."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.read_to: dict[Path, int] = {}
        self.seen: Counter[int] = Counter()
        self.first_seen: dict[int, float] = {}
        self.partition_times: dict[str, list[float]] = {}

    def poll(self) -> None:
        now = time.monotonic()
        for segment in sorted(self.directory.glob("*/*.ndjson")):
            data = segment.read_bytes()
            start, end = self.read_to.get(segment, 0), data.rfind(b"\n") + 1
            if end <= start:
                continue
            self.read_to[segment] = end
            for line in data[start:end].splitlines():
                n = orjson.loads(line)["n"]
                self.seen[n] += 1
                self.first_seen.setdefault(n, now)
            self.partition_times.setdefault(segment.parent.name, []).append(now)

    def longest_gap(self, since: float, until: float) -> tuple[str, float]:
        """The partition whose deliveries stopped longest between `since` and `until`, and for how long."""
        worst = ("", 0.0)
        for partition, times in self.partition_times.items():
            marks = [since, *[t for t in times if since < t < until], until]
            gap = max(b - a for a, b in zip(marks, marks[1:], strict=False))
            worst = max(worst, (partition, gap), key=lambda item: item[1])
        return worst


async def test_three_workers_one_killed_and_replaced_lose_and_duplicate_nothing(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    shared_out = tmp_path / "out"

    def member(index: int, generation: int = 0) -> WorkerHarness:
        overrides = {
            "LOGWEAVE_KAFKA__PARTITIONS": str(PARTITIONS),
            "LOGWEAVE_KAFKA__GROUP_INSTANCE_ID": f"worker-{index}",
            "LOGWEAVE_SINKS__FILE__DIRECTORY": str(shared_out),
            "LOGWEAVE_TRACES__GAP": "15s",  # longer than the failover: a trace stalled by it still closes once
            "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h",
            "LOGWEAVE_WORKER__STANDBY_REPLICAS": "1",
        }
        return WorkerHarness(broker, tmp_path / f"worker-{index}-{generation}", overrides)

    workers = [member(i) for i in range(3)]
    harnesses: list[WorkerHarness] = list(workers)
    try:
        for worker in workers:  # started together: one group join, not three rebalances in a row
            (tmp_path / worker.workdir.name).mkdir()
            await worker.launch()
        for worker in workers:
            await worker.ready(timeout=180)
        feeder, watcher = workers[0], SinkWatcher(shared_out)
        total_chunks = 20 * RATE_CHUNKS_PER_S  # 20 s of 1,000 lines/s
        events: dict[str, float] = {}
        progress = {"chunks": 0}

        async def feed() -> None:
            started = time.monotonic()
            for chunk in range(total_chunks):
                first = chunk * LINES_PER_CHUNK
                now_ns = time.time_ns()
                docs = [{"traceId": trace_of(n), "time_ns": now_ns, "n": n, "msg": f"line {n}"}
                        for n in range(first, first + LINES_PER_CHUNK)]
                await feeder.feed(docs, stream=f"s{chunk % 12}")
                progress["chunks"] = chunk + 1
                await asyncio.sleep(max(0.0, started + (chunk + 1) / RATE_CHUNKS_PER_S - time.monotonic()))
            events["fed"] = time.monotonic()

        async def kill_and_replace() -> WorkerHarness:
            await wait_for(lambda: progress["chunks"] >= total_chunks // 3, timeout=120,
                           what="a third of the load fed before the kill")
            events["kill"] = time.monotonic()
            workers[1].stop(kill=True)
            await asyncio.sleep(1)  # the pod's restart delay: the replacement is a new process, later
            replacement = member(1, generation=1)
            harnesses.append(replacement)
            (tmp_path / replacement.workdir.name).mkdir()
            events["replacement_started"] = time.monotonic()
            await replacement.start()
            events["replacement_ready"] = time.monotonic()
            return replacement

        async def watch(until: asyncio.Future[None]) -> None:
            while not until.done():
                watcher.poll()
                await asyncio.sleep(0.2)

        fed = asyncio.ensure_future(feed())
        watching = asyncio.ensure_future(watch(fed))
        replacement = await kill_and_replace()
        await fed
        await watching
        expected = total_chunks * LINES_PER_CHUNK

        def all_seen() -> bool:
            watcher.poll()
            return len(watcher.seen) >= expected

        await wait_for(all_seen, timeout=120, interval=0.5, what=f"{expected} lines in the shared sink",
                       last_seen=lambda: len(watcher.seen))
        await replacement.wait_until_quiet()  # a duplicate in flight lands before this returns
        watcher.poll()

        missing = expected - len(watcher.seen)
        duplicated = sum(1 for count in watcher.seen.values() if count > 1)
        partition, stall = watcher.longest_gap(events["kill"], events["fed"])
        print(f"\nscale-out: {expected} lines over 3 workers x {PARTITIONS} partitions; worker-1 killed, "
              f"replacement started {events['replacement_started'] - events['kill']:.1f} s later and ready in "
              f"{events['replacement_ready'] - events['replacement_started']:.1f} s; the group was processing "
              f"again {stall:.1f} s after the kill (longest delivery gap, {partition})")
        assert missing == 0, f"{missing} lines lost"
        assert duplicated == 0, f"{duplicated} lines written twice"

        traces = {trace_of(n) for n in range(expected)}

        async def every_trace_closed() -> bool:
            return {s["trace"] for s in await replacement.closed_traces()} >= traces

        await wait_for(every_trace_closed, timeout=120, interval=1.0, what=f"{len(traces)} traces closed")
        await replacement.wait_until_quiet()
        summaries = await replacement.closed_traces()
        closed = Counter(s["trace"] for s in summaries)
        debug = [s for s in summaries if closed[s["trace"]] > 1][:4]
        counts = {s["trace"]: s["count"] for s in summaries}
        assert set(closed) == traces, f"{len(traces - set(closed))} traces never closed"
        assert max(closed.values()) == 1, f"closed twice: {debug}"
        assert set(counts.values()) == {LINES_PER_TRACE}
    finally:  # a failed assertion must not leave worker processes running
        for worker in harnesses:
            await worker.close()
