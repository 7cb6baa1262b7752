"""Two real workers switch rules versions at the same point: each chunk is parsed and routed by the version
in effect at its collection time, whichever worker takes it and whenever it reads the version.

Both workers hold the versions before the chunks arrive; the chunks are collected on both sides of each
version's effective point and spread over 16 streams, so both workers parse some and each groups half
the traces. A worker that switched "when it read the record" routes every chunk by the newest version
it holds, which this test refuses.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson

from commands.broker import EmbeddedBroker
from core.models import RawChunk, make_raw_line
from core.rules import RulesDocument
from kafka_io.rules_topic import publish_rules
from tests.support.polling import wait_for
from tests.support.worker_harness import WorkerHarness

SECOND = 1_000_000_000


def tagged(version: str) -> RulesDocument:
    return RulesDocument(version=version, routing={"rules": [
        {"name": "all", "sinks": ["file"], "transforms": {"add": {"rules": version}}}]})


def metric(worker: WorkerHarness, prefix: str) -> str:
    return "\n".join(line for line in worker.get("/metrics")[1].decode().splitlines() if line.startswith(prefix))


async def test_two_workers_route_each_chunk_by_the_version_of_its_collection_time(
        broker: EmbeddedBroker, tmp_path: Path) -> None:
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    workers = [WorkerHarness(broker, tmp_path / name, {"LOGWEAVE_WORKER__DATA_DIR": str(tmp_path / name / "data")})
               for name in ("a", "b")]
    try:
        for worker in workers:  # launched together: one group join
            await worker.launch()
        for worker in workers:
            await worker.ready()
        settings = workers[0].settings
        v1_from = time.time_ns() + 2 * SECOND  # in effect two seconds from now
        v2_from = time.time_ns() + 3600 * SECOND  # published, but in effect only in an hour
        await publish_rules(settings, tagged("v1").encode(v1_from))
        await publish_rules(settings, tagged("v2").encode(v2_from))
        await wait_for(lambda: all('logweave_rules_version_info{version="v1"} 1.0' in metric(w, "logweave_rules")
                                   for w in workers), timeout=60, what="both workers reporting v1 in effect",
                       last_seen=lambda: [metric(w, "logweave_rules_version") for w in workers])
        # every chunk now arrives after both workers read both versions: only its collection time decides
        points = {"startup": v1_from - SECOND, "v1": v1_from, "v2": v2_from + SECOND}
        expected: dict[int, str] = {}
        publisher = workers[0].publisher
        assert publisher is not None
        acks, n = [], 0
        now = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())  # one event time: no trace closes meanwhile
        for round_ in range(4):
            for stream in range(16):
                version = list(points)[(round_ + stream) % 3]
                lines = []
                for i in range(10):
                    expected[n] = version
                    doc = {"traceId": f"t{n % 23}", "n": n, "level": "info", "time": now}
                    lines.append(make_raw_line((round_ * 10 + i) * 100, orjson.dumps(doc), "stdout", points[version]))
                    n += 1
                chunk = RawChunk({"kind": "file", "namespace": "ns", "pod": f"pod-{stream}", "container": "app"},
                                 f"s{stream}", points[version], lines)
                acks.append(await publisher.publish(chunk))
        await asyncio.gather(*acks)
        docs = await wait_for(lambda: (lambda d: d if len(d) >= n else None)(
            [d for w in workers for d in w.sink_documents()]), timeout=90, what=f"{n} documents in the file sinks",
            last_seen=lambda: sum(len(w.sink_documents()) for w in workers))
        assert sorted(d["n"] for d in docs) == list(range(n)), "a line was lost or duplicated"
        wrong = {d["n"]: d.get("rules", "startup") for d in docs if d.get("rules", "startup") != expected[d["n"]]}
        assert not wrong, f"lines routed by another version than their chunk's collection time gives: {wrong}"
        parsed = [float(metric(w, 'logweave_lines_total{stage="parse_in"}').split()[-1] or 0) for w in workers]
        assert all(count > 0 for count in parsed), f"one worker parsed nothing, so two were not shown: {parsed}"
        # v2's chunks are collected an hour ahead: they got v2, but what is in effect is still v1
        assert all('logweave_rules_version_info{version="v1"} 1.0' in metric(w, "logweave_rules") for w in workers)
    finally:
        for worker in workers:
            await worker.close()
