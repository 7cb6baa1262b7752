"""`POST /v1/logs` with a real HTTP client (aiohttp) against a real broker: what is acknowledged is on
logs.raw exactly once, what is refused is not, and limits, tokens and rate limits hold."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import os
import signal
import time
from typing import Any

import aiohttp
import orjson
import zstandard

from commands.broker import EmbeddedBroker
from core.heartbeat import DeadLetterFigure, PipelineView
from core.heartbeat_figures import host_name
from core.native import native_path
from kafka_io.heartbeat import read_pipeline
from tests.support.intake import running_intake
from tests.support.polling import wait_for

TOKEN_A, TOKEN_B = "token-of-team-a", "token-of-team-b"
TENANTS = [{"name": "team-a", "token_sha256": [hashlib.sha256(TOKEN_A.encode()).hexdigest()]},
           {"name": "team-b", "token_sha256": [hashlib.sha256(TOKEN_B.encode()).hexdigest()],
            "rate_lines": 1, "burst_lines": 20}]  # 20 s to refill: no race with a slow machine


def records(tag: str, count: int) -> list[dict[str, Any]]:
    return [{"traceId": f"{tag}-t{i % 3}", "time": "2026-12-02T10:00:00.5Z", "msg": f"{tag}-{i}"}
            for i in range(count)]


async def post(url: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any], Any]:
    async with aiohttp.ClientSession() as session, session.post(url + "/v1/logs", data=body,
                                                                headers=headers or {}) as response:
        return response.status, dict(response.headers), orjson.loads(await response.read())


async def test_every_body_shape_and_encoding_arrives_once(intake_broker: EmbeddedBroker) -> None:
    ndjson = b"\n".join(orjson.dumps(r) for r in records("nd", 4)) + b"\n"
    bodies = {
        "array": (orjson.dumps(records("array", 3)), {"Content-Type": "application/json"}),
        "ndjson": (ndjson, {"Content-Type": "application/x-ndjson"}),
        "envelope": (orjson.dumps({"logs": records("env", 2)}), {}),
        "gzip": (gzip.compress(orjson.dumps(records("gz", 5))), {"Content-Encoding": "gzip"}),
        "zstd": (zstandard.ZstdCompressor().compress(ndjson.replace(b"nd-", b"zs-")), {"Content-Encoding": "zstd"}),
    }
    async with running_intake(intake_broker) as intake:
        for name, (body, headers) in bodies.items():
            status, _, answer = await post(intake.url, body, headers)
            assert (status, answer.get("rejected")) == (202, 0), (name, answer)
        seen = await intake.wait_lines(18)
        assert intake.metric("logweave_intake_lines_total", protocol="http") == 18
        async with aiohttp.ClientSession() as session, session.get(intake.url + "/metrics") as response:
            exposition = (await response.text()).splitlines()
        for name in ('logweave_intake_requests_total{outcome="202",protocol="http"} 5.0',
                     'logweave_intake_lines_total{protocol="http"} 18.0',
                     'logweave_intake_ack_seconds_count{protocol="http"} 5.0'):
            assert name in exposition, name
        assert any(line.startswith('logweave_intake_bytes_total{protocol="http"}') for line in exposition)
    messages = sorted(orjson.loads(line[1])["msg"] for _, line in seen)
    expected = sorted(r["msg"] for tag in ("nd", "array", "env", "gz", "zs")
                      for r in records(tag, {"nd": 4, "array": 3, "env": 2, "gz": 5, "zs": 4}[tag]))
    assert messages == expected
    for chunk, _ in seen:
        assert chunk.source["kind"] == "intake" and chunk.source["tenant"] == "anonymous"
        assert chunk.stream_id.startswith("intake:http:anonymous:")
    positions = {}
    for chunk, line in seen:
        positions.setdefault(chunk.stream_id, []).append(line[0])
    assert all(p == list(range(len(p))) for p in positions.values()), positions


async def test_bad_records_are_named_and_the_valid_ones_still_stored(intake_broker: EmbeddedBroker) -> None:
    body = b'{"msg": "ok-0"}\n{"msg": oops}\n7\n{"msg": "ok-3"}\n'
    async with running_intake(intake_broker, max_line_bytes=64) as intake:
        status, _, answer = await post(intake.url, body)
        assert status == 400
        assert answer["accepted"] == 2 and answer["rejected"] == 2
        assert answer["error"].startswith("record 1: not valid JSON")
        status, _, answer = await post(intake.url, orjson.dumps([{"msg": "ok-4"}, {"msg": "x" * 100}, "text"]))
        assert (status, answer["accepted"], answer["rejected"]) == (400, 1, 2)
        assert "record 1" in answer["error"] and "max_line_bytes" in answer["error"]
        seen = await intake.wait_lines(3)
        assert sorted(orjson.loads(line[1])["msg"] for _, line in seen) == ["ok-0", "ok-3", "ok-4"]
        assert intake.metric("logweave_intake_rejections_total", protocol="http", reason="not_json") == 1
        assert intake.metric("logweave_intake_rejections_total", protocol="http", reason="line_too_long") == 1


async def test_refusals_reach_the_heartbeat_by_reason_with_a_masked_example(intake_broker: EmbeddedBroker) -> None:
    secret_row = b'{"msg": "login", "password": "hunter2", oops}'
    long_row = b'{"msg": "' + b"x" * 100 + b'"}'
    async with running_intake(intake_broker, max_line_bytes=64, max_records=3, heartbeat_interval=0.5) as intake:
        status, _, answer = await post(intake.url, b'{"msg": "ok"}\n' + secret_row + b"\n" + long_row + b"\n")
        assert (status, answer["accepted"], answer["rejected"]) == (400, 1, 2)
        status, _, _ = await post(intake.url, b'{"msg": "one too many"}\n' * 4)
        assert status == 413

        async def beat_with_every_reason() -> PipelineView | None:
            view = await read_pipeline(intake.settings)
            beat = view.components.get(f"intake-{host_name()}-{intake.settings.intake.http_port}")
            wanted = {"not_json", "line_too_long", "too_many_records"}
            return view if beat is not None and wanted <= beat.dead_letters.keys() else None

        view = await wait_for(beat_with_every_reason, timeout=30, what="the intake's heartbeat with its refusals")
    dead = next(iter(view.components.values())).dead_letters
    assert dead["not_json"] == DeadLetterFigure(1, '{"msg": "login", "password": "********", oops}')
    assert dead["line_too_long"] == DeadLetterFigure(1, long_row.decode())
    assert dead["too_many_records"] == DeadLetterFigure(1, '{"error": "4 records is over intake.max_records (3)"}')
    shown = view.summary(time.time())["dead_letters"]  # what the stats page and `logweave status` list
    assert shown["intake: not_json"]["example"] == dead["not_json"].example


async def test_tokens_name_the_tenant_and_wrong_tokens_are_refused(intake_broker: EmbeddedBroker) -> None:
    body = orjson.dumps(records("auth", 2))
    async with running_intake(intake_broker, tenants=TENANTS) as intake:
        for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {TOKEN_A}"}):
            status, response_headers, answer = await post(intake.url, body, headers)
            assert status == 401, headers
            assert "Bearer" in response_headers["WWW-Authenticate"] and TOKEN_A not in answer["error"]
        status, _, _ = await post(intake.url, body, {"Authorization": f"Bearer {TOKEN_A}"})
        assert status == 202
        seen = await intake.wait_lines(2)
        assert {chunk.source["tenant"] for chunk, _ in seen} == {"team-a"}
        assert {chunk.source["labels"]["tenant"] for chunk, _ in seen} == {"team-a"}
        assert len(seen) == 2 and intake.metric("logweave_intake_rejections_total", protocol="http",
                                                 reason="unauthorized") == 3


async def test_rate_limit_answers_429_with_retry_after(intake_broker: EmbeddedBroker) -> None:
    async with running_intake(intake_broker, tenants=TENANTS) as intake:
        auth_b = {"Authorization": f"Bearer {TOKEN_B}"}
        assert (await post(intake.url, orjson.dumps(records("r1", 20)), auth_b))[0] == 202
        status, headers, answer = await post(intake.url, orjson.dumps(records("r2", 20)), auth_b)
        assert status == 429 and 1 <= int(headers["Retry-After"]) <= 20, answer
        # another tenant's token has its own bucket (none here)
        assert (await post(intake.url, orjson.dumps(records("r3", 20)),
                           {"Authorization": f"Bearer {TOKEN_A}"}))[0] == 202
        seen = await intake.wait_lines(40)
        assert sorted({orjson.loads(line[1])["msg"].split("-")[0] for _, line in seen}) == ["r1", "r3"]


async def test_oversize_bodies_and_bombs_are_refused_unread(intake_broker: EmbeddedBroker) -> None:
    bomb = gzip.compress(b"[" + b" " * (64 << 20) + b"]", 9)  # 64 MiB of JSON in ~64 KiB
    zstd_bomb = zstandard.ZstdCompressor(level=3).compress(b"\n" * (64 << 20))
    assert len(bomb) < 200_000 and len(zstd_bomb) < 200_000
    async with running_intake(intake_broker, max_body_bytes=256 * 1024, max_decoded_bytes=1 << 20,
                              max_records=100) as intake:
        status, _, answer = await post(intake.url, os.urandom(300 * 1024))
        assert status == 413 and "max_body_bytes" in answer["error"]
        for body in (bomb, zstd_bomb):
            status, _, answer = await post(intake.url, body, {"Content-Encoding": "gzip" if body is bomb else "zstd"})
            assert status == 413 and "max_decoded_bytes" in answer["error"], answer
        status, _, answer = await post(intake.url, orjson.dumps(records("many", 101)))
        assert status == 413 and "max_records" in answer["error"]
        status, _, answer = await post(intake.url, b"[]", {"Content-Encoding": "br"})
        assert status == 415
        assert (await post(intake.url, orjson.dumps(records("fits", 100))))[0] == 202
        seen = await intake.wait_lines(100)
        assert len(seen) == 100
        assert intake.metric("logweave_intake_rejections_total", protocol="http",
                             reason="decompressed_too_large") == 2


async def test_broker_down_mid_load_acknowledges_only_what_is_stored(intake_broker: EmbeddedBroker) -> None:
    """Four clients send keyed requests concurrently; the broker is frozen with SIGSTOP mid-load until
    every client has been refused, then thawed (noida-db loses acknowledged writes on SIGKILL/SIGTERM,
    which a real Kafka with acks=all does not: freezing is the outage it survives honestly). Clients
    retry refused requests with the same key, as a well-behaved client does."""
    assert intake_broker.process is not None
    acknowledged: set[str] = set()
    refused: set[str] = set()
    frozen = asyncio.Event()
    thawed = asyncio.Event()

    async def client(name: str, url: str) -> None:
        async with aiohttp.ClientSession() as session:
            for n in range(12):
                key = f"{name}-{n}"
                while True:
                    async with session.post(url + "/v1/logs", data=orjson.dumps(records(key, 5)),
                                            headers={"Idempotency-Key": key}) as response:
                        if response.status == 202:
                            acknowledged.add(key)
                            break
                        assert response.status == 503 and response.headers["Retry-After"] == "1"
                        refused.add(key)
                    await thawed.wait()  # a real client would sleep Retry-After; here: until the broker is back
                if n == 3:
                    await frozen.wait()  # keep part of the load for the outage

    async with running_intake(intake_broker, ack_timeout=1, retry_after=1) as intake:
        clients = [asyncio.create_task(client(f"c{i}", intake.url)) for i in range(4)]
        await wait_for(lambda: len(acknowledged) >= 12, timeout=30, what="12 requests acknowledged before the outage")
        os.kill(intake_broker.process.pid, signal.SIGSTOP)
        frozen.set()
        try:
            await wait_for(lambda: {k.split("-")[0] for k in refused} == {"c0", "c1", "c2", "c3"}, timeout=60,
                           what="every client refused while the broker is frozen", last_seen=lambda: sorted(refused))
            async with aiohttp.ClientSession() as session, session.get(intake.url + "/readyz") as r:
                assert r.status == 503
        finally:
            os.kill(intake_broker.process.pid, signal.SIGCONT)
            thawed.set()
        await asyncio.wait_for(asyncio.gather(*clients), 120)
        seen = await intake.wait_lines(48 * 5)
    assert len(acknowledged) == 48 and refused
    by_key: dict[str, list[int]] = {}
    for chunk, line in seen:
        by_key.setdefault(chunk.stream_id.rsplit(":key:", 1)[1], []).append(line[0])
    assert set(by_key) == acknowledged
    for key, positions in by_key.items():
        # a refused request may have reached Kafka after all: then it is there twice, with one identity
        assert sorted(set(positions)) == [0, 1, 2, 3, 4], key
        if key not in refused:
            assert sorted(positions) == [0, 1, 2, 3, 4], key


async def test_requests_in_progress_per_client_are_bounded(intake_broker: EmbeddedBroker) -> None:
    """One request is held waiting for Kafka (broker frozen with SIGSTOP); a second one from the same
    address is refused at once."""
    assert intake_broker.process is not None
    async with running_intake(intake_broker, max_connections_per_client=1, ack_timeout=3) as intake:
        os.kill(intake_broker.process.pid, signal.SIGSTOP)
        try:
            held = asyncio.create_task(post(intake.url, orjson.dumps(records("held", 1))))
            await wait_for(lambda: intake.metric("logweave_intake_bytes_total", protocol="http") > 0, timeout=10,
                           what="the first request read")
            status, headers, answer = await post(intake.url, orjson.dumps(records("second", 1)))
            assert status == 429 and "max_connections_per_client" in answer["error"] and headers["Retry-After"]
        finally:
            os.kill(intake_broker.process.pid, signal.SIGCONT)
        assert (await held)[0] in (202, 503)
        assert intake.metric("logweave_intake_rejections_total", protocol="http", reason="too_many_connections") == 1


async def test_an_idle_intake_is_not_ready_while_the_broker_does_not_answer(intake_broker: EmbeddedBroker) -> None:
    """No request arrives, so no send can fail: the intake's probe of its producer's connection turns
    /readyz to 503 while the broker is frozen (SIGSTOP), and back to 200 once it answers again."""
    assert intake_broker.process is not None

    async def readyz() -> int:
        async with aiohttp.ClientSession() as session, session.get(intake.url + "/readyz") as response:
            return response.status

    async with running_intake(intake_broker, broker_probe_interval=0.5) as intake:
        assert await readyz() == 200
        async with aiohttp.ClientSession() as session, session.get(intake.url + "/readyz") as response:
            assert (await response.json())["native"] == native_path("intake_lines")  # which conversion runs
        os.kill(intake_broker.process.pid, signal.SIGSTOP)
        try:
            await wait_for(lambda: _is(readyz(), 503), timeout=30, what="/readyz 503 while the broker is frozen")
        finally:
            os.kill(intake_broker.process.pid, signal.SIGCONT)
        await wait_for(lambda: _is(readyz(), 200), timeout=30, what="/readyz 200 once the broker answers again")


async def _is(status: Any, expected: int) -> bool:
    return bool(await status == expected)
