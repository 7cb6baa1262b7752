"""Pushed logs through the whole pipeline: `logweave intake` -> broker -> `faust -A app worker` -> file sink.

A request retried with the same Idempotency-Key (as a client does after a lost answer) is delivered
once by the worker's per-stream dedupe; the same body sent twice without a key is two requests and
is delivered twice, which shows the check can fail. One partition keeps every record in order, so once
the last request's line is in the sink, everything sent before it has been processed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from commands.broker import EmbeddedBroker, free_port
from tests.support.polling import wait_for
from tests.support.processes import intake, wait_http_ok
from tests.support.worker_harness import WorkerHarness


def lines(tag: str, count: int) -> list[dict[str, Any]]:
    return [{"traceId": f"{tag}-trace-{i % 4}", "time": f"2026-12-02T10:00:{i % 60:02d}.25Z",
             "level": "info", "msg": f"{tag}-{i}"} for i in range(count)]


@pytest.mark.timeout(180)
async def test_pushed_lines_reach_the_file_sink_and_a_keyed_retry_arrives_once(
        broker: EmbeddedBroker, make_worker: Callable[..., WorkerHarness], tmp_path: Path) -> None:
    worker = await make_worker({"LOGWEAVE_KAFKA__PARTITIONS": "1"}).start()
    http_port = free_port()
    env = {"LOGWEAVE_KAFKA__BROKERS": broker.bootstrap, "LOGWEAVE_KAFKA__PARTITIONS": "1",
           "LOGWEAVE_INTAKE__HTTP_PORT": str(http_port),
           "LOGWEAVE_INTAKE__FORWARD_PORT": "0", "LOGWEAVE_INTAKE__OTLP_GRPC_PORT": "0",
           "LOGWEAVE_INTAKE__OTLP_HTTP_PORT": "0", "LOGWEAVE_INTAKE__SYSLOG_PORT": "0"}
    process = intake(tmp_path, env).start()
    url = f"http://127.0.0.1:{http_port}"
    try:
        wait_http_ok(url + "/readyz", 30, process)
        async with aiohttp.ClientSession() as session:
            for body, key in ((lines("keyed", 50), "req-1"), (lines("keyed", 50), "req-1"),
                              (lines("unkeyed", 10), None), (lines("unkeyed", 10), None),
                              (lines("last", 1), None)):
                headers = {"Idempotency-Key": key} if key else {}
                async with session.post(url + "/v1/logs", data=orjson.dumps(body), headers=headers) as response:
                    assert response.status == 202, await response.text()
        docs: list[dict[str, Any]] = []

        def delivered() -> bool:
            nonlocal docs
            docs = worker.sink_documents()
            return any(doc["msg"] == "last-0" for doc in docs)

        await wait_for(delivered, timeout=90, what="the last request's line in the file sink",
                       last_seen=lambda: len(docs))
    finally:
        process.stop()
        print(f"--- intake log ---\n{process.log_tail(30)}")
    counts = Counter(str(doc["msg"]) for doc in docs)
    assert {msg: n for msg, n in counts.items() if msg.startswith("keyed")} == {f"keyed-{i}": 1 for i in range(50)}
    assert {msg: n for msg, n in counts.items() if msg.startswith("unkeyed")} == {f"unkeyed-{i}": 2 for i in range(10)}
    meta = docs[0]["logweave"]
    assert meta["source"]["kind"] == "intake" and meta["source"]["tenant"] == "anonymous"
    assert next(d for d in docs if d["msg"] == "keyed-3")["traceId"] == "keyed-trace-3"
