"""A real worker draining into a real PostgreSQL, SIGKILLed mid-drain and restarted under its
static member id: every line is stored exactly once, and the closed traces reach `traces`."""

from __future__ import annotations

from collections.abc import Callable

import asyncpg

from tests.support.polling import wait_for
from tests.support.sink_stack import feed
from tests.support.worker_harness import WorkerHarness


async def scalar(dsn: str, sql: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(await conn.fetchval(sql))
    finally:
        await conn.close()


async def test_worker_killed_mid_drain_stores_every_line_once(make_worker: Callable[..., WorkerHarness],
                                                             postgres_dsn: str) -> None:
    total = 30_000
    env = {"LOGWEAVE_SINKS__POSTGRES__DSN": postgres_dsn, "LOGWEAVE_SINKS__POSTGRES__RETENTION": "0",
           "LOGWEAVE_TRACES__GAP": "5s", "LOGWEAVE_TRACES__ALLOWED_LATENESS": "1h"}
    worker = await make_worker(env, sinks=("postgres",)).start()
    await feed(worker, total)
    stored = "SELECT count(*) FROM logs"
    await wait_for(lambda: _at_least(postgres_dsn, stored, total // 4), what="a quarter of the lines stored",
                   timeout=120)
    worker.stop(kill=True)
    await worker.start()
    await wait_for(lambda: _at_least(postgres_dsn, stored, total), what=f"{total} lines stored", timeout=240)
    distinct = await scalar(postgres_dsn, "SELECT count(DISTINCT (attributes->>'n')::int) FROM logs")
    assert (await scalar(postgres_dsn, stored), distinct) == (total, total)
    assert await scalar(postgres_dsn, "SELECT min((attributes->>'n')::int) + max((attributes->>'n')::int) "
                                      "FROM logs") == total - 1
    await wait_for(lambda: _at_least(postgres_dsn, "SELECT count(DISTINCT trace_id) FROM traces", total // 10),
                   what="every trace's closed summary in the traces table", timeout=120)
    assert await scalar(postgres_dsn, "SELECT sum(line_count) FROM (SELECT DISTINCT ON (trace_id) line_count "
                                      "FROM traces ORDER BY trace_id, closed_at) t") == total


async def _at_least(dsn: str, sql: str, wanted: int) -> bool:
    return await scalar(dsn, sql) >= wanted
