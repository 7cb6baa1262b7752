"""Pushed logs through the whole pipeline: a real `logweave intake` process, a real broker and a real
`faust -A app worker`, into the file sink, with every protocol's real client: HTTP (aiohttp), Fluent
forward (Python fluent-logger, and npm fluent-logger with chunk acks), OTLP (the OpenTelemetry SDK's
gRPC and HTTP exporters) and syslog (logger(1) over TCP and UDP).

A request retried with the same Idempotency-Key (as a client does after a lost answer) is delivered
once by the worker's per-stream dedupe; the same body sent twice without a key is two requests and
is delivered twice, which shows the check can fail. One partition keeps every record in order, so
once a request sent after everything else is in the sink, everything before it has been processed.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from fluent import sender

from commands.broker import EmbeddedBroker, free_port
from tests.support.fluent_clients import node_forward_send
from tests.support.otlp_clients import emit_logs
from tests.support.polling import wait_for
from tests.support.processes import intake, wait_http_ok_in_thread
from tests.support.syslog_senders import logger_send
from tests.support.worker_harness import WorkerHarness


def lines(tag: str, count: int) -> list[dict[str, Any]]:
    return [{"traceId": f"{tag}-trace-{i % 4}", "time": f"2026-12-02T10:00:{i % 60:02d}.25Z",
             "level": "info", "msg": f"{tag}-{i}"} for i in range(count)]


def message_of(doc: dict[str, Any]) -> str:
    return str(doc.get("msg", doc.get("body")))


@pytest.mark.timeout(240)
@pytest.mark.filterwarnings("ignore:`LoggingHandler` in `opentelemetry-sdk` is deprecated:DeprecationWarning")
async def test_every_protocol_reaches_the_file_sink_once_and_a_keyed_retry_arrives_once(
        broker: EmbeddedBroker, make_worker: Callable[..., WorkerHarness], tmp_path: Path) -> None:
    worker = await make_worker({"LOGWEAVE_KAFKA__PARTITIONS": "1"}).start()
    ports = {name: free_port() for name in ("HTTP", "FORWARD", "OTLP_GRPC", "OTLP_HTTP", "SYSLOG")}
    env = {"LOGWEAVE_KAFKA__BROKERS": broker.bootstrap, "LOGWEAVE_KAFKA__PARTITIONS": "1",
           "LOGWEAVE_INTAKE__FORWARD_LINGER": "0.05", "LOGWEAVE_INTAKE__SYSLOG_LINGER": "0.05",
           **{f"LOGWEAVE_INTAKE__{name}_PORT": str(port) for name, port in ports.items()}}
    process = intake(tmp_path, env).start()
    url = f"http://127.0.0.1:{ports['HTTP']}"
    expected: Counter[str] = Counter()
    try:
        await wait_http_ok_in_thread(url + "/readyz", 30, process)

        async def post(body: list[dict[str, Any]], key: str | None) -> None:
            headers = {"Idempotency-Key": key} if key else {}
            async with aiohttp.ClientSession() as session, \
                    session.post(url + "/v1/logs", data=orjson.dumps(body), headers=headers) as response:
                assert response.status == 202, await response.text()

        for body, key in ((lines("keyed", 50), "req-1"), (lines("keyed", 50), "req-1"),
                          (lines("unkeyed", 10), None), (lines("unkeyed", 10), None)):
            await post(body, key)
        expected.update({f"keyed-{i}": 1 for i in range(50)} | {f"unkeyed-{i}": 2 for i in range(10)})

        def fluent_python() -> None:
            client = sender.FluentSender("py", host="127.0.0.1", port=ports["FORWARD"], nanosecond_precision=True)
            for doc in lines("fluentpy", 5):
                assert client.emit("app", doc)
            client.close()

        await asyncio.to_thread(fluent_python)
        assert (await node_forward_send(ports["FORWARD"], "PackedForward", 5, "fluentnode"))["acked"] == 5
        expected.update({f"fluentpy-{i}": 1 for i in range(5)} | {f"fluentnode-{i}": 1 for i in range(5)})
        for transport, endpoint in (("grpc", f"127.0.0.1:{ports['OTLP_GRPC']}"),
                                    ("http", f"http://127.0.0.1:{ports['OTLP_HTTP']}/v1/logs")):
            await asyncio.to_thread(emit_logs, transport, endpoint, [f"otlp{transport}-{i}" for i in range(3)])
            expected.update({f"otlp{transport}-{i}": 1 for i in range(3)})
        for doc, options in ((lines("syslogtcp", 3), ("--tcp", "--octet-count")), (lines("syslogudp", 1), ("--udp",))):
            for line in doc:
                await logger_send(ports["SYSLOG"], orjson.dumps(line).decode(), "--rfc5424", "-t", "shop", *options)
                expected[str(line["msg"])] = 1

        docs: list[dict[str, Any]] = []

        def delivered(what: set[str]) -> Callable[[], bool]:
            def check() -> bool:
                nonlocal docs
                docs = worker.sink_documents()
                return what <= {message_of(doc) for doc in docs}
            return check

        await wait_for(delivered(set(expected)), timeout=90, what="every pushed line in the file sink",
                       last_seen=lambda: sorted(set(expected) - {message_of(d) for d in docs})[:10])
        await post(lines("last", 1), None)  # after it, every duplicate there could be has been processed
        await wait_for(delivered({"last-0"}), timeout=60, what="the last request's line in the file sink")
    finally:
        process.stop()
        print(f"--- intake log ---\n{process.log_tail(30)}")
    counts = Counter(message_of(doc) for doc in docs)
    del counts["last-0"]
    assert counts == expected
    sources = {message_of(doc): doc["logweave"]["source"] for doc in docs}
    assert {sources[m]["protocol"] for m in ("keyed-0", "fluentpy-0", "fluentnode-0", "otlpgrpc-0", "otlphttp-0",
                                               "syslogtcp-0", "syslogudp-0")} == \
        {"http", "forward", "otlp_grpc", "otlp_http", "syslog"}
    assert all(source["kind"] == "intake" and source["tenant"] == "anonymous" for source in sources.values())
    otlp = next(doc for doc in docs if message_of(doc) == "otlpgrpc-1")
    assert otlp["logweave"]["trace"] == otlp["traceId"] and otlp["service"] == "checkout"
