"""Grouping on a real worker and broker: many interleaved traces, restarts, late lines, trace routing.

Tests that check what a trace holds close it by stream time (`advance_stream_time`) under a gap of an
hour, so no pause of a loaded machine can close a trace before all its lines are in: the idle gap
is tested on its own (tests/integration/worker/test_lagging_worker.py).
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from typing import Any

from tests.support.polling import wait_for
from tests.support.worker_harness import WorkerHarness

BASE = 1_749_543_941_000_000_000
HOUR = 3600 * 1_000_000_000


def doc(trace: str, ts_ns: int, n: int, level: str = "info") -> dict[str, Any]:
    seconds, nanos = divmod(ts_ns, 1_000_000_000)
    import datetime as dt

    stamp = dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"
    return {"time": stamp, "traceId": trace, "level": level, "msg": f"m{n}", "n": n}


NO_IDLE_CLOSE = {"LOGWEAVE_TRACES__GAP": "1h", "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h"}
CLOCK_TRACES = [f"clock-{i}" for i in range(32)]  # their crc32 covers every partition of logs.parsed


async def advance_stream_time(worker: WorkerHarness, to_ns: int) -> None:
    """Move every partition's stream time to `to_ns`: traces whose last line is more than gap plus
    lateness before it close (the clock traces themselves stay open)."""
    await worker.feed([doc(trace, to_ns, -1) for trace in CLOCK_TRACES], stream="clock")


def without_clock(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["traceId"] not in CLOCK_TRACES]


async def closed_by_trace(worker: WorkerHarness) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for summary in await worker.closed_traces():
        out.setdefault(summary["trace"], []).append(summary)
    return out


async def test_ten_thousand_interleaved_traces_across_partitions(make_worker: Callable[..., WorkerHarness]) -> None:
    worker = await make_worker(NO_IDLE_CLOSE).start()
    rng = random.Random(3)
    traces = [f"t{i:05d}" for i in range(10_000)]
    events = [(trace, k) for trace in traces for k in range(rng.randint(1, 4))]
    rng.shuffle(events)
    truth: dict[str, list[int]] = {}
    streams = [f"s{i}" for i in range(8)]
    for start in range(0, len(events), 1000):
        per_stream: dict[str, list[dict[str, Any]]] = {}
        for n, (trace, _) in enumerate(events[start:start + 1000], start):
            ts = BASE + n * 1_000_003
            truth.setdefault(trace, []).append(ts)
            per_stream.setdefault(streams[n % len(streams)], []).append(doc(trace, ts, n))
        for stream, docs in per_stream.items():
            await worker.feed(docs, stream=stream)
    await wait_for(lambda: len(worker.sink_documents()) >= len(events), timeout=120, what="every line in the sink")
    await advance_stream_time(worker, BASE + 3 * HOUR)
    closed = await wait_for(lambda: _all_closed(worker, len(traces)), timeout=120, what="every trace to close")
    assert all(len(v) == 1 for v in closed.values()), "a trace was closed twice"
    for trace, times in truth.items():
        (summary,) = closed[trace]
        assert summary["count"] == len(times)
        assert (summary["first"], summary["last"]) == (min(times), max(times))
    docs = without_clock(worker.sink_documents())
    assert len(docs) == len(events) and len({d["n"] for d in docs}) == len(events)


async def _all_closed(worker: WorkerHarness, expected: int) -> dict[str, list[dict[str, Any]]] | None:
    closed = await closed_by_trace(worker)
    return closed if len(closed) >= expected else None


async def test_worker_killed_mid_trace_loses_nothing_and_closes_once(
        make_worker: Callable[..., WorkerHarness]) -> None:
    worker = await make_worker(NO_IDLE_CLOSE).start()
    await worker.feed([doc(f"r{i}", BASE + i, i) for i in range(200)], stream="a")
    await wait_for(lambda: len(worker.sink_documents()) >= 200, timeout=30, what="first half in the sink")
    worker.stop(kill=True)
    await worker.feed([doc(f"r{i}", BASE + 10_000 + i, 200 + i, "error") for i in range(200)], stream="a")
    # a collector re-sending its in-flight window after a crash: same stream, same positions
    await worker.feed([doc(f"r{i}", BASE + 10_000 + i, 200 + i, "error") for i in range(100)], stream="a",
                      resend_from=200)
    await worker.start()
    await wait_for(lambda: len(worker.sink_documents()) >= 400, timeout=60, what="every line in the sink")
    await advance_stream_time(worker, BASE + 3 * HOUR)
    closed = await wait_for(lambda: _all_closed(worker, 200), timeout=60, what="every trace to close after the restart")
    assert all(len(v) == 1 for v in closed.values()), "a trace was closed twice"
    assert all(v[0]["count"] == 2 and v[0]["level"] == "error" for v in closed.values())
    docs = without_clock(worker.sink_documents())
    assert sorted(d["n"] for d in docs) == list(range(400))


async def test_late_lines_inside_and_beyond_allowed_lateness(make_worker: Callable[..., WorkerHarness]) -> None:
    worker = await make_worker({"LOGWEAVE_TRACES__GAP": "10s", "LOGWEAVE_TRACES__ALLOWED_LATENESS": "5s"}).start()
    second = 1_000_000_000
    await worker.feed([doc("late-ok", BASE, 0), doc("late-beyond", BASE, 1)], stream="a")
    # event clocks are per partition (like Kafka Streams' stream time): move every partition's clock
    # 12 s on; late-beyond's event deadline (BASE+10s) is not yet past clock - lateness
    await worker.feed([doc(f"clock-{i}", BASE + 12 * second, 2) for i in range(32)], stream="b")
    await worker.feed([doc("late-ok", BASE + 1 * second, 3)], stream="c")  # 11 s late, within gap+lateness
    await worker.wait_until_quiet()  # the late line is applied before the clock moves on
    # the clock moves to +40 s: both traces are now past their event deadline and close
    await worker.feed([doc(f"clock-{i}", BASE + 40 * second, 4) for i in range(32)], stream="b")
    closed = await wait_for(lambda: _has(worker, {"late-ok", "late-beyond"}), timeout=30, what="event-time closes")
    assert closed["late-ok"][0]["count"] == 2 and closed["late-ok"][0]["cause"] == "event_time"
    assert closed["late-beyond"][0]["count"] == 1
    # a line for a closed trace, beyond the lateness: still delivered, opens a new trace instance
    await worker.feed([doc("late-beyond", BASE + 2 * second, 5)], stream="c")
    await wait_for(lambda: len(worker.sink_documents()) == 4 + 64, timeout=30, what="every line delivered")
    reopened = await wait_for(lambda: _count(worker, "late-beyond", 2), timeout=30, what="the late instance to close")
    assert [s["count"] for s in reopened] == [1, 1]
    assert reopened[0]["close_id"] != reopened[1]["close_id"]


async def _has(worker: WorkerHarness, names: set[str]) -> dict[str, list[dict[str, Any]]] | None:
    closed = await closed_by_trace(worker)
    return closed if names <= set(closed) else None


async def _count(worker: WorkerHarness, name: str, count: int) -> list[dict[str, Any]] | None:
    closed = (await closed_by_trace(worker)).get(name, [])
    return closed if len(closed) >= count else None


async def test_whole_trace_routing_selects_only_error_traces(make_worker: Callable[..., WorkerHarness],
                                                             tmp_path: Any) -> None:
    config = tmp_path / "routes.yaml"
    config.write_text("routing:\n  rules:\n    - name: error-traces\n      mode: trace\n      sinks: [file]\n"
                      "      level_at_least: error\n")
    worker = await make_worker({"LOGWEAVE_CONFIG": str(config), "LOGWEAVE_TRACES__GAP": "2s",
                                "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h"}).start()
    docs = []
    for i in range(50):
        for k in range(4):
            docs.append(doc(f"x{i}", BASE + i * 10 + k, i * 4 + k, "error" if (i % 5 == 0 and k == 2) else "info"))
    await worker.feed(docs, stream="a")
    await wait_for(lambda: _all_closed(worker, 50), timeout=60, what="every trace to close")
    await wait_for(lambda: len(worker.sink_documents()) >= 40, timeout=30, what="error traces in the sink")
    await worker.wait_until_quiet()  # then nothing more may arrive
    delivered = worker.sink_documents()
    assert Counter(d["traceId"] for d in delivered) == {f"x{i}": 4 for i in range(0, 50, 5)}


async def test_held_lines_past_the_bound_are_released_loudly_not_dropped(
        make_worker: Callable[..., WorkerHarness], tmp_path: Any) -> None:
    config = tmp_path / "routes.yaml"
    config.write_text("routing:\n  rules:\n    - name: error-traces\n      mode: trace\n      sinks: [file]\n"
                      "      level_at_least: error\n")
    worker = await make_worker({"LOGWEAVE_CONFIG": str(config), "LOGWEAVE_TRACES__GAP": "2s",
                                "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h",
                                "LOGWEAVE_TRACES__MAX_HELD_PER_TRACE": "3"}).start()
    # 3 lines are held, the 4th passes the bound: the held ones and every later line go to the trace
    # rules' sinks at once, unselected (the trace is not an error trace, so selection would drop them)
    await worker.feed([doc("big", BASE + k, k) for k in range(4)], stream="a")
    await worker.feed([doc("big", BASE + k, k) for k in range(4, 7)], stream="a")
    await wait_for(lambda: _all_closed(worker, 1), timeout=30, what="the trace to close")
    await wait_for(lambda: len(worker.sink_documents()) >= 7, timeout=30, what="every line in the sink")
    await worker.wait_until_quiet()
    assert sorted(d["n"] for d in worker.sink_documents()) == list(range(7))
    (summary,) = (await closed_by_trace(worker))["big"]
    assert summary["count"] == 7 and summary["held_overflow"] == 4 and summary["overflow"] == "released"
    _, metrics = worker.get("/metrics")
    assert 'logweave_held_overflow_total{bound="trace",policy="release"} 4.0' in metrics.decode()
    assert worker.process is not None
    warnings = [line for line in worker.process.log_tail(10_000).splitlines() if "traces.max_held_per_trace" in line]
    assert len(warnings) == 1 and "big" in warnings[0] and "WARNING" in warnings[0], warnings


async def test_trace_state_restored_from_the_changelog_alone(make_worker: Callable[..., WorkerHarness]) -> None:
    """A worker whose local RocksDB is lost (new node, no volume) rebuilds open traces from the
    per-chunk changelog records, so counts stay exact and replays are still recognised."""
    import shutil

    worker = await make_worker(NO_IDLE_CLOSE).start()
    await worker.feed([doc(f"c{i % 20}", BASE + i, i) for i in range(100)], stream="a")
    await wait_for(lambda: len(worker.sink_documents()) >= 100, timeout=30, what="the first lines in the sink")
    worker.stop()
    shutil.rmtree(worker.workdir / "worker-data")
    await worker.start()  # recovery from the changelog only
    await worker.feed([doc(f"c{i % 20}", BASE + i, i) for i in range(100)], stream="a", resend_from=0)
    await worker.feed([doc(f"c{i % 20}", BASE + i, i) for i in range(100, 140)], stream="a")
    await wait_for(lambda: len(worker.sink_documents()) >= 140, timeout=60, what="every line in the sink")
    await advance_stream_time(worker, BASE + 3 * HOUR)
    closed = await wait_for(lambda: _all_closed(worker, 20), timeout=60, what="every trace to close")
    assert all(len(v) == 1 and v[0]["count"] == 7 for v in closed.values())
