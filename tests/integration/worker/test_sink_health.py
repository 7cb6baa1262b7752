"""A sink that cannot be reached does not look healthy: `/readyz` fails while its backlog grows, the
oldest-unwritten age rises, and once the server comes up every line arrives exactly once.

Real worker, real etcd (started late on a port reserved up front), real broker."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from tests.integration.sinks.test_etcd import range_read
from tests.integration.worker.test_grouping import BASE, NO_IDLE_CLOSE, doc
from tests.support.polling import wait_for
from tests.support.servers import etcd_server
from tests.support.worker_harness import WorkerHarness

CHUNKS, LINES_PER_CHUNK = 6, 20


def oldest_unwritten(worker: WorkerHarness) -> float:
    _, metrics = worker.get("/metrics")
    found = re.search(r'^logweave_sink_oldest_unwritten_seconds\{sink="etcd"\} (\S+)$', metrics.decode(), re.M)
    return float(found.group(1)) if found else 0.0


def readiness(worker: WorkerHarness) -> tuple[int, dict[str, object]]:
    status, body = worker.get("/readyz")
    return status, json.loads(body)


async def test_an_unreachable_sink_fails_readiness_then_delivers_everything_once(
        make_worker: Callable[..., WorkerHarness], tmp_path: Path) -> None:
    etcd = etcd_server(tmp_path)  # its port is chosen now; the server starts later
    worker = await make_worker({**NO_IDLE_CLOSE, "LOGWEAVE_SINKS__ETCD__SERVERS": etcd.url,
                                "LOGWEAVE_SINKS__READINESS_BACKLOG": "2",
                                "LOGWEAVE_SINKS__RETRY__MAX_BACKOFF": "1s"}, sinks=("etcd",)).start()
    try:
        for c in range(CHUNKS):
            await worker.feed([doc(f"h{n % 7}", BASE + n, n) for n in range(c * LINES_PER_CHUNK,
                                                                          (c + 1) * LINES_PER_CHUNK)], stream="a")
        _status, body = await wait_for(lambda: (s := readiness(worker))[0] == 503 and s, timeout=30,
                                      what="/readyz to fail", last_seen=lambda: readiness(worker))
        assert any("sink etcd is starting" in reason for reason in body["reasons"]), body  # type: ignore[union-attr]
        _, stats = worker.get("/api/stats")
        health = json.loads(stats)["sink_health"]["etcd"]
        assert health["state"] == "starting" and "no etcd endpoint answered" in health["last_error"]
        assert health["backlog"] > 2
        first = await wait_for(lambda: oldest_unwritten(worker), timeout=30, what="an oldest-unwritten age")
        await wait_for(lambda: oldest_unwritten(worker) > first + 1, timeout=30, what="the age to rise",
                       last_seen=lambda: oldest_unwritten(worker))

        etcd.start()
        total = CHUNKS * LINES_PER_CHUNK
        stored = await wait_for(lambda: (kv := range_read(etcd.url, "/logweave/")) and len(kv) >= total and kv,
                                timeout=60, what="every line in etcd", last_seen=lambda: len(range_read(etcd.url, "/")))
        assert sorted(value["n"] for _, value in stored) == list(range(total))  # each line once
        await wait_for(lambda: readiness(worker)[0] == 200, timeout=30, what="/readyz to pass again",
                       last_seen=lambda: readiness(worker))
        await wait_for(lambda: oldest_unwritten(worker) == 0.0, timeout=30, what="the age back to 0")
        _, stats = worker.get("/api/stats")
        assert json.loads(stats)["sink_health"]["etcd"]["state"] == "ready"
    finally:
        etcd.stop()
