"""PostgresSink: lines into a day-partitioned `logs` table, closed trace summaries into `traces`.

A batch is first COPYed (binary, asyncpg) straight into `logs`, in one transaction: all or nothing,
and the primary key (line id, time) refuses it whole if any line is already stored. Then, and while
re-reads are likely, it is COPYed into a per-connection TEMP staging table and moved with one
`INSERT ... SELECT ... ON CONFLICT DO NOTHING`, in one transaction: a retried or replayed batch, or
one re-read after a crash, adds nothing twice. The direct COPY is the common case and costs the
server half the work of staging (measured in bench_sinks). COPY is all or nothing,
so when the server refuses the data of a batch (SQLSTATE class 22, e.g. a NUL character), the batch
is split in halves until the refused lines stand alone; those are dead-lettered with the server's
words and the rest is written. Connection failures raise RetriableError (the drain retries and the
breaker pauses); other server errors are the configuration's fault (PermanentError, retried loudly).
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from core.errors import PermanentError, RetriableError
from core.models import MESSAGE_FIELDS
from core.settings import PostgresSinkSettings, Settings
from sinks.base import ItemFailure, Sink, SinkBatch, SinkLine, WriteResult
from sinks.postgres_schema import create_partitions, day_of, existing_days, maintain, migrate, vacuum_closed_days

log = logging.getLogger(__name__)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STAGED_AFTER_CONFLICT = 20  # batches written through staging after a direct COPY met stored lines
LOG_COLUMNS = ("time", "line_id", "trace_id", "service", "level", "message", "namespace", "pod", "container", "node",
               "attributes", "tags")
STAGE_COLUMNS = ("time_ns", "line_id", "trace_id", "service", "level", "message", "namespace", "pod",
                 "container", "node", "attributes", "tags")
CREATE_STAGE = ("CREATE TEMP TABLE IF NOT EXISTS logs_stage (time_ns bigint, line_id text, trace_id text, "
                "service text, level text, message text, namespace text, pod text, container text, node text, "
                "attributes jsonb, tags text[]) ON COMMIT DELETE ROWS")
MOVE_STAGED = ("INSERT INTO logs (time, line_id, trace_id, service, level, message, namespace, pod, container, "
               "node, attributes, tags) SELECT 'epoch'::timestamptz + (time_ns / 1000) * interval '1 microsecond', "
               "line_id, trace_id, service, level, message, namespace, pod, container, node, attributes, tags "
               "FROM logs_stage ON CONFLICT DO NOTHING")
INSERT_TRACE = ("INSERT INTO traces (close_id, trace_id, first_time, last_time, duration_ms, line_count, errors, "
                "level, services, pods, cause, closed_at, summary) VALUES ($1, $2, "
                "'epoch'::timestamptz + ($3::bigint / 1000) * interval '1 microsecond', "
                "'epoch'::timestamptz + ($4::bigint / 1000) * interval '1 microsecond', $5, $6, $7, $8, $9, $10, "
                "$11, 'epoch'::timestamptz + ($12::bigint / 1000) * interval '1 microsecond', $13) "
                "ON CONFLICT (close_id) DO NOTHING")


def row_of(line: SinkLine, reserved_key: str) -> tuple[Any, ...]:
    """The staging row of one line: promoted columns, and the application's fields as attributes."""
    doc = orjson.loads(line.document)
    meta = doc.pop(reserved_key, None) or {}
    source = meta.get("source") or {}
    message = next((doc[k] for k in MESSAGE_FIELDS if isinstance(doc.get(k), str)), "")
    tags = doc.get("tags")
    tags = [t for t in tags if isinstance(t, str)] if isinstance(tags, list) else []
    return (line.time_ns, line.line_id, line.trace_id, line.service, line.level, message,
            str(source.get("namespace", "")), str(source.get("pod", "")), str(source.get("container", "")),
            str(source.get("node", "")), orjson.dumps(doc).decode(), tags)


def is_connection_error(exc: BaseException) -> bool:
    import asyncpg

    return isinstance(exc, OSError | asyncio.TimeoutError | asyncpg.PostgresConnectionError | asyncpg.InterfaceError
                      | asyncpg.CannotConnectNowError | asyncpg.TooManyConnectionsError | asyncpg.AdminShutdownError
                      | asyncpg.ConnectionDoesNotExistError)


class PostgresSink(Sink):
    """Writes lines and trace summaries to PostgreSQL through a small asyncpg pool."""

    name = "postgres"
    accepts_closed_traces = True

    def __init__(self, settings: PostgresSinkSettings, limits: tuple[int, int, float], reserved_key: str) -> None:
        self.settings = settings
        self._limits = limits
        self.reserved_key = reserved_key
        self._pool: Any = None
        self._days: set[Any] = set()
        self._maintained = -float("inf")  # never (the monotonic clock starts near zero at boot)
        self._vacuum: asyncio.Task[None] | None = None
        self._staged_after_conflict = 0

    @classmethod
    def from_settings(cls, settings: Settings) -> PostgresSink:
        s = settings.sinks
        return cls(s.postgres, (s.batch_size, s.batch_bytes, s.batch_period), settings.parse.reserved_key)

    def batch_limits(self) -> tuple[int, int, float]:
        return self._limits

    async def start(self) -> None:
        import asyncpg

        s = self.settings
        dsn, password = await asyncio.to_thread(lambda: (s.resolved_dsn(), s.resolved_password()))
        try:
            self._pool = await asyncpg.create_pool(dsn, password=password, min_size=1, max_size=s.pool_size,
                                                   timeout=s.connect_timeout, init=_init_connection)
            async with self._pool.acquire() as conn:
                await migrate(conn)
                await self._maintain(conn)
        except Exception as exc:
            await self.stop()
            if is_connection_error(exc):
                raise RetriableError(f"PostgreSQL is not reachable: {exc}") from exc
            # a refused login or a schema it may not create: keep retrying (the drain says why in its
            # warnings) rather than stop the worker and every other sink with it
            raise RetriableError(f"PostgreSQL refused the sink's start ({type(exc).__name__}: {exc}); "
                                 "check sinks.postgres.dsn and the role's rights") from exc

    async def stop(self) -> None:
        if self._vacuum is not None:
            self._vacuum.cancel()
            await asyncio.gather(self._vacuum, return_exceptions=True)
            self._vacuum = None
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    async def _maintain(self, conn: Any) -> None:
        await maintain(conn, self.settings.retention, self.settings.partitions_ahead)
        self._days = await existing_days(conn)
        self._maintained = time.monotonic()
        if self._vacuum is None or self._vacuum.done():
            self._vacuum = asyncio.create_task(self._vacuum_closed_days())

    async def _vacuum_closed_days(self) -> None:
        """Beside the drain, on a connection of its own: a VACUUM of a large day takes long."""
        try:
            async with self._pool.acquire() as conn:
                await vacuum_closed_days(conn)
        except Exception as exc:  # the next maintenance tries again
            log.warning("postgres store: vacuum of closed days failed: %s", exc)

    async def write_batch(self, batch: SinkBatch) -> WriteResult:
        rows = [row_of(line, self.reserved_key) for line in batch.lines]
        result = WriteResult()
        try:
            async with self._pool.acquire() as conn:
                if time.monotonic() - self._maintained > self.settings.maintenance_interval:
                    await self._maintain(conn)
                days = {day_of(line.time_ns) for line in batch.lines} - self._days
                if days:
                    await create_partitions(conn, days)
                    self._days |= days
                if not await self._copy_direct(conn, rows):
                    await self._write_rows(conn, batch.lines, rows, result)
        except Exception as exc:
            raise _classify(exc) from exc
        return result

    async def _copy_direct(self, conn: Any, rows: list[tuple[Any, ...]]) -> bool:
        """The fast path: COPY the batch straight into `logs`, all or nothing. False when any line is
        already stored (a retry, replay or re-read after a crash) or refused: the caller then takes the
        staging path, which skips the stored lines. After a conflict the next batches are likely
        re-reads too, so the staging path is used directly for a while."""
        import asyncpg

        if self._staged_after_conflict > 0:
            self._staged_after_conflict -= 1
            return False
        records = [(EPOCH + timedelta(microseconds=row[0] // 1000), *row[1:]) for row in rows]
        try:
            async with conn.transaction():
                await conn.copy_records_to_table("logs", records=records, columns=LOG_COLUMNS)
            return True
        except asyncpg.UniqueViolationError:
            self._staged_after_conflict = STAGED_AFTER_CONFLICT
            return False
        except asyncpg.DataError:
            return False

    async def _write_rows(self, conn: Any, lines: list[SinkLine], rows: list[tuple[Any, ...]],
                          result: WriteResult) -> None:
        """COPY and move `rows`; on a data error, split until the refused lines stand alone."""
        import asyncpg

        try:
            async with conn.transaction():
                await conn.copy_records_to_table("logs_stage", records=rows, columns=STAGE_COLUMNS)
                await conn.execute(MOVE_STAGED)
        except asyncpg.DataError as exc:
            if len(rows) == 1:
                result.permanent.append(ItemFailure(lines[0], "invalid_data", f"{exc.sqlstate}: {exc}"))
                return
            half = len(rows) // 2
            await self._write_rows(conn, lines[:half], rows[:half], result)
            await self._write_rows(conn, lines[half:], rows[half:], result)

    async def write_closed_traces(self, summaries: list[dict[str, Any]]) -> None:
        """Store closed trace summaries (traces.closed), once each by close id."""
        args = [(s["close_id"], s["trace"], s["first"], s["last"], s.get("duration_ns", 0) / 1e6, s["count"],
                 s.get("errors", 0), s.get("level", ""), list(s.get("services", [])), list(s.get("pods", [])),
                 s.get("cause", ""), s.get("closed", 0), orjson.dumps(s).decode()) for s in summaries]
        try:
            async with self._pool.acquire() as conn:
                await conn.executemany(INSERT_TRACE, args)
        except Exception as exc:
            raise _classify(exc) from exc


async def _init_connection(conn: Any) -> None:
    await conn.execute(CREATE_STAGE)


def _classify(exc: Exception) -> Exception:
    if isinstance(exc, RetriableError | PermanentError):
        return exc
    if is_connection_error(exc):
        return RetriableError(f"PostgreSQL connection failed ({type(exc).__name__}): {exc}")
    return PermanentError(f"PostgreSQL refused the write ({type(exc).__name__}): {exc}")



async def prepare_store(settings: PostgresSinkSettings, timeout: float) -> list[str]:
    """`logweave prepare`: wait up to `timeout` for PostgreSQL, apply migrations, create partitions
    ahead and apply retention. Returns the migrations applied."""
    import asyncpg

    dsn, password = await asyncio.to_thread(lambda: (settings.resolved_dsn(), settings.resolved_password()))
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn = await asyncpg.connect(dsn, password=password, timeout=settings.connect_timeout)
            break
        except Exception as exc:
            if not is_connection_error(exc) or time.monotonic() > deadline:
                raise RetriableError(f"PostgreSQL did not answer within {timeout:.0f}s: {exc}") from exc
            await asyncio.sleep(0.5)
    try:
        applied = await migrate(conn)
        await maintain(conn, settings.retention, settings.partitions_ahead)
        return applied
    finally:
        await conn.close()
