"""The worker's web port as an outsider meets it: a real `faust -A app worker` with tokens and TLS on.

One worker serves every check: it binds 127.0.0.1 by default, serves HTTPS with a trustme certificate
(worker.web_cert_file / web_key_file), demands a bearer token for log content and /metrics, keeps
/healthz and /readyz open, serves none of faust's own /table/, /router/, stats (/assignment/) or /graph/ views, refuses
a 100 KB trace id without a traceback in its log, and never returns the table's `\\x00` bookkeeping keys.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import orjson
import pytest

from commands.broker import EmbeddedBroker, free_port
from core.api_tokens import hash_token
from core.models import RawChunk, make_raw_line
from core.settings import KafkaSettings, load_settings
from core.topics import RAW
from kafka_io.publisher import ChunkPublisher
from kafka_io.topic_admin import prepare_worker_topics
from tests.support.kafka import start_broker
from tests.support.polling import wait_for_sync
from tests.support.processes import ManagedProcess, listening_address, worker
from tests.support.tls import TlsFiles

TOKEN = "s3cr3t-reader-token"


@dataclass
class SecuredWorker:
    process: ManagedProcess
    port: int
    context: ssl.SSLContext

    def get(self, path: str, token: str | None = None) -> tuple[int, bytes, dict[str, str]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        request = urllib.request.Request(f"https://127.0.0.1:{self.port}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.context) as reply:
                return reply.status, reply.read(), dict(reply.headers)
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read(), dict(exc.headers)

    def answers(self, path: str) -> bool:
        try:
            return self.get(path)[0] == 200
        except urllib.error.URLError:  # not listening yet
            return False


async def publish_one(kafka: KafkaSettings, data: bytes) -> None:
    publisher = ChunkPublisher(kafka, RAW, 1 << 20, create_topics=[])
    await publisher.start()
    try:
        line = make_raw_line(0, data, "stdout", time.time_ns())
        await (await publisher.publish(RawChunk({"kind": "file"}, "s1", time.time_ns(), [line])))
    finally:
        await publisher.stop()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredWorker]:
    tmp = tmp_path_factory.mktemp("web")
    broker: EmbeddedBroker = start_broker(tmp / "broker")
    files = TlsFiles.make(tmp / "pki")
    env = {"LOGWEAVE_KAFKA__BROKERS": broker.bootstrap, "LOGWEAVE_WORKER__DATA_DIR": str(tmp / "worker-data"),
           "LOGWEAVE_SINKS__FILE__DIRECTORY": str(tmp / "out"), "LOGWEAVE_SINKS__BATCH_PERIOD": "0.2s",
           "LOGWEAVE_TRACES__GAP": "1h", "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h",
           "LOGWEAVE_AUTH__TOKEN_HASHES": hash_token(TOKEN), "LOGWEAVE_WORKER__METRICS_REQUIRE_TOKEN": "true",
           "LOGWEAVE_WORKER__WEB_CERT_FILE": str(files.server_cert),
           "LOGWEAVE_WORKER__WEB_KEY_FILE": str(files.server_key)}
    settings = load_settings(environ=env)
    kafka = settings.kafka
    asyncio.run(prepare_worker_topics(settings))  # the worker does not create topics
    port = free_port()
    process = worker(tmp, env, port).start()
    served = SecuredWorker(process, port, ssl.create_default_context(cafile=str(files.ca)))
    try:
        wait_for_sync(lambda: not process.alive() or served.answers("/readyz"), timeout=90,
                      what="the worker's /readyz over HTTPS")
        assert process.alive(), process.log_tail()
        asyncio.run(publish_one(kafka, b'{"traceId":"trace-1","msg":"secret payload"}'))
        wait_for_sync(lambda: served.get("/traces/trace-1", TOKEN)[0] == 200, timeout=60,
                      what="trace-1 held in the worker's table")
        yield served
    finally:
        process.stop()
        print(f"--- worker log ---\n{process.log_tail(40)}")
        broker.stop(kill=True)


def test_the_web_port_binds_loopback_by_default(secured: SecuredWorker) -> None:
    assert listening_address(secured.port) == "127.0.0.1"


def test_probes_stay_open(secured: SecuredWorker) -> None:
    assert secured.get("/healthz")[0] == 200 and secured.get("/readyz")[0] == 200


@pytest.mark.parametrize("path", ["/traces/trace-1", "/api/stats", "/metrics"])
def test_content_needs_the_token(secured: SecuredWorker, path: str) -> None:
    status, body, headers = secured.get(path)
    assert status == 401 and headers.get("WWW-Authenticate", "").startswith("Bearer") and b"secret" not in body
    status, body, _ = secured.get(path, token="not-the-token")
    assert status == 403 and b"secret payload" not in body
    status, body, _ = secured.get(path, token=TOKEN)
    assert status == 200
    if path.startswith("/traces/"):
        assert b"secret payload" in body


@pytest.mark.parametrize("path", ["/table/traces/trace-1/", "/router/", "/assignment/", "/graph/", "/table/"])
def test_fausts_own_views_are_not_served(secured: SecuredWorker, path: str) -> None:
    assert secured.get(path, token=TOKEN)[0] == 404
    assert secured.get(path)[0] == 404


def test_a_100_kb_trace_id_is_refused_without_a_traceback(secured: SecuredWorker) -> None:
    try:
        status, _, _ = secured.get("/traces/" + "a" * 100_000, token=TOKEN)
    except urllib.error.URLError:  # the worker answered 400 and closed while the client still sent
        status = 400
    assert status in (400, 414)
    status, body, _ = secured.get("/traces/" + "a" * 2_000, token=TOKEN)  # within HTTP limits, over ours
    assert status == 400 and b"at most" in body
    assert secured.get("/healthz")[0] == 200
    assert "Traceback" not in secured.process.log_tail(400)


@pytest.mark.parametrize("key", ["%00clock", "%00held", "%00batch", "%00closed_upto", "__faust%00offset__"])
def test_bookkeeping_keys_are_not_readable(secured: SecuredWorker, key: str) -> None:
    status, body, _ = secured.get(f"/traces/{key}", token=TOKEN)
    assert status == 400 and orjson.loads(body) == {"error": "a trace id holds no control characters"}
