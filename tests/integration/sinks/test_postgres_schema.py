"""The store's schema against a real PostgreSQL 15: version 3 (the (service, level, time, line_id)
index that replaces version 2's) applied by `logweave prepare` to a store at version 2 with lines in
it, once however often prepare runs; and the VACUUM of closed day partitions the sink runs."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from commands.broker import EmbeddedBroker, free_port
from sinks.postgres_schema import create_partitions, days_to_vacuum, migrations, vacuum_closed_days
from tests.support.polling import wait_for
from tests.support.processes import base_env

ROOT = Path(__file__).resolve().parents[3]
LINE_ID_INDEX = "CREATE INDEX {} ON {} USING btree (service, level, \"time\", line_id)"


async def at_version_2(dsn: str) -> None:
    """A store as version 2 left it, with a day of lines in it."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, "
                           "applied_at timestamptz NOT NULL DEFAULT now())")
        for version, name, sql in migrations()[:2]:
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
        await create_partitions(conn, {datetime(2025, 6, 10).date()})
        await conn.execute("INSERT INTO logs (time, line_id, service, level) SELECT '2025-06-10'::timestamptz "
                           "+ g * interval '1 s', 'l' || g, 'svc' || g % 3, 'error' FROM generate_series(1, 500) g")
    finally:
        await conn.close()


async def index_definitions(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('logs', "
                                "'logs_p20250610') AND indexdef LIKE '%(service, level%'")
        return {row["indexname"]: row["indexdef"] for row in rows}
    finally:
        await conn.close()


def prepare(bootstrap: str, dsn: str) -> str:
    env = base_env({"LOGWEAVE_KAFKA__BROKERS": bootstrap, "LOGWEAVE_SINKS__ENABLED": '["postgres"]',
                    "LOGWEAVE_SINKS__POSTGRES__DSN": dsn, "LOGWEAVE_SINKS__POSTGRES__RETENTION": "0"})
    done = subprocess.run([sys.executable, "-m", "commands.cli", "prepare", "--timeout", "60"], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def test_prepare_upgrades_a_version_2_store_once(postgres_dsn: str, tmp_path: Path) -> None:
    await at_version_2(postgres_dsn)
    assert set(await index_definitions(postgres_dsn)) == {"logs_service_level_time",
                                                          "logs_p20250610_service_level_time_idx"}
    broker = EmbeddedBroker(data_dir=tmp_path / "broker", kafka_port=free_port()).start(log_path=tmp_path / "b.log")
    try:
        first = await asyncio.to_thread(prepare, broker.bootstrap, postgres_dsn)
        assert "(applied: 0003_service_level_time_line_id.sql)" in first
        again = await asyncio.to_thread(prepare, broker.bootstrap, postgres_dsn)
        assert "(applied: none)" in again
    finally:
        broker.stop(kill=True)
    assert await index_definitions(postgres_dsn) == {  # version 2's index, a prefix of this one, is gone
        "logs_service_level_time_line": LINE_ID_INDEX.format("logs_service_level_time_line", "ONLY public.logs"),
        "logs_p20250610_service_level_time_line_id_idx": LINE_ID_INDEX.format(
            "logs_p20250610_service_level_time_line_id_idx", "public.logs_p20250610")}
    conn = await asyncpg.connect(postgres_dsn)
    try:
        assert await conn.fetch("SELECT version FROM schema_migrations ORDER BY version") == \
            [(1,), (2,), (3,)]
        assert await conn.fetchval("SELECT count(*) FROM logs") == 500
    finally:
        await conn.close()


async def test_closed_days_are_vacuumed_once_and_again_after_late_lines(postgres_dsn: str) -> None:
    conn = await asyncpg.connect(postgres_dsn)
    try:
        for _, _, sql in migrations():
            await conn.execute(sql)
        await conn.execute("CREATE EXTENSION pg_visibility")
        days = {datetime(2025, 6, d).date() for d in (9, 10, 11)}
        await create_partitions(conn, days)
        # no autovacuum ANALYZE of the fresh rows beside the test's VACUUM: its snapshot, in this database,
        # keeps VACUUM from marking pages all-visible (0 pages in one make test run)
        for day in sorted(days):
            await conn.execute(f"ALTER TABLE logs_p{day:%Y%m%d} SET (autovacuum_enabled = false)")
        await write(postgres_dsn, "INSERT INTO logs (time, line_id) SELECT '2025-06-09'::timestamptz "
                    "+ g * interval '1 min', 'l' || g FROM generate_series(0, 3 * 1440 - 1) g")
        now = datetime(2025, 6, 11, 12, tzinfo=UTC)  # the 11th is today: still written to
        assert await days_to_vacuum(conn, now) == ["logs_p20250609", "logs_p20250610"]
        assert await visible_pages(conn, "logs_p20250610") == 0
        # nor any other backend's snapshot in this database (an autovacuum worker on its fresh catalogs, seen
        # under `make test-under-load`): VACUUM marks a page all-visible only when no snapshot may still need
        # an older version of its rows
        holders: list[tuple[int, str]] = []

        async def no_other_snapshot() -> bool:
            holders[:] = await other_snapshots(conn)
            return not holders

        await wait_for(no_other_snapshot, timeout=60, what="no other snapshot held in this database",
                       last_seen=lambda: holders)
        assert await vacuum_closed_days(conn, now) == ["logs_p20250609", "logs_p20250610"]
        for day in ("logs_p20250609", "logs_p20250610"):
            await wait_for(lambda table=day: vacuumed(conn, table), timeout=10, what=f"{day} vacuumed")
        assert await visible_pages(conn, "logs_p20250610") > 0  # index-only scans skip the table now
        assert await days_to_vacuum(conn, now) == []
        await write(postgres_dsn, "INSERT INTO logs (time, line_id) VALUES ('2025-06-10 23:00+00', 'late')")
        await wait_for(lambda: due(conn, now), timeout=10, what="the late line counted")
        assert await vacuum_closed_days(conn, now) == ["logs_p20250610"]
    finally:
        await conn.close()


async def write(dsn: str, sql: str) -> None:
    """On a connection of its own, closed after: a server process reports what it wrote to the
    statistics at the latest when it ends (and only about once a second before). Then a CHECKPOINT:
    VACUUM marks a page all-visible only once the commit of its lines is flushed to the WAL, which
    the test server (synchronous_commit off) may not have done yet; a closed day's lines were
    committed hours before."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def visible_pages(conn: asyncpg.Connection, table: str) -> int:
    """Table pages the visibility map marks all-visible (what an index-only scan may skip)."""
    return int(await conn.fetchval(f"SELECT count(*) FROM pg_visibility_map('{table}') WHERE all_visible"))


async def vacuumed(conn: asyncpg.Connection, table: str) -> bool:
    """Whether the statistics count a manual VACUUM of `table`."""
    await conn.execute("SELECT pg_stat_clear_snapshot()")
    return bool(await conn.fetchval("SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = $1", table))


async def other_snapshots(conn: asyncpg.Connection) -> list[tuple[int, str]]:
    """(pid, backend type) of the other backends of this database holding a snapshot."""
    return [tuple(row) for row in await conn.fetch(
        "SELECT pid, backend_type FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND backend_xmin IS NOT NULL")]


async def due(conn: asyncpg.Connection, now: datetime) -> bool:
    return await days_to_vacuum(conn, now) == ["logs_p20250610"]
