"""The query API over PostgreSQL, beyond the shared backend suite: bearer tokens, the OpenAPI
document, metrics, closed-trace summaries, the statement timeout, the live tail, and the CLI."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

import aiohttp
import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaProducer
from openapi_spec_validator import validate
from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

from commands.local_postgres import LocalPostgres
from core.models import ParsedChunk
from core.settings import load_settings
from kafka_io.topic_admin import ensure_topics
from query.auth import token_hash
from sinks.postgres import PostgresSink
from tests.support.polling import wait_for
from tests.support.postgres import fresh_database
from tests.support.query_stack import BASE_NS, SOURCE_SHOP, Api, Stores, api, serve, stores

__all__ = ["api", "stores"]  # shared fixtures (also used by the web page tests)
WINDOW = {"from": "2025-06-10T08:00:00Z", "to": "2025-06-12T00:00:00Z"}


async def test_tokens_are_checked_by_hash_except_on_health(stores: Stores) -> None:
    settings = stores.settings("postgres", token_hashes=[token_hash("right-token"), token_hash("other")])
    async for served in serve(settings):
        assert (await served.get("/query", **WINDOW))[0] == 401
        served.token = "wrong-token"
        status, body = await served.get("/query", **WINDOW)
        assert status == 403 and "not accepted" in body["error"]
        assert (await served.get("/healthz"))[0] == 200
        served.token = "right-token"
        status, body = await served.get("/query", **WINDOW, limit=3)
        assert status == 200 and body["count"] == 3
        assert (await served.get("/metrics"))[0] == 200


async def test_the_earlier_api_token_setting_still_guards_the_api(stores: Stores) -> None:
    """api.token_hashes is deprecated, not dropped: its digests are read into auth.token_hashes."""
    base = stores.settings("postgres")
    settings = load_settings(environ={}, kafka={"brokers": base.kafka.brokers},
                             sinks={"postgres": {"dsn": base.sinks.postgres.dsn, "retention": 0}},
                             api={"backend": "postgres", "token_hashes": [token_hash("old-style")]})
    async for served in serve(settings):
        assert (await served.get("/query", **WINDOW))[0] == 401
        served.token = "old-style"
        assert (await served.get("/query", **WINDOW, limit=1))[0] == 200


async def test_openapi_document_is_valid_and_the_validator_catches_a_broken_one(api: Api) -> None:
    status, document = await api.get("/openapi.json")
    assert status == 200
    validate(document)
    assert {"/query", "/query/{trace_id}", "/traces", "/tail", "/healthz", "/readyz"} <= set(document["paths"])
    broken = orjson.loads(orjson.dumps(document))
    del broken["paths"]["/query/{trace_id}"]["get"]["parameters"][0]["in"]
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


async def test_metrics_count_requests_by_route_and_status(api: Api) -> None:
    await api.get("/query", level="loud")
    _, text = await api.get("/metrics")
    assert b'logweave_api_requests_total{route="/query",status="400"}' in text
    assert b'logweave_api_request_seconds_bucket{le="0.002",route="/query"}' in text


async def test_closed_trace_summaries_filter_by_service_error_and_duration(api: Api, stores: Stores) -> None:
    sink = PostgresSink.from_settings(stores.settings("postgres"))
    await sink.start()
    try:
        await sink.write_closed_traces([
            summary("tr-1", ["cart", "pay"], errors=1, duration_ms=2500),
            summary("tr-2", ["auth"], errors=0, duration_ms=30),
            summary("tr-3", ["cart"], errors=0, duration_ms=900),
            summary("tr-99", ["auth"], errors=0, duration_ms=5),  # a summary whose lines are not stored
        ])
    finally:
        await sink.stop()
    names = await trace_ids(api, **{**WINDOW, "to": "2025-06-10T09:00:00Z"})
    assert names == ["tr-3", "tr-2", "tr-1"]  # newest first
    assert await trace_ids(api, service="cart", **WINDOW) == ["tr-3", "tr-1"]
    assert await trace_ids(api, has_error="true", **WINDOW) == ["tr-1"]
    assert await trace_ids(api, min_duration="500ms", has_error="false", **WINDOW) == ["tr-3"]
    status, body = await api.get("/traces", has_error="maybe")
    assert (status, body["parameter"]) == (400, "has_error")
    status, body = await api.get("/query/tr-1")
    assert body["closed"] and body["summary"]["services"] == ["cart", "pay"] and body["summary"]["cause"] == "gap"
    assert [line["attributes"]["n"] for line in body["lines"]] == list(range(6, 12))  # lines alone, in time order
    status, body = await api.get("/query/tr-99")
    assert (status, body["lines"], body["closed"], body["summary"]["trace_id"]) == (200, [], True, "tr-99")


def summary(trace: str, services: list[str], errors: int, duration_ms: float) -> dict[str, Any]:
    first = BASE_NS + int(trace.split("-")[1]) * 60 * 10**9
    return {"trace": trace, "first": first, "last": first + int(duration_ms * 1e6), "count": 6, "services": services,
            "pods": ["shop-0"], "level": "error" if errors else "info", "errors": errors, "sample": [], "opened": 1,
            "updated": 2, "cause": "gap", "closed": first + 60 * 10**9, "duration_ns": int(duration_ms * 1e6),
            "close_id": f"{trace}@1"}


async def trace_ids(api: Api, **params: str) -> list[str]:
    status, body = await api.get("/traces", **params)
    assert status == 200, body
    return [item["trace_id"] for item in body["traces"]]


async def test_a_scan_past_the_statement_timeout_answers_504(postgres_server: LocalPostgres, stores: Stores) -> None:
    """50,000 rows in one day and a 1 ms statement timeout: a text search over the day is cut off."""
    dsn = fresh_database(postgres_server, "slow")
    slow = Stores(stores.broker, stores.es_url, dsn)
    sink = PostgresSink.from_settings(slow.settings("postgres"))
    await sink.start()
    await sink.stop()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE IF NOT EXISTS logs_p20250610 PARTITION OF logs FOR VALUES FROM "
                           "('2025-06-10') TO ('2025-06-11')")
        await conn.execute("INSERT INTO logs (time, line_id, message) SELECT '2025-06-10'::timestamptz + "
                           "g * interval '1 s', 'l' || g, 'word ' || g FROM generate_series(1, 50000) g")
    finally:
        await conn.close()
    async for served in serve(slow.settings("postgres", statement_timeout="1ms")):
        status, body = await served.get("/query", q="word", order="asc", **WINDOW)
        assert status == 504, body
        assert "statement_timeout" in body["error"]
    async for served in serve(slow.settings("postgres")):
        status, body = await served.get("/query", q="word", order="asc", limit=2, **WINDOW)
        assert status == 200 and body["count"] == 2


async def test_tail_streams_new_matching_lines(api: Api, stores: Stores) -> None:
    settings = stores.settings("postgres")
    await ensure_topics(settings.kafka, ["sink.postgres"])
    got: list[dict[str, Any]] = []
    live = asyncio.Event()

    async def follow() -> None:
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with aiohttp.ClientSession(timeout=timeout) as session, \
                session.get(api.url + "/tail", params={"service": "cart", "level": "error"}) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            async for raw in response.content:
                if raw.startswith(b": live"):
                    live.set()
                elif raw.startswith(b"data: "):
                    got.append(orjson.loads(raw[6:]))

    following = asyncio.create_task(follow())
    try:
        await wait_for(live.is_set, what="the tail to be live", timeout=30)
        producer = AIOKafkaProducer(bootstrap_servers=stores.broker.bootstrap)
        await producer.start()
        try:
            lines = [[0, "s-tail", i, BASE_NS + i * 10**9, f"tr-t{i}", level, service,
                      orjson.dumps({"msg": f"tail {i}"}).decode(), "stdout"]
                     for i, (level, service) in enumerate([("error", "cart"), ("info", "cart"), ("error", "pay"),
                                                           ("error", "cart")])]
            await producer.send_and_wait("sink.postgres", ParsedChunk([SOURCE_SHOP], lines).encode())
        finally:
            await producer.stop()
        await wait_for(lambda: len(got) >= 2, what="two matching lines from the tail", timeout=30,
                       last_seen=lambda: got)
        assert [(line["message"], line["service"], line["level"]) for line in got] == [
            ("tail 0", "cart", "error"), ("tail 3", "cart", "error")]
    finally:
        following.cancel()


async def test_cli_query_trace_and_tail_print_json_lines_when_piped(api: Api) -> None:
    async def cli(*argv: str) -> tuple[int, list[Any], str]:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "commands.cli", *argv, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, env={**os.environ, "LOGWEAVE_API__URL": api.url})
        out, err = await process.communicate()
        return process.returncode or 0, [orjson.loads(line) for line in out.splitlines()], err.decode()

    code, lines, err = await cli("query", "--service", "pay", "--level", "error", "--from", WINDOW["from"],
                                 "--to", WINDOW["to"], "--limit", "5", "--pages", "3")
    assert code == 0, err
    assert [line["attributes"]["n"] for line in lines] == sorted(
        (n for n in range(300) if n % 3 == 1 and n % 7 == 0), reverse=True)[:15]
    code, body, err = await cli("trace", "tr-7")
    assert code == 0 and [line["attributes"]["n"] for line in body[0]["lines"]] == list(range(42, 48))
    code, _, err = await cli("query", "--level", "loud")
    assert code == 2 and "parameter level" in err and "allowed" in err
    code, _, err = await cli("query", "--url", "http://127.0.0.1:9", "--service", "x")
    assert code == 2 and "not reachable" in err


async def test_cli_tail_prints_matching_new_lines_as_json_when_piped(api: Api, stores: Stores) -> None:
    """`logweave tail` follows until stopped: a matching line is published until one is printed."""
    await ensure_topics(stores.settings("postgres").kafka, ["sink.postgres"])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "commands.cli", "tail", "--service", "cart", "--level", "error",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "LOGWEAVE_API__URL": api.url})
    producer = AIOKafkaProducer(bootstrap_servers=stores.broker.bootstrap)
    await producer.start()
    assert process.stdout is not None
    reading = asyncio.ensure_future(process.stdout.readline())
    sent = 0
    try:
        async def printed() -> bool:
            nonlocal sent
            if reading.done():
                return True
            lines = [[0, "s-cli", sent * 2 + i, BASE_NS + sent * 10**9, "tr-cli", level, "cart",
                      orjson.dumps({"msg": f"cli {level} {sent}"}).decode(), "stdout"]
                     for i, level in enumerate(("info", "error"))]
            await producer.send_and_wait("sink.postgres", ParsedChunk([SOURCE_SHOP], lines).encode())
            sent += 1
            await asyncio.wait([reading], timeout=0.5)
            return reading.done()

        await wait_for(printed, what="`logweave tail` to print a line", timeout=60, interval=0)
        line = orjson.loads(reading.result())
        assert (line["service"], line["level"]) == ("cart", "error") and line["message"].startswith("cli error")
    finally:
        await producer.stop()
        process.terminate()
        await process.wait()


async def test_logweave_api_process_warns_when_open_and_is_live_before_its_store() -> None:
    """The real `logweave api` process, its store unreachable: it says it is open to anyone, /healthz
    answers, /readyz says 503 until the store answers, and a query gets 503, not a hang."""
    from commands.broker import free_port

    port = free_port()
    env = {**os.environ, "LOGWEAVE_SINKS__POSTGRES__DSN": f"postgresql://postgres@127.0.0.1:{free_port()}/none",
           "LOGWEAVE_SINKS__POSTGRES__CONNECT_TIMEOUT": "1s"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "commands.cli", "api", "--port", str(port), stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE, env=env)
    stderr = process.stderr
    assert stderr is not None
    try:
        said: list[str] = []

        async def warned() -> bool:
            said.append((await stderr.readline()).decode())
            return "every route is open" in said[-1]

        await wait_for(warned, what="the open-API warning", timeout=30, interval=0, last_seen=lambda: said[-3:])
        async with aiohttp.ClientSession() as session:
            async def health() -> bool:
                try:
                    async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                        return response.status == 200
                except aiohttp.ClientConnectionError:
                    return False

            await wait_for(health, what="/healthz of the api process", timeout=30)
            async with session.get(f"http://127.0.0.1:{port}/readyz") as response:
                assert response.status == 503
            async with session.get(f"http://127.0.0.1:{port}/query") as response:
                assert response.status == 503 and "not available" in (await response.json())["error"]
    finally:
        process.terminate()
        await process.wait()
