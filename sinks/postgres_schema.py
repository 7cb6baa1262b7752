"""The PostgreSQL store's schema: versioned migrations, day partitions and retention.

Migrations are the numbered SQL files in sinks/postgres_schema/ (`0001_name.sql`), applied in order,
each in its own transaction, and recorded in `schema_migrations`; an advisory lock makes concurrent
`logweave prepare` runs (or sinks starting together) apply each file once. `logs` is partitioned by
day with no DEFAULT partition: partitions are created ahead of time and on demand when a batch holds
an older or later day, and retention drops whole day partitions, which is instant and leaves no bloat.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SCHEMA_DIR = Path(__file__).parent / "postgres_schema"
MIGRATION_LOCK = 0x6C6F6777  # pg_advisory lock key, "logw"
PARTITION_PREFIX = "logs_p"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
NS_PER_DAY = 86_400 * 1_000_000_000


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every migration file, lowest version first."""
    found = []
    for path in sorted(SCHEMA_DIR.glob("*.sql")):
        match = _NAME.match(path.name)
        if match is None:
            raise ValueError(f"{path.name}: migration files are named NNNN_words.sql")
        found.append((int(match.group(1)), path.name, path.read_text()))
    return found


async def migrate(conn: Any) -> list[str]:
    """Apply the migrations this database lacks; return the names applied (empty when up to date)."""
    async with conn.transaction():  # concurrent prepares: CREATE TABLE IF NOT EXISTS itself can race
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
        await conn.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, "
                           "name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())")
    applied: list[str] = []
    for version, name, sql in migrations():
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            done = await conn.fetchval("SELECT 1 FROM schema_migrations WHERE version = $1", version)
            if done:
                continue
            await conn.execute(sql)
            await conn.execute("INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", version, name)
            applied.append(name)
            log.info("postgres store: applied migration %s", name)
    return applied


def day_of(time_ns: int) -> date:
    return date(1970, 1, 1) + timedelta(days=time_ns // NS_PER_DAY)


def partition_name(day: date) -> str:
    return f"{PARTITION_PREFIX}{day:%Y%m%d}"


async def existing_days(conn: Any) -> set[date]:
    """Days that have a partition of `logs`."""
    rows = await conn.fetch("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
                            "WHERE i.inhparent = 'logs'::regclass")
    days = set()
    for row in rows:
        name: str = row["relname"]
        if name.startswith(PARTITION_PREFIX):
            days.add(datetime.strptime(name.removeprefix(PARTITION_PREFIX), "%Y%m%d").date())
    return days


async def create_partitions(conn: Any, days: set[date]) -> None:
    """Create the day partitions in `days`; another writer creating the same one at once is fine."""
    for day in sorted(days):
        sql = (f"CREATE TABLE IF NOT EXISTS {partition_name(day)} PARTITION OF logs "
               f"FOR VALUES FROM ('{day.isoformat()}') TO ('{(day + timedelta(days=1)).isoformat()}')")
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute(sql)


async def maintain(conn: Any, retention_s: float, ahead: int, now: datetime | None = None) -> list[str]:
    """Create partitions for today and `ahead` days after it; drop days wholly older than the
    retention (0 keeps everything). Returns the dropped partition names."""
    today = (now or datetime.now(UTC)).date()
    have = await existing_days(conn)
    await create_partitions(conn, {today + timedelta(days=i) for i in range(ahead + 1)} - have)
    if retention_s <= 0:
        return []
    oldest_kept = (now or datetime.now(UTC)) - timedelta(seconds=retention_s)
    dropped = []
    for day in sorted(have):
        if day + timedelta(days=1) <= oldest_kept.date():
            await conn.execute(f"DROP TABLE IF EXISTS {partition_name(day)}")
            dropped.append(partition_name(day))
    await conn.execute("DELETE FROM traces WHERE last_time < $1", oldest_kept)
    if dropped:
        log.info("postgres store: retention dropped %s", ", ".join(dropped))
    return dropped


async def days_to_vacuum(conn: Any, now: datetime | None = None) -> list[str]:
    """Day partitions whose day has ended and that no VACUUM has gone over since, or that took lines
    since their last one (a replay, or counters lost in a crash: PostgreSQL forgets them then)."""
    rows = await conn.fetch(
        "SELECT c.relname, greatest(s.last_vacuum, s.last_autovacuum) AS vacuumed, "
        "coalesce(s.n_ins_since_vacuum, 0) AS inserted "
        "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid LEFT JOIN pg_stat_user_tables s ON s.relid = c.oid "
        "WHERE i.inhparent = 'logs'::regclass")
    today = (now or datetime.now(UTC)).date()
    due = []
    for row in rows:
        name: str = row["relname"]
        if not name.startswith(PARTITION_PREFIX):
            continue
        day = datetime.strptime(name.removeprefix(PARTITION_PREFIX), "%Y%m%d").date()
        ended = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        if day < today and (row["inserted"] > 0 or row["vacuumed"] is None or row["vacuumed"] < ended):
            due.append(name)
    return sorted(due)


async def vacuum_closed_days(conn: Any, now: datetime | None = None) -> list[str]:
    """VACUUM each closed day partition once (days_to_vacuum). Autovacuum goes over a partition only
    each time a fifth of it is new, so the last hours of a day can stay unvisited for good; until a
    VACUUM marks their table pages all-visible, the API's index-only scans (one service at one level,
    query/postgres_backend.py) must read every line's table page to check it is visible. Returns the
    partitions vacuumed. The table only (INDEX_CLEANUP OFF): a GIN index's cleanup reads the whole
    index, and autovacuum keeps the indexes as it does anyway. Still long on a large day: the sink
    runs it beside the drain, never in a batch."""
    done = []
    for name in await days_to_vacuum(conn, now):
        await conn.execute(f"VACUUM (INDEX_CLEANUP OFF, SKIP_LOCKED) {name}")
        done.append(name)
    if done:
        log.info("postgres store: vacuumed the closed day partitions %s", ", ".join(done))
    return done
