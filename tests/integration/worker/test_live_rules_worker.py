"""Rules reloaded on a running worker under steady load: no line lost or duplicated, the switch at a chunk
boundary, a bad version refused, and the version the worker runs reported on /metrics and /api/stats.

Before each publish the test waits for the chunks fed so far to be delivered, and after it for the
worker to report the version, so which version each chunk must carry is known exactly."""

from __future__ import annotations

import asyncio
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
