"""One service at one level over PostgreSQL (query/postgres_backend.py's keys-first statement): the
same pages as the plain statement and as the lines themselves say, by cursor and by page number,
newest and oldest first, with lines that share their time at the pages' edges and across two
days; and the page's bound is read from the index alone once the day is vacuumed."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg
import orjson
import pytest

from core.settings import load_settings
from query.params import Cursor, LogQuery
from query.postgres_backend import PostgresBackend, keys_first, search_sql
from sinks.postgres_schema import create_partitions, migrations

DAY0_NS = 1_749_513_600_000_000_000  # 2025-06-10T00:00:00Z
LINES = 30_000
# Three lines share each second (ties at the edges of pages); the day changes at line 15,000
# (second 5,000 of 2025-06-10 is 01:23:20, so the lines from 15,000 on are put a day later).
GENERATE = f"""
INSERT INTO logs (time, line_id, service, level, namespace)
SELECT '2025-06-10T00:00:00Z'::timestamptz + (g / 3) * interval '1 s' + (g >= {LINES // 2})::int * interval '1 day',
       'l' || lpad(g::text, 6, '0'), 'svc' || g % 4, CASE WHEN g % 5 = 0 THEN 'error' ELSE 'info' END, 'ns'
FROM generate_series(0, {LINES - 1}) g
"""


def time_ns_of(g: int) -> int:
    return DAY0_NS + (g // 3) * 10**9 + (86_400 * 10**9 if g >= LINES // 2 else 0)


def expected(service: str, level: str, descending: bool) -> list[str]:
    rows = [(time_ns_of(g), f"l{g:06d}") for g in range(LINES)
            if f"svc{g % 4}" == service and ("error" if g % 5 == 0 else "info") == level]
    return [line_id for _, line_id in sorted(rows, reverse=descending)]


@pytest.fixture
async def backend(postgres_dsn: str) -> AsyncIterator[PostgresBackend]:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        for _, _, sql in migrations():
            await conn.execute(sql)
        await create_partitions(conn, {datetime(2025, 6, 10).date(), datetime(2025, 6, 11).date()})
        await conn.execute(GENERATE)
        await conn.execute("CHECKPOINT")  # the commit flushed, so that VACUUM may mark the pages all-visible
        await conn.execute("VACUUM ANALYZE logs")
    finally:
        await conn.close()
    made = PostgresBackend(load_settings(environ={}, sinks={"postgres": {"dsn": postgres_dsn}},
                                         api={"backend": "postgres"}))
    await made.start()
    yield made
    await made.close()


def window(**fields: Any) -> LogQuery:
    return LogQuery(from_ns=DAY0_NS, to_ns=DAY0_NS + 2 * 86_400 * 10**9, **fields)


async def by_cursor(backend: PostgresBackend, query: LogQuery) -> list[str]:
    found: list[str] = []
    while True:
        page = await backend.search(query)
        found += [line.line_id for line in page.lines]
        if page.next_cursor is None:
            return found
        assert len(page.lines) == query.limit
        query = replace(query, cursor=Cursor.decode(page.next_cursor))


@pytest.mark.parametrize("descending", [True, False])
@pytest.mark.parametrize("limit", [1, 7, 300, 1000])  # 300 and 1000: pages across the change of day
async def test_pages_by_cursor_are_every_line_in_order(backend: PostgresBackend, descending: bool,
                                                       limit: int) -> None:
    query = window(limit=limit, service=["svc1"], level=["info"], descending=descending)
    assert keys_first(query)
    want = expected("svc1", "info", descending)
    if limit == 1:  # line by line through the first 300 only
        got: list[str] = []
        for _ in range(300):
            page = await backend.search(query)
            got += [line.line_id for line in page.lines]
            assert page.next_cursor is not None
            query = replace(query, cursor=Cursor.decode(page.next_cursor))
        assert got == want[:300]
        return
    assert await by_cursor(backend, query) == want
    plain = replace(query, namespace=["ns"])  # the same lines through the plain statement
    assert not keys_first(plain)
    assert await by_cursor(backend, plain) == want


@pytest.mark.parametrize("descending", [True, False])
async def test_page_numbers_and_short_ranges(backend: PostgresBackend, descending: bool) -> None:
    want = expected("svc2", "error", descending)
    for offset in (0, 10, 49, 290):
        page = await backend.search(window(limit=10, offset=offset, service=["svc2"], level=["error"],
                                           descending=descending))
        assert [line.line_id for line in page.lines] == want[offset:offset + 10]
    # a range holding fewer lines than a page: the bound falls back to the range's own edge
    short = LogQuery(from_ns=DAY0_NS + 60 * 10**9, to_ns=DAY0_NS + 120 * 10**9, limit=100, service=["svc2"],
                     level=["error"], descending=descending)
    got = [line.line_id for line in (await backend.search(short)).lines]
    assert got == [i for i in want if DAY0_NS + 60 * 10**9 <= time_ns_of(int(i[1:])) < DAY0_NS + 120 * 10**9]
    assert 0 < len(got) < 100
    empty = replace(short, service=["svc9"])
    assert (await backend.search(empty)).lines == []


async def test_the_bound_comes_from_the_index_alone(postgres_dsn: str, backend: PostgresBackend) -> None:
    query = window(limit=100, service=["svc3"], level=["error"])
    sql, args = search_sql(query)
    conn = await asyncpg.connect(postgres_dsn)
    try:
        plan = orjson.loads(await conn.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", *args))
    finally:
        await conn.close()
    scans = list(nodes(plan[0]["Plan"]))
    bound = [node for node in scans if node.get("Parent Relationship") == "InitPlan" or
             node.get("Subplan Name", "").startswith("InitPlan")]
    assert bound, scans
    index_only = [node for node in nodes(bound[0]) if node["Node Type"] == "Index Only Scan"]
    assert index_only and all(node["Heap Fetches"] == 0 for node in index_only), bound[0]
    assert {node["Index Name"] for node in index_only} <= {"logs_p20250610_service_level_time_line_id_idx",
                                                          "logs_p20250611_service_level_time_line_id_idx"}


def nodes(plan: dict[str, Any]) -> Any:
    yield plan
    for child in plan.get("Plans", []):
        yield from nodes(child)

