"""Rules reloaded on a running worker under steady load: no line lost or duplicated, the switch at a chunk
boundary, a bad version refused, and the version the worker runs reported on /metrics and /api/stats.

Before each publish the test waits for the chunks fed so far to be delivered, and after it for the
worker to report the version, so which version each chunk must carry is known exactly."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson

from core.rules import RulesDocument
from core.settings import load_settings
from kafka_io.rules_topic import publish_rules
from tests.support.polling import wait_for
from tests.support.worker_harness import WorkerHarness


def tagged(version: str) -> bytes:
    return RulesDocument(version=version, routing={"rules": [
        {"name": "all", "sinks": ["file"], "transforms": {"add": {"rules": version}}}]}).encode()


async def test_reload_under_load_loses_nothing_and_switches_between_chunks(
        make_worker: Callable[..., WorkerHarness]) -> None:
    worker = await make_worker().start()
    settings = load_settings(environ=worker.env)
    chunk, chunks = 50, 60
    for index in range(chunks):
        if index in (15, 35):  # the chunks before are delivered, then the worker reports the new version
            await wait_for(lambda n=index: len(worker.sink_documents()) >= n * chunk, timeout=60,
                           what=f"the first {index} chunks delivered")
            version = "v1" if index == 15 else "v2"
            await publish_rules(settings, tagged(version))
            await wait_for(lambda v=version: f'logweave_rules_version_info{{version="{v}"}} 1.0'
                           in worker.get("/metrics")[1].decode(), timeout=30, what=f"the worker running {version}")
        if index == 25:
            await publish_rules(settings, b'{"v":1,"version":"broken","rules":{"routing":{"rules":[{"name":"x"}]}}}')
        await worker.feed([{"traceId": f"t{n % 97}", "n": n, "c": index} for n in range(index * chunk,
                                                                                        (index + 1) * chunk)],
                          stream=f"s{index % 3}")
        await asyncio.sleep(0.02)  # steady load over about two seconds
    total = chunk * chunks
    docs = await wait_for(lambda: (lambda d: d if len(d) >= total else None)(worker.sink_documents()),
                          timeout=90, what=f"{total} documents in the file sink",
                          last_seen=lambda: len(worker.sink_documents()))
    assert sorted(d["n"] for d in docs) == list(range(total)), "a line was lost or duplicated"
    by_chunk: dict[int, set[str]] = defaultdict(set)
    for d in docs:
        by_chunk[d["c"]].add(d.get("rules", "startup"))
    assert all(len(versions) == 1 for versions in by_chunk.values()), "a chunk was routed by two versions"
    order = [next(iter(by_chunk[i])) for i in range(chunks)]
    assert order == ["startup"] * 15 + ["v1"] * 20 + ["v2"] * 25, f"versions out of order: {order}"
    metrics = worker.get("/metrics")[1].decode()
    assert 'logweave_rules_version_info{version="v2"} 1.0' in metrics
    refused = [line for line in metrics.splitlines() if line.startswith("logweave_rules_refused_total ")]
    assert refused and float(refused[0].split()[1]) >= 1
    stats: dict[str, Any] = orjson.loads(worker.get("/api/stats")[1])
    assert list(stats["totals"]["rules"]["version"]) == ["v2"]


async def test_a_restarted_worker_reads_the_published_rules_before_its_backlog(
        make_worker: Callable[..., WorkerHarness]) -> None:
    """Chunks collected while the worker was down, after a version took effect, are parsed and routed by
    that version when it comes back: its stages wait for the rules topic to be read (agents/live_rules.py).
    They used to take the backlog by the worker's own settings while the follower caught up: these logfmt
    lines, which only v1 parses, were dead-lettered as untraced, and v1 was counted late."""
    worker = await make_worker().start()
    settings = load_settings(environ=worker.env)
    v1 = RulesDocument(version="v1", parse={"parsers": [{"name": "kv", "type": "logfmt"}],
                                            "sources": [{"parsers": ["kv"]}]},
                       routing={"rules": [{"name": "all", "sinks": ["file"],
                                           "transforms": {"add": {"rules": "v1"}}}]})
    await publish_rules(settings, v1.encode(time.time_ns()))
    await wait_for(lambda: 'logweave_rules_version_info{version="v1"} 1.0' in worker.get("/metrics")[1].decode(),
                   timeout=30, what="the worker running v1")
    worker.stop()
    chunk, chunks = 20, 30
    for index in range(chunks):  # the backlog: collected after v1's effective point
        await worker.feed([f"traceId=t{n % 31} n={n} msg=hello".encode() for n in range(index * chunk,
                                                                                      (index + 1) * chunk)],
                          stream=f"s{index % 4}")
    await worker.start()
    total = chunk * chunks
    docs = await wait_for(lambda: (lambda d: d if len(d) >= total else None)(worker.sink_documents()),
                          timeout=60, what=f"{total} documents in the file sink",
                          last_seen=lambda: len(worker.sink_documents()))
    assert sorted(int(d["n"]) for d in docs) == list(range(total)), "a line was lost or duplicated"
    by_version: dict[str, int] = defaultdict(int)
    for d in docs:
        by_version[d.get("rules", "startup")] += 1
    assert dict(by_version) == {"v1": total}, f"backlog routed by {dict(by_version)}"
    metrics = worker.get("/metrics")[1].decode()
    late = [line for line in metrics.splitlines() if line.startswith("logweave_rules_late_total ")]
    assert late and float(late[0].split()[1]) == 0, late
