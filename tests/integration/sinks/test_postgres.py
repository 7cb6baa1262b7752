"""The PostgreSQL sink against a real PostgreSQL 15: columns, replays, refused data, a database
restart mid-drain, migrations and retention. (The worker killed mid-drain is in test_postgres_delivery.py.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest

from agents.drain_runner import DrainRunner, SinkRecord, to_sink_lines
from commands.local_postgres import LocalPostgres
from core.models import DeadLetter, ParsedChunk, encode_closed_traces
from core.settings import Settings, load_settings
from sinks.base import SinkBatch
from sinks.postgres import PostgresSink
from sinks.postgres_schema import existing_days, maintain, migrate, partition_name
from tests.support.polling import wait_for

DAY0 = 1_749_513_600_000_000_000  # 2025-06-10T00:00:00Z
SOURCE = {"kind": "pod", "namespace": "shop", "pod": "cart-1", "container": "app", "node": "n1"}


def chunk(first: int, count: int, stream: str = "s1", bad: set[int] | None = None) -> bytes:
    """A parsed chunk of lines n = first..first+count-1, a second apart from DAY0 + 8h."""
    lines = []
    for n in range(first, first + count):
        doc: dict[str, Any] = {"msg": f"line {n}", "n": n, "tags": ["a", f"t{n % 3}"], "user": {"id": n % 7}}
        if bad and n in bad:
            doc["msg"] = "bad \u0000 byte"
        time_ns = DAY0 + 8 * 3600 * 10**9 + n * 10**9
        lines.append([0, stream, n * 100, time_ns, f"tr-{n // 10}", "error" if n % 5 == 0 else "info",
                      "cart", orjson.dumps(doc).decode(), "stdout"])
    return ParsedChunk([SOURCE], lines).encode()


def settings_for(dsn: str, **postgres: Any) -> Settings:
    return load_settings(environ={}, sinks={"enabled": ["postgres"], "batch_size": 100,
                                            "retry": {"initial_backoff": "0.05s", "max_backoff": "0.5s",
                                                      "breaker_reset": "0.5s"},
                                            "postgres": {"dsn": dsn, "retention": 0, **postgres}})


@pytest.fixture
async def sink(postgres_dsn: str) -> AsyncIterator[PostgresSink]:
    made = PostgresSink.from_settings(settings_for(postgres_dsn))
    await made.start()
    yield made
    await made.stop()


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        rows: list[asyncpg.Record] = await conn.fetch(sql, *args)
        return rows
    finally:
        await conn.close()


def batch_of(value: bytes, offset: int = 0) -> SinkBatch:
    return SinkBatch("sink.postgres", 0, to_sink_lines(SinkRecord(0, offset, value), "logweave"))


async def test_lines_land_with_their_columns_and_a_replay_adds_nothing(sink: PostgresSink, postgres_dsn: str) -> None:
    result = await sink.write_batch(batch_of(chunk(0, 20)))
    assert (result.permanent, result.retry) == ([], [])
    rows = await fetch(postgres_dsn, "SELECT * FROM logs ORDER BY time")
    assert len(rows) == 20
    first = rows[0]
    assert (first["trace_id"], first["service"], first["level"]) == ("tr-0", "cart", "error")
    assert first["message"] == "line 0"
    assert (first["namespace"], first["pod"], first["container"], first["node"]) == ("shop", "cart-1", "app", "n1")
    assert orjson.loads(first["attributes"]) == {"msg": "line 0", "n": 0, "tags": ["a", "t0"], "user": {"id": 0}}
    assert first["tags"] == ["a", "t0"]
    assert first["time"] == datetime(2025, 6, 10, 8, 0, 0, tzinfo=UTC)
    assert first["line_id"] == batch_of(chunk(0, 1)).lines[0].line_id

    await sink.write_batch(batch_of(chunk(0, 20)))  # the same batch again (a retry or replay)
    await sink.write_batch(batch_of(chunk(10, 20), offset=1))  # half old, half new
    count = await fetch(postgres_dsn, "SELECT count(*) AS c, count(DISTINCT line_id) AS d FROM logs")
    assert (count[0]["c"], count[0]["d"]) == (30, 30)


async def test_refused_lines_are_dead_lettered_alone_and_the_rest_written(sink: PostgresSink,
                                                                          postgres_dsn: str) -> None:
    batch = batch_of(chunk(0, 40, bad={7, 30}))
    result = await sink.write_batch(batch)
    assert sorted(orjson.loads(f.line.document)["n"] for f in result.permanent) == [7, 30]
    assert {f.reason for f in result.permanent} == {"invalid_data"}
    assert "22" in result.permanent[0].detail[:5]  # the server's SQLSTATE (class 22: data exception)
    rows = await fetch(postgres_dsn, "SELECT (attributes->>'n')::int AS n FROM logs ORDER BY 1")
    assert [r["n"] for r in rows] == [n for n in range(40) if n not in (7, 30)]


async def test_closed_trace_summaries_are_stored_once(sink: PostgresSink, postgres_dsn: str) -> None:
    summary = {"trace": "tr-1", "first": DAY0, "last": DAY0 + 2_500_000_000, "count": 4, "services": ["cart", "pay"],
               "pods": ["cart-1"], "level": "error", "errors": 1, "sample": [], "opened": 1, "updated": 2,
               "cause": "gap", "closed": DAY0 + 40 * 10**9, "duration_ns": 2_500_000_000, "close_id": "tr-1@1"}
    await sink.write_closed_traces([summary, {**summary, "trace": "tr-2", "close_id": "tr-2@1"}])
    await sink.write_closed_traces([summary])
    rows = await fetch(postgres_dsn, "SELECT trace_id, duration_ms, services, errors FROM traces ORDER BY 1")
    assert [tuple(r) for r in rows] == [("tr-1", 2500.0, ["cart", "pay"], 1), ("tr-2", 2500.0, ["cart", "pay"], 1)]


async def test_database_restart_mid_drain_loses_nothing(postgres_server: LocalPostgres, postgres_dsn: str) -> None:
    """The drain keeps retrying through a PostgreSQL restart; every line ends up stored exactly once."""
    settings = settings_for(postgres_dsn)
    dead: list[DeadLetter] = []

    async def dead_letter(items: list[DeadLetter]) -> None:
        dead.extend(items)

    runner = DrainRunner(PostgresSink.from_settings(settings), settings, "sink.postgres", dead_letter)
    records = [SinkRecord(0, offset, chunk(offset * 200, 200, stream=f"s{offset % 3}")) for offset in range(60)]
    total = 60 * 200

    async def stored() -> int:
        try:
            return int((await fetch(postgres_dsn, "SELECT count(*) AS c FROM logs"))[0]["c"])
        except (OSError, asyncpg.PostgresError):
            return -1

    delivering = asyncio.create_task(deliver_slowly(runner, records))
    try:
        await wait_for(lambda: _at_least(stored, 1000), what="the first lines in PostgreSQL", timeout=60)
        await asyncio.to_thread(postgres_server.stop, "fast")
        await wait_for(lambda: runner.breaker.state != 0, what="the drain to notice the database is away",
                       timeout=60)
        assert not delivering.done()
        await asyncio.to_thread(postgres_server.start)
        await asyncio.wait_for(delivering, timeout=120)
    finally:
        delivering.cancel()
        await runner.stop()
    rows = await fetch(postgres_dsn, "SELECT count(*) AS c, count(DISTINCT line_id) AS d FROM logs")
    assert (rows[0]["c"], rows[0]["d"], dead) == (total, total, [])


async def deliver_slowly(runner: DrainRunner, records: list[SinkRecord]) -> None:
    """Deliver one record at a time, as the drain agent hands them over, yielding between them."""
    for record in records:
        await runner.deliver([record])
        await asyncio.sleep(0)


async def _at_least(count: Any, wanted: int) -> bool:
    return bool(await count() >= wanted)


async def test_migrations_apply_once_and_retention_drops_whole_days(postgres_dsn: str) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        assert await migrate(conn) == ["0001_logs_and_traces.sql", "0002_service_level_time.sql",
                                      "0003_service_level_time_line_id.sql"]
        assert await migrate(conn) == []
        now = datetime(2025, 6, 20, 12, tzinfo=UTC)
        await maintain(conn, 0, 2, now=now)
        days = await existing_days(conn)
        assert {d.isoformat() for d in days} == {"2025-06-20", "2025-06-21", "2025-06-22"}
        for back in (1, 3, 9):  # partitions of older days, as a batch with old lines creates them
            day = now.date() - timedelta(days=back)
            await conn.execute(f"CREATE TABLE {partition_name(day)} PARTITION OF logs FOR VALUES FROM "
                               f"('{day}') TO ('{day + timedelta(days=1)}')")
        dropped = await maintain(conn, 2.5 * 86400, 2, now=now)
        assert dropped == ["logs_p20250611", "logs_p20250617"]  # older than 2.5 days, wholly
        assert partition_name(now.date() - timedelta(days=1)) in {partition_name(d) for d in await existing_days(conn)}
    finally:
        await conn.close()


async def test_concurrent_prepares_migrate_once(postgres_dsn: str) -> None:
    """`make run` starts several processes that each run `logweave prepare` at once: every one must
    succeed and the migrations apply once (CREATE TABLE IF NOT EXISTS alone races in PostgreSQL)."""
    conns = [await asyncpg.connect(postgres_dsn) for _ in range(6)]
    try:
        results = await asyncio.gather(*(migrate(conn) for conn in conns))
        assert sorted(name for applied in results for name in applied) == \
            ["0001_logs_and_traces.sql", "0002_service_level_time.sql", "0003_service_level_time_line_id.sql"]
    finally:
        for conn in conns:
            await conn.close()


async def test_drain_feeds_closed_traces_from_their_records(postgres_dsn: str) -> None:
    settings = settings_for(postgres_dsn)

    async def no_dead_letters(items: list[DeadLetter]) -> None:
        raise AssertionError(items)

    runner = DrainRunner(PostgresSink.from_settings(settings), settings, "sink.postgres", no_dead_letters)
    summary = {"trace": "tr-9", "first": DAY0, "last": DAY0 + 10**9, "count": 2, "services": ["cart"], "pods": [],
               "level": "info", "errors": 0, "sample": [], "opened": 5, "updated": 6, "cause": "gap",
               "closed": DAY0 + 9 * 10**9, "duration_ns": 10**9, "close_id": "tr-9@5"}
    try:
        assert await runner.deliver_closed_traces([encode_closed_traces([summary])]) == 1
    finally:
        await runner.stop()
    rows = await fetch(postgres_dsn, "SELECT trace_id, cause FROM traces")
    assert [tuple(r) for r in rows] == [("tr-9", "gap")]


async def test_a_refused_login_is_retriable_and_names_the_setting(postgres_server: LocalPostgres) -> None:
    from core.errors import RetriableError

    missing = f"postgresql://postgres@127.0.0.1:{postgres_server.port}/no_such_database"
    sink = PostgresSink.from_settings(settings_for(missing))
    with pytest.raises(RetriableError, match=r"sinks\.postgres\.dsn.*no_such_database|no_such_database.*"
                                             r"sinks\.postgres\.dsn"):
        await sink.start()
