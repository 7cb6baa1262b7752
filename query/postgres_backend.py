"""Queries over the PostgreSQL store (sinks/postgres.py): lines by keyset page, traces, summaries.

Every query names a time range on `logs.time` (the partition key), so PostgreSQL prunes to the day
partitions involved and uses the (service, level, time, line_id), (service, time), (level, time) or
time indexes; text search uses the GIN index on to_tsvector('simple', message). `statement_timeout`
is set on every connection, so even a query the indexes cannot help stops at api.statement_timeout.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from core.errors import RetriableError
from core.settings import Settings
from query.backend import Backend, Page, QueryTimeout, StoredLine, iso_time
from query.params import LogQuery, TraceQuery

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
COLUMNS = "time, line_id, trace_id, service, level, message, namespace, pod, container, node, attributes, tags"
TRACE_COLUMNS = ("trace_id, first_time, last_time, duration_ms, line_count, errors, level, services, pods, cause, "
                 "closed_at")
# A trace lookup in one statement (one round trip, one pooled connection, one server process):
# its lines (part 0, in time order) and then its latest closed summary (part 1), whose columns
# are NULL on the line rows and share the names trace_id and level with them.
TRACE_SQL = f"""
(SELECT 0 AS part, {COLUMNS}, NULL::timestamptz AS first_time, NULL::timestamptz AS last_time,
        NULL::double precision AS duration_ms, NULL::integer AS line_count, NULL::integer AS errors,
        NULL::text[] AS services, NULL::text[] AS pods, NULL::text AS cause, NULL::timestamptz AS closed_at
 FROM logs WHERE trace_id = $1 ORDER BY time, line_id LIMIT $2)
UNION ALL
(SELECT 1, NULL, NULL, trace_id, NULL, level, NULL, NULL, NULL, NULL, NULL, NULL, NULL, first_time, last_time,
        duration_ms, line_count, errors, services, pods, cause, closed_at
 FROM traces WHERE trace_id = $1 ORDER BY closed_at DESC LIMIT 1)
ORDER BY part, time, line_id
"""


def to_datetime(time_ns: int) -> datetime:
    return EPOCH + timedelta(microseconds=time_ns // 1000)


def to_ns(value: datetime) -> int:
    return (value - EPOCH) // timedelta(microseconds=1) * 1000


def stored_line(row: Any) -> StoredLine:
    attributes = row["attributes"]
    return StoredLine(to_ns(row["time"]), row["line_id"], row["trace_id"], row["service"], row["level"],
                      row["message"], row["namespace"], row["pod"], row["container"], row["node"],
                      orjson.loads(attributes) if isinstance(attributes, str) else attributes, list(row["tags"]))


def trace_summary(row: Any) -> dict[str, Any]:
    return {"trace_id": row["trace_id"], "first": iso_time(to_ns(row["first_time"])),
            "last": iso_time(to_ns(row["last_time"])), "lines": row["line_count"], "duration_ms": row["duration_ms"],
            "services": list(row["services"]), "pods": list(row["pods"]), "errors": row["errors"],
            "level": row["level"], "cause": row["cause"], "closed": iso_time(to_ns(row["closed_at"]))}


class _Where:
    """WHERE clauses with numbered parameters."""

    def __init__(self) -> None:
        self.clauses: list[str] = []
        self.args: list[Any] = []

    def add(self, clause: str, *values: Any) -> None:
        numbers = [f"${len(self.args) + i + 1}" for i in range(len(values))]
        self.clauses.append(clause.format(*numbers))
        self.args.extend(values)

    def sql(self) -> str:
        return " AND ".join(self.clauses) or "true"


def keys_first(query: LogQuery) -> bool:
    """Whether the page's lines can be found from the (service, level, time, line_id) index alone:
    one service at one level, no other filter (the most common search, and the one whose lines are
    scattered thinnest over the table: one table page per line)."""
    return (len(query.service) == 1 and len(query.level) == 1 and not (query.namespace or query.pod)
            and query.trace_id is None and not query.text)


def search_sql(query: LogQuery) -> tuple[str, list[Any]]:
    where = _Where()
    where.add("time >= {0} AND time < {1}", to_datetime(query.from_ns), to_datetime(query.to_ns))
    for column in ("service", "level", "namespace", "pod"):
        values = getattr(query, column)
        if len(values) == 1:  # `=` lets an index on (column, ..., time) deliver rows already in time order
            where.add(f"{column} = {{0}}", values[0])
        elif values:
            where.add(f"{column} = ANY({{0}}::text[])", values)
    if query.trace_id:
        where.add("trace_id = {0}", query.trace_id)
    if query.text:
        where.add("to_tsvector('simple', message) @@ plainto_tsquery('simple', {0})", query.text)
    direction = "DESC" if query.descending else "ASC"
    if query.cursor is not None:
        where.add(f"(time, line_id) {'<' if query.descending else '>'} ({{0}}, {{1}})",
                  to_datetime(query.cursor.time_ns), query.cursor.line_id)
    order = f"ORDER BY time {direction}, line_id {direction}"
    if keys_first(query):
        return _keys_first_sql(query, where, order)
    where.args.extend([query.limit + 1, query.offset])
    n = len(where.args)
    return f"SELECT {COLUMNS} FROM logs WHERE {where.sql()} {order} LIMIT ${n - 1} OFFSET ${n}", where.args


def _keys_first_sql(query: LogQuery, where: _Where, order: str) -> tuple[str, list[Any]]:
    """The page in two steps of one statement. First the time of the page's last line (the
    offset + limit + 1st) from an index-only scan of (service, level, time, line_id); then the lines
    from that time on, read by a bitmap heap scan, which fetches their scattered table pages ahead
    (effective_io_concurrency, set on the API's connections) where an index scan in time order would
    wait for each page in turn; then the page is sorted. Lines sharing the boundary time all come
    back from the second step, and the sort and LIMIT keep the right ones. When the range holds
    fewer lines the bound is the range's own edge. The CTE is MATERIALIZED so that the planner does
    not fold the step back into an ordered index scan."""
    conditions = where.sql()
    where.args.extend([query.offset + query.limit, query.limit + 1, query.offset])
    n = len(where.args)
    first, last = (">=", "$1") if query.descending else ("<=", "$2")
    bound = (f"SELECT time FROM logs WHERE {conditions} ORDER BY time {'DESC' if query.descending else 'ASC'} "
             f"LIMIT 1 OFFSET ${n - 2}")
    sql = (f"WITH page AS MATERIALIZED (SELECT {COLUMNS} FROM logs WHERE {conditions} "
           f"AND time {first} coalesce(({bound}), {last})) "
           f"SELECT {COLUMNS} FROM page {order} LIMIT ${n - 1} OFFSET ${n}")
    return sql, where.args


async def _keep_session(conn: Any) -> None:
    """Return a connection to the pool as it is: this backend only runs single read-only SELECTs (no
    SET, LISTEN, cursor or advisory lock outlives a query), so asyncpg's default reset, one more round
    trip to the server on every release (`RESET ALL; UNLISTEN *; ...`), has nothing to undo. It was
    the largest single cost of a trace lookup after the query itself (py-spy, docs/query.md)."""


class PostgresBackend(Backend):
    name = "postgres"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._pool: Any = None

    async def start(self) -> None:
        import asyncpg

        pg = self.settings.sinks.postgres
        dsn, password = await asyncio.to_thread(lambda: (pg.resolved_dsn(), pg.resolved_password()))
        timeout_ms = str(int(self.settings.api.statement_timeout * 1000))
        io_concurrency = str(self.settings.api.io_concurrency)  # read ahead in bitmap heap scans (search_sql)
        try:
            self._pool = await asyncpg.create_pool(dsn, password=password, min_size=1, max_size=pg.pool_size,
                                                   timeout=pg.connect_timeout, reset=_keep_session,
                                                   server_settings={"statement_timeout": timeout_ms,
                                                                    "default_transaction_read_only": "on",
                                                                    "effective_io_concurrency": io_concurrency})
        except (TimeoutError, OSError, asyncpg.PostgresConnectionError, asyncpg.CannotConnectNowError) as exc:
            raise RetriableError(f"PostgreSQL is not reachable: {exc}") from exc

    async def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def _fetch(self, sql: str, *args: Any) -> list[Any]:
        import asyncpg

        try:
            async with self._pool.acquire() as conn:
                rows: list[Any] = await conn.fetch(sql, *args)
                return rows
        except asyncpg.QueryCanceledError as exc:
            raise QueryTimeout(str(exc)) from exc

    async def ready(self) -> bool:
        try:
            return bool(await self._fetch("SELECT to_regclass('logs') IS NOT NULL AS ok"))
        except Exception:
            return False

    async def search(self, query: LogQuery) -> Page:
        sql, args = search_sql(query)
        lines = [stored_line(row) for row in await self._fetch(sql, *args)]
        more = len(lines) > query.limit
        lines = lines[:query.limit]
        return Page(lines, lines[-1].cursor.encode() if more else None)

    async def trace_lines(self, trace_id: str, limit: int) -> list[StoredLine]:
        rows = await self._fetch(f"SELECT {COLUMNS} FROM logs WHERE trace_id = $1 ORDER BY time, line_id LIMIT $2",
                                 trace_id, limit)
        return [stored_line(row) for row in rows]

    async def trace(self, trace_id: str, limit: int) -> tuple[list[StoredLine], dict[str, Any] | None]:
        rows = await self._fetch(TRACE_SQL, trace_id, limit)
        if rows and rows[-1]["part"] == 1:
            return [stored_line(row) for row in rows[:-1]], trace_summary(rows[-1])
        return [stored_line(row) for row in rows], None

    async def closed_summary(self, trace_id: str) -> dict[str, Any] | None:
        rows = await self._fetch(f"SELECT {TRACE_COLUMNS} FROM traces WHERE trace_id = $1 "
                                 "ORDER BY closed_at DESC LIMIT 1", trace_id)
        return trace_summary(rows[0]) if rows else None

    async def traces(self, query: TraceQuery) -> list[dict[str, Any]] | None:
        where = _Where()
        where.add("first_time >= {0} AND first_time < {1}", to_datetime(query.from_ns), to_datetime(query.to_ns))
        if query.service:
            where.add("services @> ARRAY[{0}]::text[]", query.service)
        if query.has_error is not None:
            where.clauses.append("errors > 0" if query.has_error else "errors = 0")
        if query.min_duration_ms:
            where.add("duration_ms >= {0}", query.min_duration_ms)
        where.args.append(query.limit)
        rows = await self._fetch(f"SELECT {TRACE_COLUMNS} FROM traces WHERE {where.sql()} "
                                 f"ORDER BY first_time DESC, trace_id LIMIT ${len(where.args)}", *where.args)
        return [trace_summary(row) for row in rows]
